"""Physical sense of the served answers, as properties over random questions (hypothesis, real server).

- More hazard never lowers risk: raising one declared input (GET /domains ``monotone``: +1 never lower,
  -1 never higher), everything else fixed, never moves the value against its direction: through /risk's
  conditions for every declared condition, and through /predict for every declared feature of every domain.
- The published level is always the band of the published score (0-25 관심 ... 75-100 심각).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from features.build import table_path
from features.registry import LEVELS, domains
from features.store import read_columns

DOMAINS = sorted(domains())
SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def cells(http) -> list[str]:
    geo = http.post("/risk_map", json={"domain": "flood"}).json()
    return [f["properties"]["cell_id"] for f in geo["features"]]


def assert_level_is_band_of_score(result: dict) -> None:
    if result["status"] == "unknown":
        assert result["score"] is None and result["level"] is None
        return
    band = min(int(result["score"] // 25), 3)
    assert (result["level"], result["level_en"]) == LEVELS[band], result


def _condition_value(c: dict, draw) -> object:
    if c.get("choices"):
        return draw(st.sampled_from(c["choices"]))
    if c["type"] == "bool":
        return draw(st.booleans())
    if c["type"] == "int":
        return draw(st.integers(int(c["minimum"]), int(c["maximum"])))
    low, high = float(c["minimum"]), float(c["maximum"])
    return draw(st.floats(low, low + 0.6 * (high - low), allow_nan=False).map(lambda v: round(v, 1)))


def _raised(c: dict, value, direction: int, draw):
    """``value`` moved in ``direction`` (+1 up), staying within the condition's range (or its choices)."""
    if c.get("choices"):
        return draw(st.sampled_from([v for v in c["choices"] if (v - value) * direction >= 0]))
    if c["type"] == "bool":
        return direction > 0
    step = draw(st.floats(0.1, 0.4)) * (float(c["maximum"]) - float(c["minimum"]))
    moved = value + direction * step
    moved = min(max(moved, float(c["minimum"])), float(c["maximum"]))
    return int(moved) if c["type"] == "int" else round(moved, 1)


def _risk(http, domain: str, cell: str, at: str, conditions: dict) -> dict | None:
    """The cell's answer; None when the conditions are refused as out of reach for the city (an epicentre
    beyond the ground-motion model's 300 km), which a drawn combination can be."""
    r = http.post("/risk", json={"domain": domain, "at": at, "locations": [{"cell_id": cell}],
                                 "conditions": conditions})
    if r.status_code == 400 and r.json()["detail"][0]["type"] == "out_of_range":
        return None
    assert r.status_code == 200, r.text
    return r.json()["results"][0]


DECLARED_CONDITIONS = [(d, c) for d in DOMAINS for c in domains()[d].monotone
                       if c in {x.name for x in domains()[d].serving.conditions}]


@pytest.mark.parametrize(("domain", "name"), DECLARED_CONDITIONS)
def test_raising_a_declared_condition_never_moves_risk_against_its_direction(http, catalogue, cells, domain, name):
    info = catalogue["domains"][domain]
    spec = {c["name"]: c for c in info["conditions"]}
    direction = info["monotone"][name]
    first, last = pd.Timestamp(info["earliest_at"]), pd.Timestamp(info["default_at"])

    @SETTINGS
    @given(st.data())
    def check(data):
        cell = data.draw(st.sampled_from(cells))
        at = first + (last - first) * data.draw(st.floats(0.05, 1.0))
        at = at.floor("h").isoformat()
        base = {c["name"]: c["example"] for c in info["conditions"] if c["required"]}
        others = data.draw(st.lists(st.sampled_from(sorted(spec)), max_size=4, unique=True))
        base.update({o: _condition_value(spec[o], data.draw) for o in others if spec[o]["type"] != "date"})
        base[name] = _condition_value(spec[name], data.draw) if spec[name]["type"] != "bool" else direction < 0
        low = _risk(http, domain, cell, at, base)
        high = _risk(http, domain, cell, at, {**base, name: _raised(spec[name], base[name], direction, data.draw)})
        assume(low is not None and high is not None)
        for result in (low, high):
            assert_level_is_band_of_score(result)
        if low["value"] is not None and high["value"] is not None:
            assert high["value"] >= low["value"] - 1e-9, (name, base, low["value"], high["value"])

    check()


@pytest.mark.parametrize("domain", DOMAINS)
def test_raising_any_declared_feature_never_moves_the_model_against_its_direction(http, small_tables, domain):
    """Rows of the training table, each declared feature raised (or lowered, for -1) by a random step."""
    spec = domains()[domain]
    table = read_columns(table_path(small_tables.features_dir, domain), list(spec.features))
    rng = np.random.default_rng(3)
    base = table.sample(min(len(table), 40), random_state=1).reset_index(drop=True).astype(float)
    frames = [base]
    for name, direction in spec.monotone.items():
        moved = base.copy()
        scale = np.nanstd(table[name].to_numpy(float)) or 1.0
        moved[name] = moved[name] + direction * rng.uniform(0.1, 3.0, len(moved)) * scale
        frames.append(moved)
    records = pd.concat(frames, ignore_index=True)
    payload = [{k: (None if pd.isna(v) else float(v)) for k, v in row.items()} for row in records.to_dict("records")]
    r = http.post("/predict", json={"domain": domain, "records": payload})
    assert r.status_code == 200, r.text
    pred = np.array([np.nan if p is None else p for p in r.json()["predictions"]]).reshape(len(frames), -1)
    for k, name in enumerate(spec.monotone, start=1):
        ok = ~np.isnan(pred[0]) & ~np.isnan(pred[k])
        assert ok.any()
        assert (pred[k][ok] >= pred[0][ok] - 1e-9).all(), (name, pred[0][ok], pred[k][ok])


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_cell_of_a_map_has_the_level_of_its_published_score(http, catalogue, domain):
    conds = {c["name"]: c["example"] for c in catalogue["domains"][domain]["conditions"] if c["required"]}
    geo = http.post("/risk_map", json={"domain": domain, "conditions": conds}).json()
    counts = dict.fromkeys((en for _, en in LEVELS), 0)
    for f in geo["features"]:
        p = f["properties"]
        assert_level_is_band_of_score(p)
        if p["level_en"]:
            counts[p["level_en"]] += 1
    assert geo["metadata"]["levels"] == counts
    assert geo["metadata"]["unknown"] == sum(f["properties"]["status"] == "unknown" for f in geo["features"])


def test_flood_lead_times_over_http(http, catalogue, cells):
    """The lead is a condition: 6 h gives a whole-city map stating it, 2 h is a 400 naming the field and the
    allowed values, and at one cell and time the risk never falls as the lead grows (real tiny model)."""
    geo = http.post("/risk_map", json={"domain": "flood", "conditions": {"lead_hours": 6}})
    assert geo.status_code == 200 and len(geo.json()["features"]) == len(cells)
    refused = http.post("/risk", json={"domain": "flood", "locations": [{"cell_id": cells[0]}],
                                       "conditions": {"lead_hours": 2}})
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("conditions.lead_hours") and "1, 3 or 6" in refused.json()["error"]
    at = catalogue["domains"]["flood"]["default_at"]
    for cell in cells[::50]:
        values = [_risk(http, "flood", cell, at, {"lead_hours": lead, "rain_fcst_6h": 80.0}) for lead in (1, 3, 6)]
        assert [v["details"]["lead_hours"] for v in values] == [1, 3, 6]
        v1, v3, v6 = (v["value"] for v in values)
        if None not in (v1, v3, v6):
            assert v1 <= v3 + 1e-9 and v3 <= v6 + 1e-9, (cell, v1, v3, v6)

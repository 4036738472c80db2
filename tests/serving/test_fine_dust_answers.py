"""Fine dust answers with tomorrow's forecast weather: daily and hourly values, grades, advisory probabilities;
without a forecast the answer says it is persistence-grade. In-process engine and the real served API."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb

from features.domains import fine_dust as fd
from features.domains.fine_dust import forecast as fc
from features.domains.fine_dust import hourly
from features.sources import Sources
from serving.engine import Engine, LoadedModel
from serving.errors import ApiError

FORECAST = {"fcst_wsd": 1.5, "fcst_vec": 270.0, "fcst_pcp": 0.0, "fcst_reh": 70.0, "fcst_tmp": 9.0,
            "fcst_upwind_wsd": 6.0, "fcst_upwind_vec": 280.0}


@pytest.fixture(scope="module")
def engine(small_tables) -> Engine:
    features = list(fd.SPEC.features)
    rng = np.random.default_rng(0)
    data = xgb.DMatrix(rng.random((200, len(features))), 20 + 100 * rng.random(200), feature_names=features)
    model = LoadedModel("xgboost", xgb.train({"max_depth": 3}, data, 20), {"registered_model": "fd", "registry_version": "1"})
    return Engine(Sources.from_settings(small_tables), {"fine_dust": model})


def _answer(engine: Engine, conditions: dict) -> dict:
    cell = engine.grid.cells["cell_id"].iloc[0]
    return json.loads(engine.risk("fine_dust", [{"cell_id": cell}], None, conditions))["results"][0]


def test_with_a_forecast_the_answer_has_hours_grades_and_advisories(engine):
    result = _answer(engine, FORECAST)
    d = result["details"]
    assert result["status"] == "scored" and d["basis"] == "forecast"
    assert not any("persistence" in n for n in result["notes"])
    assert d["forecast"]["given"] == list(fc.NAMES) and d["forecast"]["wsd"] == 1.5
    assert set(d["forecast"]["grid"]) == {"nx", "ny"}
    upwind = d["forecast"]["upwind"]  # Incheon's upwind station, 백령도, and its KMA grid point
    assert upwind == {"wsd": 6.0, "vec": 280.0, "station": "백령도", "grid": {"nx": 21, "ny": 136}}
    hours = d["hourly"]
    assert len(hours) == 31 and [h["lead_h"] for h in hours] == list(range(1, 32))  # 18:00 to the day's 24:00
    target = hours[-24:]
    assert np.mean([h["pm10"] for h in target]) == pytest.approx(d["pm10"], abs=0.1)
    assert fd.grade_name(fd.grade([np.mean([h["pm10"] for h in target])],
                                  [np.mean([h["pm25"] for h in target])]))[0] == d["grade"]
    names = {name for name, _, _ in hourly.ADVISORIES}
    assert all(set(h["advisory_probability"]) == names for h in hours)
    assert all(0 <= p <= 1 for h in hours for p in h["advisory_probability"].values())
    assert set(d["advisory_probability"]) == names


def test_without_a_forecast_the_answer_is_persistence_grade(engine):
    result = _answer(engine, {})
    assert result["details"]["basis"] == "persistence"
    assert any(n.startswith("persistence-grade") for n in result["notes"])
    partial = _answer(engine, {"fcst_wsd": 2.0})
    assert partial["details"]["basis"] == "partial"
    assert any("fcst_pcp" in n for n in partial["notes"])
    local_only = _answer(engine, {k: v for k, v in FORECAST.items() if k not in fc.UPWIND})
    assert local_only["details"]["basis"] == "partial"
    assert any("fcst_upwind_wsd, fcst_upwind_vec not given" in n for n in local_only["notes"])


def test_kma_pcp_text_categories_are_taken_as_their_millimetres(engine):
    """KMA's short-range forecast gives PCP as text ("1mm 미만", "30.0~50.0mm"): the answer uses its mm, the
    same as the number; unknown text and out-of-range amounts are 400s naming the field."""
    for text, mm in (("강수없음", 0.0), ("1mm 미만", 0.5), ("30.0~50.0mm", 40.0), ("50.0mm 이상", 50.0)):
        as_text, as_number = _answer(engine, {**FORECAST, "fcst_pcp": text}), _answer(engine, {**FORECAST, "fcst_pcp": mm})
        assert as_text["details"]["forecast"]["pcp"] == mm
        assert as_text["value"] == as_number["value"]
    for bad, says in (("lots", "not a KMA short-range precipitation category"), ("600mm", "less than or equal to 500"),
                      (True, "valid number")):
        with pytest.raises(ApiError) as err:
            _answer(engine, {**FORECAST, "fcst_pcp": bad})
        assert err.value.status == 400 and err.value.loc == ["conditions", "fcst_pcp"] and says in err.value.msg


def test_served_forecast_conditions(http, catalogue):
    conds = {c["name"]: c for c in catalogue["domains"]["fine_dust"]["conditions"]}
    assert conds["fcst_pcp"]["unit"] == "mm" and conds["fcst_vec"]["maximum"] == 360.0
    assert conds["fcst_pcp"]["accepts_text"] and "accepts_text" not in conds["fcst_reh"]
    r = http.post("/risk", json={"domain": "fine_dust", "locations": [{"cell_id": _cell(http)}],
                                 "conditions": FORECAST})
    assert r.status_code == 200, r.text
    d = r.json()["results"][0]["details"]
    assert d["basis"] == "forecast" and len(d["hourly"]) == 31
    bad = http.post("/risk", json={"domain": "fine_dust", "locations": [{"cell_id": _cell(http)}],
                                   "conditions": {"fcst_reh": 140.0}})
    assert bad.status_code == 400 and bad.json()["error"].startswith("conditions.fcst_reh")
    text = http.post("/risk", json={"domain": "fine_dust", "locations": [{"cell_id": _cell(http)}],
                                    "conditions": {**FORECAST, "fcst_pcp": "1mm 미만"}})
    assert text.status_code == 200 and text.json()["results"][0]["details"]["forecast"]["pcp"] == 0.5
    unknown = http.post("/risk", json={"domain": "fine_dust", "locations": [{"cell_id": _cell(http)}],
                                       "conditions": {**FORECAST, "fcst_pcp": "비 많이"}})
    assert unknown.status_code == 400 and unknown.json()["error"].startswith("conditions.fcst_pcp")


def _cell(http) -> str:
    geo = http.post("/risk_map", json={"domain": "fine_dust"}).json()
    return geo["features"][0]["properties"]["cell_id"]

"""Missing data is never a risk: the engine in-process on the small data set, with observations taken away.

A station with no observation for an hour is replaced by the next nearest within the city's fallback
distance (and the answer says so); with no station left the cell is answered ``unknown`` with the reason,
no score and no level; `at` before the held observations is refused; /predict gives null for a record
without an essential input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from features import timeseries as ts
from features.build import table_path
from features.domains import flood
from features.registry import domains
from features.sources import Sources
from features.store import read_columns
from serving.engine import Engine, LoadedModel
from serving.errors import ApiError


@pytest.fixture(scope="module")
def src(small_tables) -> Sources:
    return Sources.from_settings(small_tables)


@pytest.fixture(scope="module")
def models():
    """Boosters that answer 'flood' (probability ~1) whatever they are given: any scored cell is an alert."""
    rng = np.random.default_rng(0)
    out = {}
    for name, spec in domains().items():
        X = rng.random((300, len(spec.features)))
        data = xgb.DMatrix(X, np.full(300, 0.999), feature_names=list(spec.features))
        out[name] = LoadedModel("xgboost", xgb.train({"max_depth": 2, "base_score": 0.999}, data, 3),
                                {"registered_model": f"urban-safety-{name}", "registry_version": "1"})
    return out


def _hour(src) -> pd.Timestamp:
    return flood.serving.serving_now(src) - pd.Timedelta(days=30)


def _without_rain(src: Sources, hour: pd.Timestamp, stations=None) -> Sources:
    """``src`` with no rain observation at ``hour`` at ``stations`` (every station when None)."""
    for source in ("asos", "aws"):
        frame = src[source].copy()
        hit = pd.to_datetime(frame["time"]) == hour
        if stations is not None:
            hit &= frame["station_id"].isin(stations)
        frame.loc[hit, "rain_mm"] = np.nan
        src = src.override(source, frame)
    return src


def _risk(engine: Engine, domain: str, cells: list[str], at, conditions=None) -> list[dict]:
    body = engine.risk(domain, [{"cell_id": c} for c in cells], at.to_pydatetime(), conditions)
    return json.loads(body)["results"]


def test_no_rain_anywhere_is_unknown_not_an_alert(src, models):
    hour = _hour(src)
    engine = Engine(_without_rain(src, hour), models)
    cells = src.grid.cells["cell_id"].tolist()
    results = _risk(engine, "flood", cells[:5], hour)
    for r in results:
        assert r["status"] == "unknown" and r["score"] is None and r["level"] is None and r["level_en"] is None
        assert "rain_1h" in r["reason"] and r["top_factors"] == []
    geo = json.loads(engine.risk_map("flood", hour.to_pydatetime(), None))
    assert geo["metadata"]["unknown"] == len(cells) == geo["metadata"]["cells"]
    assert sum(geo["metadata"]["levels"].values()) == 0
    assert all(f["properties"]["level"] is None for f in geo["features"])
    # The same engine scores the hour before, where the rain is held: the booster's alert shows there.
    before = _risk(engine, "flood", cells[:1], hour - pd.Timedelta(hours=1))[0]
    assert before["status"] == "scored" and before["level_en"] == "serious"


def test_a_station_down_is_replaced_by_the_next_nearest_and_the_answer_says_so(src, models):
    hour = _hour(src)
    s = flood.features.station_series(src)
    choice = ts.station_choice(src, s.stations, s.rain[1].columns)
    pos = int(np.flatnonzero(choice.columns[:-1, 1] >= 0)[0])  # a cell with a second station in reach
    nearest, second = int(choice.ids[pos, 0]), int(choice.ids[pos, 1])
    cell = src.grid.cells["cell_id"].iloc[pos]
    engine = Engine(_without_rain(src, hour, [nearest]), models)
    r = _risk(engine, "flood", [cell], hour)[0]
    assert r["status"] == "scored"
    assert any(f"nearest station {nearest}" in n and f"station {second}" in n for n in r["notes"])
    # The rain used is the second station's own.
    assert r["details"]["rain_1h"] == pytest.approx(round(float(s.rain[1].loc[hour, second]), 1))


def test_a_tide_gauge_down_uses_the_predicted_tide(src, models):
    hour = _hour(src)
    tide = src["tide"].copy()
    tide.loc[pd.to_datetime(tide["time"]).dt.floor("h") == hour, "tide_cm"] = np.nan
    engine = Engine(src.override("tide", tide), models)
    r = _risk(engine, "flood", [src.grid.cells["cell_id"].iloc[0]], hour)[0]
    assert r["status"] == "scored" and any(n.startswith("tide:") for n in r["notes"])


@pytest.mark.parametrize("domain", ["flood", "traffic", "fine_dust"])
def test_at_before_the_held_observations_is_refused_like_after(src, models, domain):
    engine = Engine(src, models)
    first, _ = engine.times(domain)
    with pytest.raises(ApiError) as exc:
        engine.at(domains()[domain], (first - pd.Timedelta(hours=1)).to_pydatetime())
    assert exc.value.status == 400 and exc.value.loc == ["at"] and "before the observations" in exc.value.msg
    assert engine.at(domains()[domain], first.to_pydatetime()) == first


def test_predict_gives_no_value_for_a_record_without_an_essential_input(src, models):
    engine = Engine(src, models)
    spec = domains()["flood"]
    full = dict.fromkeys(spec.features, 1.0)
    out = engine.predict_records("flood", [full, {**full, "rain_1h": None}])
    assert out["predictions"][0] is not None and out["predictions"][1] is None
    assert out["unknown_rows"] == [1]


@pytest.mark.parametrize("domain", sorted(domains()))
def test_training_tables_hold_no_row_without_its_essential_inputs(small_tables, domain):
    spec = domains()[domain]
    table = read_columns(table_path(small_tables.features_dir, domain), list(spec.essential))
    assert len(table) and not table.isna().any().any()

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

FORECAST = {"fcst_wsd": 1.5, "fcst_vec": 270.0, "fcst_pcp": 0.0, "fcst_reh": 70.0, "fcst_tmp": 9.0}


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


def test_served_forecast_conditions(http, catalogue):
    conds = {c["name"]: c for c in catalogue["domains"]["fine_dust"]["conditions"]}
    assert conds["fcst_pcp"]["unit"] == "mm" and conds["fcst_vec"]["maximum"] == 360.0
    r = http.post("/risk", json={"domain": "fine_dust", "locations": [{"cell_id": _cell(http)}],
                                 "conditions": FORECAST})
    assert r.status_code == 200, r.text
    d = r.json()["results"][0]["details"]
    assert d["basis"] == "forecast" and len(d["hourly"]) == 31
    bad = http.post("/risk", json={"domain": "fine_dust", "locations": [{"cell_id": _cell(http)}],
                                   "conditions": {"fcst_reh": 140.0}})
    assert bad.status_code == 400 and bad.json()["error"].startswith("conditions.fcst_reh")


def _cell(http) -> str:
    geo = http.post("/risk_map", json={"domain": "fine_dust"}).json()
    return geo["features"][0]["properties"]["cell_id"]

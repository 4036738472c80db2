"""Drift and data-quality monitoring: PSI and missing shares, and an injected shift through the real engine
raising, then clearing, an operator alert."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from features.registry import domains
from features.sources import Sources
from live import monitor
from live.alerts import INPUTS_LEAD, list_alerts
from live.db import database
from serving.engine import Engine, LoadedModel


def test_psi_and_missing_shares_name_what_moved():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"a": rng.normal(0, 1, 5000), "b": rng.normal(0, 1, 5000)})
    ref = monitor.profile(train, rng.random(5000))
    same = pd.DataFrame({"a": rng.normal(0, 1, 1000), "b": rng.normal(0, 1, 1000), "prediction": rng.random(1000)})
    assert monitor.compare(ref, same)["status"] == "ok"
    moved = same.assign(a=same["a"] + 1.5, b=np.nan)
    report = monitor.compare(ref, moved)
    by = {f["feature"]: f for f in report["features"]}
    assert report["status"] == "drift" and by["a"]["status"] == "shift" and by["a"]["psi"] > monitor.PSI_MAJOR
    assert by["b"]["status"] == "missing" and by["b"]["missing"] == 1.0
    assert any(p.startswith("a: PSI") for p in report["problems"]) and any("b: missing" in p for p in report["problems"])
    assert monitor.compare(ref, same.iloc[:50])["status"] == "insufficient"  # too few answers for a verdict


@pytest.fixture(scope="module")
def models():
    rng = np.random.default_rng(0)
    out = {}
    for name, spec in domains().items():
        features = list(spec.features)
        data = xgb.DMatrix(rng.random((200, len(features))), rng.random(200), feature_names=features)
        out[name] = LoadedModel("xgboost", xgb.train({"max_depth": 3}, data, 10),
                                {"registered_model": f"urban-safety-{name}", "registry_version": "1"})
    return out


def _answer(engine: Engine, domain: str, times, conditions=None) -> None:
    for t in times:
        engine.risk_map(domain, t.to_pydatetime(), conditions)


def test_an_injected_shift_raises_an_operator_alert_and_clean_inputs_clear_it(small_tables, models, tmp_path):
    db = database(f"sqlite:///{tmp_path / 'live.db'}")
    sources = Sources.from_settings(small_tables)
    weather = pd.concat([sources["asos"], sources["aws"]])
    wet = weather.groupby("time")["rain_mm"].max()
    hours = [t for t in wet[wet >= 2].index if t.hour % 3 == 0][:24]  # rainy hours, at traffic's slot starts
    days = sorted({t.normalize() for t in hours})[:8]

    def record(srcs, domain, times, conditions=None):
        engine = Engine(srcs, models, recorder=monitor.Recorder("test"))
        _answer(engine, domain, times, conditions)
        engine.recorder.flush(db)

    # The reference: the same questions answered from the data as it came.
    for domain, times in (("traffic", hours), ("fine_dust", days)):
        with db.begin() as conn:
            conn.execute(monitor.SERVED.delete())
        record(sources, domain, times)
        ref = monitor.served(db, domain, 1)
        monitor.store_reference(db, domain, "test", monitor.profile(ref.drop(columns="prediction"),
                                                                     ref["prediction"].to_numpy()))
    with db.begin() as conn:
        conn.execute(monitor.SERVED.delete())

    # Injected: every station's rain four times too high (a feed in the wrong unit), PM2.5 gone.
    scaled = sources.replaced({s: sources[s].assign(rain_mm=sources[s]["rain_mm"] * 4) for s in ("asos", "aws")})
    record(scaled, "traffic", hours)
    air = sources["airkorea"].assign(pm25=np.nan)
    record(sources.replaced({"airkorea": air}), "fine_dust", days)
    report = monitor.check(db, 1)
    assert report["traffic"]["status"] == "drift"
    assert any(p.startswith("rain_3h_mm: PSI") for p in report["traffic"]["problems"]), report["traffic"]["problems"]
    assert report["fine_dust"]["status"] == "drift"
    assert any("pm25" in p and "missing" in p for p in report["fine_dust"]["problems"]), report["fine_dust"]["problems"]
    events = monitor.raise_alerts(db, report)
    assert {e.kind for e in events} == {"opened"}
    opened = [a for a in list_alerts(db) if a["lead_hours"] == INPUTS_LEAD]
    assert {a["domain"] for a in opened} == {"traffic", "fine_dust"}
    assert all(a["cells"] == [] and a["cause"] for a in opened)
    assert not monitor.raise_alerts(db, report)  # the same problems again: no new event

    # Clean inputs again: the alerts clear.
    with db.begin() as conn:
        conn.execute(monitor.SERVED.delete())
    record(sources, "traffic", hours)
    record(sources, "fine_dust", days)
    report = monitor.check(db, 1)
    assert report["traffic"]["status"] == "ok" and report["fine_dust"]["status"] == "ok", json.dumps(report)[:2000]
    assert {e.kind for e in monitor.raise_alerts(db, report)} == {"cleared"}
    assert not [a for a in list_alerts(db) if a["lead_hours"] == INPUTS_LEAD]

    page = monitor.html_report(report, monitor.references(db), {n: monitor.served(db, n, 1) for n in report})
    assert "<h2>traffic: ok" in page

"""Drift and input-quality monitoring through the real engine: clean days raise nothing (calendar positions and
what-if scenarios are no drift), a moved input is a report line, answers missing an input open the domain's
input-quality alert and a silent feed one alert of its own, each cleared at the first clean check."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from features import store as table_store
from features.build import table_path
from features.clock import Clock, set_clock
from features.registry import domains
from features.sources import Sources
from features.sources.formats import FORMATS
from live import monitor
from live.alerts import INPUTS_LEAD, list_alerts
from live.cycle import LiveLoop
from live.db import database, now_kst
from live.store import TABLES, ObservationStore
from serving.engine import Engine, LoadedModel
from training.models import predict

#: What-if quakes near the city at several magnitudes (the earthquake's scenario conditions).
QUAKES = [{"magnitude": m, "epicentre_lat": 37.3, "epicentre_lon": 126.5} for m in (3.5, 4.5, 5.5, 6.5, 7.5)]
DAY = pd.Timestamp("2021-08-21")  # a rainy stretch of the small data set's summer


def _frame(rng, n: int) -> pd.DataFrame:
    rain = np.where(rng.random(n) < 0.7, 0.0, rng.gamma(1.0, 3.0, n))  # zero-inflated, as rain is
    return pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.normal(0, 1, n), "rain": rain, "doy": rng.random(n)})


def test_a_moved_input_is_a_report_line_and_missing_or_out_of_range_inputs_are_problems():
    rng = np.random.default_rng(0)
    ref = monitor.profile(_frame(rng, 5000), rng.random(5000))
    same = _frame(rng, 1000).assign(prediction=rng.random(1000))
    clean = monitor.compare(ref, same)
    assert clean["status"] == "ok" and not clean["problems"] and not clean["report_lines"]

    moved = monitor.compare(ref, same.assign(a=same["a"] + 1.5))  # a moved decile alone
    assert moved["status"] == "shift" and not moved["problems"]
    assert moved["report_lines"] == [line for line in moved["report_lines"] if line.startswith("a: PSI")] != []
    wet = monitor.compare(ref, same.assign(rain=same["rain"] * 4))  # no rain is a bin; the wet part has its own
    assert wet["status"] == "shift" and any(line.startswith("rain: PSI") for line in wet["report_lines"])

    gone = monitor.compare(ref, same.assign(b=np.where(rng.random(1000) < 0.3, np.nan, same["b"])))
    assert gone["status"] == "input_quality" and len(gone["problems"]) == 1
    assert gone["problems"][0].startswith("b: missing in ") and "(reference 0%)" in gone["problems"][0]
    hot = monitor.compare(ref, same.assign(a=same["a"] * 10 + 50))  # a unit error: beyond anything trained on
    assert hot["status"] == "input_quality" and hot["problems"][0].startswith("a: 100% of the recent answers outside")

    calendar = monitor.compare(ref, same.assign(doy=same["doy"] * 0.1), exempt={"doy": "calendar position"})
    by = {f["feature"]: f for f in calendar["features"]}
    assert calendar["status"] == "ok" and not calendar["report_lines"] and not calendar["problems"]
    assert by["doy"]["status"] == "exempt" and by["doy"]["psi"] >= monitor.PSI_MAJOR
    assert calendar["exempt"] == [{"feature": "doy", "reason": "calendar position"}]
    assert monitor.compare(ref, same.iloc[:50])["status"] == "insufficient"  # too few answers for a verdict

    # A city-wide value is one value per answer: four answers are four values, whatever the rows.
    citywide = same.assign(a=np.repeat(rng.normal(0, 1, 4), 250))
    few = {f["feature"]: f for f in monitor.compare(ref, citywide, answers=np.repeat(np.arange(4), 250))["features"]}
    assert few["a"]["values"] == 4 and few["a"]["psi"] >= monitor.PSI_MAJOR and few["a"]["status"] == "ok"

    # A window across months: each row against its own month's reference.
    july, august = (monitor.profile(_frame(rng, 3000).assign(a=rng.normal(mu, 1, 3000)), rng.random(3000))
                    for mu in (0.0, 2.0))
    rows = same.assign(a=np.r_[rng.normal(0, 1, 500), rng.normal(2, 1, 500)])
    months = np.repeat([0, 1], 500)
    fits = {f["feature"]: f for f in monitor.compare([july, august], rows, groups=months)["features"]}
    swapped = {f["feature"]: f for f in monitor.compare([july, august], rows, groups=1 - months)["features"]}
    assert fits["a"]["psi"] < monitor.PSI_MODERATE <= monitor.PSI_MAJOR <= swapped["a"]["psi"]


# --- through the engine ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(small_tables):
    """The small data set, a random tiny booster per domain and each one's training reference (as
    ``urban-safety serve`` makes it: the feature table scored by the model, overall and per month)."""
    rng = np.random.default_rng(0)
    models, refs = {}, {}
    for name, spec in domains().items():
        features = list(spec.features)
        data = xgb.DMatrix(rng.random((200, len(features))), rng.random(200), feature_names=features)
        models[name] = LoadedModel("xgboost", xgb.train({"max_depth": 3}, data, 10),
                                   {"registered_model": f"urban-safety-{name}", "registry_version": "1"})
        rows = table_store.sample(table_path(small_tables.features_dir, name), monitor.REFERENCE_ROWS,
                                  [spec.time, *features])
        X = rows[features].astype("float64")
        refs[name] = monitor.training_profile(X, predict("xgboost", models[name].booster, X), rows[spec.time])
    return {"sources": Sources.from_settings(small_tables), "models": models, "refs": refs}


def _db(world, path):
    db = database(f"sqlite:///{path}")
    for name, ref in world["refs"].items():
        monitor.store_reference(db, name, "test", ref)
    return db


def _answer(db, world, sources, domain: str, times, conditions=None) -> Engine:
    """The city's map of ``domain`` at each time (None: the default time) and conditions; the rows recorded."""
    engine = Engine(sources, world["models"], recorder=monitor.Recorder("test"))
    for t in times:
        for c in conditions if isinstance(conditions, list) else [conditions]:
            engine.risk_map(domain, None if t is None else pd.Timestamp(t).to_pydatetime(), c)
    engine.recorder.flush(db)
    return engine


def _input_alerts(db) -> list[dict]:
    return [a for a in list_alerts(db) if a["lead_hours"] == INPUTS_LEAD]


def test_clean_days_raise_nothing_and_the_reference_is_what_was_answered_before(world, tmp_path):
    db, src = _db(world, tmp_path / "live.db"), world["sources"]
    hours = pd.date_range(DAY, periods=12 * 3, freq="2h")  # three days, every other hour
    # The first day: nothing answered before it, so the training table's month is the reference.
    _answer(db, world, src, "flood", hours[:12], {"lead_hours": 3})
    first = monitor.check(db, domains=["flood"])["flood"]
    assert first["reference"] == "training, months [8]" and first["reference_detail"]["kind"] == "training"
    assert not first["problems"]
    _answer(db, world, src, "flood", hours[12:], {"lead_hours": 3})
    engine = _answer(db, world, src, "traffic", pd.date_range(DAY, hours[-1], freq="3h"))
    _answer(db, world, src, "fine_dust", pd.date_range("2021-08-08 17:00", hours[-1], freq="D"))  # days of year
    _answer(db, world, src, "earthquake", [None], QUAKES)  # what-ifs at several magnitudes
    absurd = dict.fromkeys(domains()["traffic"].features, 1e6)  # /predict records: no data time, not compared
    engine.predict_records("traffic", [absurd] * 3)
    engine.recorder.flush(db)

    report = monitor.check(db)
    assert set(report) == set(domains())
    for name, r in report.items():
        assert not r["problems"] and r["status"] != "input_quality", (name, r["problems"])
    assert not monitor.raise_alerts(db, report) and not _input_alerts(db)

    flood, traffic = report["flood"], report["traffic"]
    assert flood["reference_detail"]["kind"] == "served" and flood["reference"].startswith("served: ")
    assert flood["reference_detail"]["rows"] >= monitor.MIN_REFERENCE_ROWS
    assert traffic["undated_rows"] == 3 and traffic["reference_detail"]["kind"] == "served"
    fine = {f["feature"]: f for f in report["fine_dust"]["features"]}
    assert report["fine_dust"]["reference_detail"]["kind"] == "served" and report["fine_dust"]["rows"] >= monitor.MIN_ROWS
    assert fine["doy_sin"]["status"] == fine["doy_cos"]["status"] == "exempt"
    assert max(fine["doy_sin"]["psi"], fine["doy_cos"]["psi"]) >= monitor.PSI_MAJOR  # it moved, and is no finding
    quake = report["earthquake"]
    assert quake["reference"].startswith("training")
    assert {e["feature"] for e in quake["exempt"]} >= {"magnitude", "depth_km", "epi_dist_km", "ln_pga_site"}
    assert all(e["reason"].startswith("scenario condition") for e in quake["exempt"])
    assert {e["feature"] for e in traffic["exempt"]} == {"hour", "weekday", "holiday", "dark"}

    cbpe = flood["performance"]
    assert cbpe["method"].startswith("CBPE") and cbpe["assumes"] == "calibrated probabilities"
    assert 0 <= cbpe["expected"]["roc_auc"] <= 1 and 0 <= cbpe["expected"]["recall"] <= 1
    assert traffic["performance"]["expected"]["mean_deviance"] > 0
    assert report["fine_dust"]["performance"]["method"] is None and report["earthquake"]["performance"]["method"] is None
    page = monitor.html_report(report)
    assert "<h2>flood: " in page and "Not drift: doy_sin" in page
    assert json.loads(json.dumps(report))["flood"]["status"] == flood["status"]  # GET /monitoring's body


def _week_again(sources, start: pd.Timestamp, rain_scale: float = 1.0):
    """The week after ``start`` observes the weather of the week from ``start`` again (asos and aws), its
    rain times ``rain_scale``: the same weather answered twice, once clean or once from a feed in the wrong unit."""
    frames = {}
    for name in ("asos", "aws"):
        frame, t = sources[name], sources[name]["time"]
        week = (t > start) & (t <= start + pd.Timedelta(days=7))
        after = (t > start + pd.Timedelta(days=7)) & (t <= start + pd.Timedelta(days=14))
        copy = frame.loc[week].assign(time=t[week] + pd.Timedelta(days=7))
        copy["rain_mm"] = copy["rain_mm"] * rain_scale
        frames[name] = pd.concat([frame.loc[~after], copy], ignore_index=True).sort_values(
            ["station_id", "time"], ignore_index=True)
    return sources.replaced(frames)


def test_rain_four_times_too_high_is_a_report_line_not_an_alert(world, tmp_path):
    src, start = world["sources"], pd.Timestamp("2021-08-07")
    weather = pd.concat([src["asos"], src["aws"]])
    wet = weather.groupby("time")["rain_mm"].max()
    slots = [t for t in wet[wet >= 1].index if t.hour % 3 == 0 and start < t <= start + pd.Timedelta(days=7)][:10]
    assert len(slots) * monitor.SAMPLE_PER_ANSWER >= monitor.MIN_REFERENCE_ROWS
    again = [t + pd.Timedelta(days=7) for t in slots]
    week = _db(world, tmp_path / "week.db")
    _answer(week, world, _week_again(src, start), "traffic", slots)  # the week as it was answered
    with week.connect() as conn:
        answered = [{k: v for k, v in r.items() if k != "id"} for r in conn.execute(monitor.SERVED.select()).mappings()]
    out = {}
    for label, scale in (("clean", 1.0), ("x4", 4.0)):
        db = _db(world, tmp_path / f"{label}.db")
        with db.begin() as conn:
            conn.execute(monitor.SERVED.insert(), answered)
        _answer(db, world, _week_again(src, start, scale), "traffic", again)  # the same weather a week on
        out[label] = monitor.check(db, 24 * 7, ["traffic"])["traffic"]
        assert not out[label]["problems"] and not monitor.raise_alerts(db, {"traffic": out[label]})
        assert not _input_alerts(db)
        assert out[label]["reference_detail"]["kind"] == "served"
    rain = {label: next(f for f in r["features"] if f["feature"] == "rain_3h_mm") for label, r in out.items()}
    assert rain["clean"]["psi"] < monitor.PSI_MODERATE and not any("rain" in x for x in out["clean"]["report_lines"])
    assert rain["x4"]["status"] == "shift" and out["x4"]["status"] == "shift"
    assert any(x.startswith("rain_3h_mm: PSI") for x in out["x4"]["report_lines"])


def _rain_gone(sources, share: float):
    """Sources whose AWS stations nearest to most cells stop sending rain, until they are the nearest station
    of ``share`` of the cells (the others within reach stand in for some of them)."""
    from features.domains.flood.features import station_series

    nearest = pd.Series(np.asarray(station_series(sources).cell_station)).value_counts(normalize=True)
    aws = nearest[nearest.index.isin(sources["aws"]["station_id"].unique())]
    gone = aws.index[:int(np.searchsorted(aws.cumsum().to_numpy(), share)) + 1].tolist()
    frames = {s: sources[s].assign(rain_mm=sources[s]["rain_mm"].where(~sources[s]["station_id"].isin(gone)))
              for s in ("asos", "aws")}
    return sources.replaced(frames)


def test_answers_missing_rain_open_an_input_quality_alert_that_clears(world, tmp_path):
    db, src = _db(world, tmp_path / "live.db"), world["sources"]
    dry = _rain_gone(src, 0.4)
    hours = pd.date_range(DAY + pd.Timedelta(days=1), periods=24 + 9, freq="h")
    _answer(db, world, src, "flood", hours[:24], {"lead_hours": 3})
    _answer(db, world, dry, "flood", hours[24:30], {"lead_hours": 3})  # stations stop sending rain
    report = monitor.check(db, domains=["flood"])
    flood = report["flood"]
    assert flood["status"] == "input_quality" and len(flood["problems"]) == 1, flood["problems"]
    problem = flood["problems"][0]
    assert problem.startswith("rain_1h, rain_3h, rain_6h, rain_24h") and " missing in " in problem, problem
    share = next(f for f in flood["features"] if f["feature"] == "rain_1h")["missing_recent"]
    assert 0.2 < share <= 0.45 and f"missing in {share:.0%} of the answers" in problem
    assert [e.kind for e in monitor.raise_alerts(db, report)] == ["opened"]
    assert [a["cause"] for a in _input_alerts(db)] == [problem]
    _answer(db, world, src, "flood", hours[30:33], {"lead_hours": 3})  # rain back for the newest hours
    report = monitor.check(db, domains=["flood"])
    assert report["flood"]["status"] != "input_quality" and not report["flood"]["problems"]
    assert [e.kind for e in monitor.raise_alerts(db, report)] == ["cleared"] and not [
        a for a in _input_alerts(db) if a["status"] == "open"]


def test_a_silent_feed_opens_one_alert_naming_it_at_a_fast_clock_and_clears_when_it_is_back(world, tmp_path):
    src, cut = world["sources"], DAY - pd.Timedelta(days=1)
    times = {"asos": "time", "aws": "time", "airkorea": "time", "tide": "time", "nowcast": "issued"}
    before, later = {}, {}
    for name, column in times.items():
        frame = src[name]
        when = pd.to_datetime(frame[column])
        frame, when = frame[when > cut - pd.Timedelta(days=8)], when[when > cut - pd.Timedelta(days=8)]
        held = (when <= cut).to_numpy()
        if name == "tide":  # the astronomical prediction is published ahead
            before[name] = pd.concat([frame.loc[held], frame.loc[~held].assign(tide_cm=np.nan)], ignore_index=True)
            later[name] = frame.loc[~held & frame["tide_cm"].notna().to_numpy()]
        else:
            before[name], later[name] = frame.loc[held], frame.loc[~held]
    store = ObservationStore(f"sqlite:///{tmp_path / 'live.db'}")
    columns = {name: [c.name for c in TABLES[name].columns if c.name != "batch"] for name in times}
    for name, frame in before.items():  # the feeds have been delivering (API batches) up to the cut
        recent = frame[pd.to_datetime(frame[times[name]]) > cut - pd.Timedelta(hours=12)]
        store.append(name, recent[[c for c in columns[name] if c in recent]], "api")
    served = ("flood", "traffic", "fine_dust")
    for name in served:
        monitor.store_reference(store.engine, name, "test", world["refs"][name])
    set_clock(Clock().at((cut + pd.Timedelta(minutes=40)).to_pydatetime()))
    try:
        frames = {**src.loaded(FORMATS), **{s: src.resolve(s, f) for s, f in before.items()}}
        engine = Engine(Sources.from_frames(frames, src.city), {n: world["models"][n] for n in served},
                        store=store, version=store.version())
        loop = LiveLoop(engine, store.engine)
        loop.step(force=True)
        silent = range(3, 6)  # the tide gauge sends nothing for the hours 03:00 to 05:00
        seen = []
        for k in range(1, 8):
            hour = cut + pd.Timedelta(hours=k)
            set_clock(Clock().at((hour + pd.Timedelta(minutes=40)).to_pydatetime()))  # the clock runs fast
            for name, frame in later.items():
                if name == "tide" and k in silent:
                    continue
                when = pd.to_datetime(frame[times[name]])
                first = cut + pd.Timedelta(hours=silent.start - 1) if name == "tide" and k == silent.stop else \
                    hour - pd.Timedelta(hours=1)
                rows = frame.loc[(when > first) & (when <= hour)]  # back: the missed hours too
                if len(rows):
                    store.append(name, rows[[c for c in columns[name] if c in rows]], "api")
            cycle = loop.step()
            assert cycle is not None and engine.data_time("flood")[0] == hour  # the cycle answered the new hour
            seen.append(([e.kind for e in cycle.events if e.alert["lead_hours"] == INPUTS_LEAD],
                         [(a["domain"], a["cause"]) for a in _input_alerts(store.engine) if a["status"] == "open"]))
    finally:
        set_clock(None)
    kinds, open_alerts = zip(*seen, strict=True)
    assert list(kinds) == [[], [], ["opened"], ["updated"], ["updated"], ["cleared"], []], kinds
    for k in silent:
        (domain, cause), = open_alerts[k - 1]  # exactly one alert: the tide gauge's, telling what flood did
        assert domain == "tide" and cause.startswith(f"tide: silent since {cut:%Y-%m-%d} 03:00 ({k - 2} h "), cause
        assert "flood answers since then fall back" in cause, cause  # the astronomical prediction stands in
    assert not open_alerts[0] and not open_alerts[1] and not open_alerts[5] and not open_alerts[6]
    assert len([a for a in list_alerts(store.engine, "all") if a["lead_hours"] == INPUTS_LEAD]) == 1


def test_retention_covers_the_trailing_reference_and_the_window(tmp_path):
    assert (monitor.TRAILING + monitor.MAX_WINDOW).days <= monitor.KEEP_DAYS
    db = database(f"sqlite:///{tmp_path / 'live.db'}")
    recorder = monitor.Recorder("test")
    X, pred = pd.DataFrame({"a": [1.0, 2.0]}), np.array([0.1, 0.2])
    newest = pd.Timestamp("2021-08-24 12:00")
    ages = (40, monitor.KEEP_DAYS + 1, monitor.KEEP_DAYS - 1, (monitor.TRAILING + monitor.MAX_WINDOW).days, 1, 0)
    for days in ages:
        recorder.add("flood", newest - pd.Timedelta(days=days), X, pred)
    recorder.add("flood", None, X, pred)  # a /predict record: no data time, kept by the clock
    set_clock(Clock().at(now_kst() - pd.Timedelta(days=monitor.KEEP_DAYS + 5)))
    try:
        recorder.add("traffic", newest, X, pred)  # recorded long ago on the clock
    finally:
        set_clock(None)
    recorder.flush(db)
    with db.connect() as conn:
        rows = conn.execute(monitor.SERVED.select()).mappings().all()
    kept = sorted((newest - pd.Timestamp(r["at"])).days for r in rows if r["domain"] == "flood" and r["at"] is not None)
    assert kept == sorted([d for d in ages if d <= monitor.KEEP_DAYS] * 2)
    assert sum(r["at"] is None for r in rows) == 2 and not [r for r in rows if r["domain"] == "traffic"]


def test_the_training_range_is_judged_with_a_margin_not_to_the_last_float32_digit():
    """A city-wide value equal to the training minimum (stored as float32) is inside; a hot day a little past
    the maximum is inside; a reading well past it (a unit error) is outside."""
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"temp": rng.uniform(-15, 29, 5000).astype(np.float32).astype(float)})
    ref = monitor.profile(train, rng.random(5000))
    lo = float(np.float32(2.28594771241831))  # what the stored table holds
    limits = {"temp": (lo, 29.0)}

    def outside(value: float) -> str:
        served = pd.DataFrame({"temp": np.full(100, value), "prediction": rng.random(100)})
        report = monitor.compare(ref, served, limits=limits)
        return next(f for f in report["features"] if f["feature"] == "temp")["status"]

    assert outside(2.28594771241831) != "out_of_range"  # the float64 value of the same minimum
    assert outside(29.75) != "out_of_range"  # within RANGE_MARGIN of the width past the maximum
    assert outside(29.0 * 4) == "out_of_range"

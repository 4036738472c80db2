"""Untidy feeds at a fast clock: two days of the small city replayed as the feeds really deliver them.

Every source arrives at its own delay after the hour (AWS 1-2 min, ASOS 5-10 min, the nowcast issued at
HH30, AirKorea 15-30 min, the tide 2-5 min), station by station, with one ASOS report later than its
lateness window, one row dated in the future, one stamped off the hour and one correction of a past hour.
The rows go through the real ingest path into a real store; the engine follows it and the live cycle maps
and alerts after every delivery. The clock is the product's one clock, moved to each delivery's time.

Asserted after every delivery: each domain's default time is the newest hour that is complete (every needed
station reported, or the source's lateness passed), computed here from the delivery schedule itself; and
an alert never changes while the data time stands still (a source merely late changes nothing).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from features.clock import Clock, set_clock
from features.registry import domains
from features.sources import Sources
from features.sources.check import known_entities
from features.sources.formats import FORMATS
from features.sources.timing import RULES
from live.alerts import get_alert, list_alerts
from live.cycle import CYCLE_MAPS, LiveLoop
from live.ingest import ingest_rows
from live.store import ObservationStore
from serving.engine import Engine, LoadedModel

HOURS = 48
SERVED = ("flood", "traffic", "fine_dust")
HISTORY = pd.Timedelta(days=8)


def _model(spec, rng, scale: float, offset: float = 0.0) -> LoadedModel:
    """A small booster over the domain's features (random, deterministic): the replay is about time, not skill."""
    features = list(spec.features)
    X = rng.random((300, len(features)))
    y = offset + scale * X[:, : min(3, len(features))].mean(axis=1)
    booster = xgb.train({"max_depth": 3, "eta": 0.5}, xgb.DMatrix(X, y, feature_names=features), 10)
    return LoadedModel("xgboost", booster, {"registered_model": spec.name, "registry_version": "1"})


def _rows(frame: pd.DataFrame) -> list[dict]:
    """Canonical rows as a client posts them (times as text, no missing fields)."""
    out = []
    for record in frame.to_dict("records"):
        row = {k: (f"{v:%Y-%m-%d %H:%M}" if isinstance(v, pd.Timestamp) else v) for k, v in record.items()
               if not (v is None or (isinstance(v, float) and np.isnan(v)))}
        out.append({k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()})
    return out


def _nowcast_items(frame: pd.DataFrame) -> list[dict]:
    """The nowcast's rows as KMA's API items (issued HH30, valid hours as fcstDate/fcstTime)."""
    items = []
    for r in frame.itertuples():
        base, fcst = r.issued - pd.Timedelta(minutes=30), r.valid - pd.Timedelta(hours=1)
        items.append({"baseDate": f"{base:%Y%m%d}", "baseTime": f"{base:%H%M}", "category": "RN1", "nx": int(r.nx),
                      "ny": int(r.ny), "fcstDate": f"{fcst:%Y%m%d}", "fcstTime": f"{fcst:%H%M}",
                      "fcstValue": "강수없음" if not r.rain_mm else f"{r.rain_mm:.1f}mm"})
    return items


def _label(source: str, frame: pd.DataFrame) -> pd.Series:
    if source == "nowcast":
        return frame["nx"].astype(str) + "," + frame["ny"].astype(str)
    column = {"airkorea": "station_code", "tide": "station"}.get(source, "station_id")
    return frame[column].astype(str)


@pytest.fixture
def replay(small_tables, tmp_path):
    src = Sources.from_settings(small_tables)
    city = src.city
    end = pd.Timestamp(src["asos"]["time"].max())
    cut = end - pd.Timedelta(hours=HOURS)
    live = {"asos": "time", "aws": "time", "airkorea": "time", "tide": "time", "nowcast": "issued"}
    before, later = {}, {}
    for source, column in live.items():
        frame = src[source]
        when = pd.to_datetime(frame[column])
        frame, when = frame[when > cut - HISTORY], when[when > cut - HISTORY]  # a month is history enough here
        held = when <= cut
        if source == "tide":  # the astronomical prediction is published ahead: held for the two days too
            ahead = frame.loc[~held].assign(tide_cm=np.nan)
            before[source] = pd.concat([frame.loc[held], ahead], ignore_index=True)
            observed = frame.loc[~held, ["station", "time", "tide_cm"]]
            later[source] = observed[observed["tide_cm"].notna()]
        else:
            before[source], later[source] = frame.loc[held], frame.loc[~held]
    store = ObservationStore(f"sqlite:///{tmp_path / 'live.db'}")
    for source, frame in before.items():  # the store holds the last days; the engine's snapshot all of them
        recent = frame[pd.to_datetime(frame[live[source]]) > cut - pd.Timedelta(days=3)]
        store.append(source, recent.drop(columns=[c for c in frame if c not in store_columns(source)]), "backfill")
    rng = np.random.default_rng(11)
    specs = domains()
    models = {"flood": _model(specs["flood"], rng, 0.6), "traffic": _model(specs["traffic"], rng, 0.02),
              "fine_dust": _model(specs["fine_dust"], rng, 80.0, 10.0)}
    set_clock(Clock().at((cut + pd.Timedelta(minutes=5)).to_pydatetime()))
    # As the service holds them: every source in memory, the live ones as of the cut.
    frames = {**src.loaded(FORMATS), **{s: src.resolve(s, f) for s, f in before.items()}}
    engine = Engine(Sources.from_frames(frames, city), models, store=store, version=store.version())
    loop = LiveLoop(engine, store.engine)
    try:
        yield {"engine": engine, "loop": loop, "store": store, "city": city, "later": later, "cut": cut,
               "end": end}
    finally:
        set_clock(None)


def store_columns(source: str) -> set[str]:
    from live.store import TABLES

    return {c.name for c in TABLES[source].columns}


def _deliveries(later: dict[str, pd.DataFrame], city, rng) -> list[tuple[pd.Timestamp, str, pd.DataFrame]]:
    """(arrival time, source, rows): each hour's rows of each source, in two groups of stations where the
    source has several, each group at its own delay within the source's usual range."""
    out = []
    for source, frame in later.items():
        rule = RULES[source]
        time = pd.to_datetime(frame[rule.time])
        for hour, rows in frame.groupby(time, sort=True):
            labels = _label(source, rows)
            # ASOS station by station (a partial hour), the others as one report of all their stations
            groups = np.array_split(np.sort(labels.unique()), 2) if source == "asos" else [labels.unique()]
            for group in groups:
                low, high = (d.total_seconds() for d in rule.delay)
                delay = pd.Timedelta(seconds=float(rng.uniform(low, high)))
                out.append((pd.Timestamp(hour) + delay, source, rows.loc[labels.isin(group).to_numpy()]))
    out.sort(key=lambda e: (e[0], e[1]))
    return out


def _complete(reported: dict, needed: dict, sources, hour: pd.Timestamp, now: pd.Timestamp) -> bool:
    """Whether ``hour`` is complete for these sources by the schedule itself."""
    return all(needed[s] <= reported.get((s, hour), set()) or now >= hour + RULES[s].lateness for s in sources)


def _alerts(db) -> dict:
    return {a["id"]: (a["level"], sorted(c["cell_id"] for c in get_alert(db, a["id"], cell_limit=5000)["cells"]))
            for a in list_alerts(db, "open")}


def test_a_two_day_replay_never_shows_a_partial_hour_and_late_feeds_change_no_alert(replay):
    engine, loop, store, city = replay["engine"], replay["loop"], replay["store"], replay["city"]
    rng = np.random.default_rng(5)
    deliveries = _deliveries(replay["later"], city, rng)
    # One ASOS report arrives well after its lateness window: its hour is complete without it first.
    slow = next(i for i, (t, s, rows) in enumerate(deliveries) if s == "asos" and t > replay["cut"] + pd.Timedelta(hours=HOURS // 2))
    t, s, rows = deliveries.pop(slow)
    deliveries.append((t.floor("h") + RULES["asos"].lateness + pd.Timedelta(minutes=25), s, rows))
    deliveries.sort(key=lambda e: (e[0], e[1]))
    needed = {s: known_entities(s, city, own=True) for s in RULES}
    specs = {name: engine.specs[name] for name in SERVED}
    reported: dict[tuple[str, pd.Timestamp], set] = {}
    loop.step(force=True)
    times, alerts, checked, moves = loop.data_times(), _alerts(store.engine), 0, 0
    for k, (arrival, source, rows) in enumerate(deliveries):
        set_clock(Clock().at(arrival.floor("s").to_pydatetime()))
        body = _nowcast_items(rows) if source == "nowcast" else _rows(rows)
        result = ingest_rows(store, source, body, city)
        assert not result.refused, result.refused
        time = pd.to_datetime(rows[RULES[source].time])
        for hour, label in zip(time, _label(source, rows), strict=True):
            reported.setdefault((source, pd.Timestamp(hour)), set()).add(label)
        loop.step()
        now = pd.Timestamp(arrival)
        for name, spec in specs.items():
            shown, awaited = engine.data_time(name)
            live = [s for s in spec.sources if s in RULES and needed[s]]
            hour = pd.Timestamp(shown)  # a traffic slot starts on its hour; fine dust is issued at 17:00 from it
            # The shown hour is complete, and no later held hour is (the newest complete hour).
            assert _complete(reported, needed, live, hour, now) or hour <= replay["cut"], (name, shown, source, k)
            nxt = hour + pd.Timedelta(hours=1)
            held = max(h for (s, h) in reported if s in live) if any(s in live for (s, _) in reported) else None
            if held is not None and nxt <= held and name == "flood":
                assert not _complete(reported, needed, live, nxt, now), (name, shown, nxt, source, k)
            if awaited:  # what is awaited is named with its deadline, for an hour not yet shown
                for waits in awaited.values():
                    assert all(pd.Timestamp(w["until"]) > now and w["missing"] for w in waits), awaited
            checked += 1
        new_times, new_alerts = loop.data_times(), _alerts(store.engine)
        if new_times == times:
            assert new_alerts == alerts, f"an alert changed while the data time stood still ({source} at {arrival})"
        else:
            moves += 1
        times, alerts = new_times, new_alerts
    assert moves >= HOURS - 2 and checked == len(deliveries) * len(SERVED)
    # Every hour of the two days became the flood default at some point, and the last one is complete.
    assert engine.data_time("flood")[0] == replay["end"]


def test_future_off_hour_rows_are_refused_and_a_past_correction_updates_only_that_hour(replay):
    engine, loop, store, city = replay["engine"], replay["loop"], replay["store"], replay["city"]
    cut = replay["cut"]
    now = cut + pd.Timedelta(minutes=5)
    set_clock(Clock().at(now.to_pydatetime()))
    loop.step(force=True)
    station = next(str(s.id) for s in city.weather_stations if s.kind == "asos" and not s.upwind)
    future = ingest_rows(store, "asos", [{"station_id": int(station), "time": f"{now + pd.Timedelta(hours=6):%Y-%m-%d %H:00}",
                                          "temp_c": 1.0}], city)
    assert future.accepted == 0 and "in the future" in future.refused[0]["reason"]
    assert future.refused[0]["row"] == 1 and future.refused[0]["field"] == "time"
    off = ingest_rows(store, "asos", [{"station_id": int(station), "time": f"{cut - pd.Timedelta(hours=3):%Y-%m-%d %H}:30",
                                       "rain_mm": 0.0}], city)
    assert off.accepted == 0 and "off the hour" in off.refused[0]["reason"]
    # A correction of an hour in the past: that hour's answers change; the cycle already issued does not.
    with store.engine.connect() as conn:
        issued = conn.execute(CYCLE_MAPS.select()).fetchall()
    past = cut - pd.Timedelta(hours=2)
    cell = engine.grid.cells["cell_id"].iloc[0]
    ask = {"domain": "traffic", "locations": [{"cell_id": cell}], "at": past.floor("3h").to_pydatetime(),
           "conditions": None}
    before = json.loads(engine.risk(**ask))["results"][0]["details"]["rain_3h_mm"]
    for kind in ("asos", "aws"):
        stations = [s.id for s in city.weather_stations if s.kind == kind]
        fix = ingest_rows(store, kind, [{"station_id": s, "time": f"{past.floor('3h') - pd.Timedelta(hours=h):%Y-%m-%d %H:%M}",
                                         "rain_mm": 30.0} for s in stations for h in (0, 1, 2)], city)
        assert fix.accepted and not fix.refused
    engine.follow()
    after = json.loads(engine.risk(**ask))["results"][0]["details"]["rain_3h_mm"]
    assert after != before and after >= 30.0
    loop.step()
    with store.engine.connect() as conn:
        kept = conn.execute(CYCLE_MAPS.select().where(CYCLE_MAPS.c.cycle.in_([r.cycle for r in issued]))).fetchall()
    assert kept == issued

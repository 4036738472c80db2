"""Alert rules on a real store: SQLite in a temporary folder, and the PostgreSQL server when one answers."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from live import alerts
from live.alerts import ALERT_EVENTS, CityLevels, ack, evaluate, get_alert, list_alerts
from live.db import METADATA, database

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CELLS = ["c1", "c2", "c3", "c4", "c5", "c6"]
START = datetime(2024, 7, 10, 6, 0)


def sqlite_store(tmp_path) -> sa.Engine:
    return database(f"sqlite:///{tmp_path / 'live.db'}")


def postgres_store():
    """An engine whose every table lives in a fresh schema (dropped afterwards); None if no server answers."""
    try:
        admin = sa.create_engine(PG_URL)
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means "no server"
        return None, f"no PostgreSQL server at {PG_URL}: {type(exc).__name__}"
    schema = f"alerts_test_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(sa.schema.CreateSchema(schema))
    engine = sa.create_engine(PG_URL, execution_options={"schema_translate_map": {None: schema}})
    METADATA.create_all(engine)

    def drop():
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.schema.DropSchema(schema, cascade=True))
        admin.dispose()
    return (engine, drop), None


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """The live database, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_store(tmp_path)
        return
    made, reason = postgres_store()
    if made is None:
        pytest.skip(reason)
    engine, drop = made
    yield engine
    drop()


def city(levels: dict[str, int], scores: dict[str, float] | None = None, causes: dict[str, str] | None = None,
         default: int = 0) -> pd.DataFrame:
    """Six cells in two districts; every cell not named is at ``default`` (-1 unknown, with no score)."""
    rows = []
    for i, cell in enumerate(CELLS):
        level = levels.get(cell, default)
        score = (scores or {}).get(cell, float("nan") if level < 0 else 25.0 * level + 10)
        rows.append({"cell_id": cell, "district": "중구" if i < 3 else "남동구", "lat": 37.4 + i / 100,
                     "lon": 126.6, "level": level, "score": score,
                     "cause": None if level < 0 else (causes or {}).get(cell, "rain over drain capacity")})
    return pd.DataFrame(rows)


def run(db, cycle: int, frames: dict[tuple[str, int], pd.DataFrame]):
    at = START + timedelta(hours=cycle)
    maps = [CityLevels(domain, lead, pd.Timestamp(at), frame) for (domain, lead), frame in frames.items()]
    return evaluate(db, cycle, maps, at + timedelta(minutes=2))


def event_ids(db) -> list[int]:
    with db.connect() as conn:
        return list(conn.execute(sa.select(ALERT_EVENTS.c.id).order_by(ALERT_EVENTS.c.id)).scalars())


def test_a_storm_opens_one_alert_escalates_updates_and_clears(db):
    flood = ("flood", 3)
    assert run(db, 1, {flood: city({"c1": 1})}) == []  # 주의 is below the alert level

    # c6 is unknown: whatever its (missing) score, it never alerts.
    [opened] = run(db, 2, {flood: city({"c1": 2, "c2": 2, "c6": -1})})
    assert opened.kind == "opened"
    assert opened.changes == {"level": [None, "경계"], "added": ["c1", "c2"], "counts": {"added": 2}}
    alert = opened.alert  # a summary: counts, no cell list
    assert (alert["domain"], alert["lead_hours"], alert["level"], alert["status"]) == ("flood", 3, "경계", "open")
    assert "cells" not in alert and alert["cell_count"] == 2 and alert["by_level"] == {"경계": 2}
    assert alert["districts"] == {"중구": 2} and alert["unknown"] == 0
    cells = get_alert(db, opened.alert_id)["cells"]
    assert [c["cell_id"] for c in cells] == ["c1", "c2"]
    assert cells[0] == {"cell_id": "c1", "district": "중구", "lat": 37.4, "lon": 126.6, "level": "경계",
                                 "level_en": "alert", "score": 60.0, "cause": "rain over drain capacity"}
    assert alert["data_time"] == "2024-07-10T08:00:00" and alert["opened_at"] == "2024-07-10T08:02:00"

    [escalated] = run(db, 3, {flood: city({"c1": 3, "c2": 2, "c3": 2}, causes={"c1": "tide", "c3": "tide"})})
    assert escalated.kind == "escalated" and escalated.alert_id == opened.alert_id
    assert escalated.changes == {"level": ["경계", "심각"], "added": ["c3"], "relevelled": ["c1"],
                                 "counts": {"added": 1, "relevelled": 1}, "cause": ["rain over drain capacity", "tide"]}
    assert escalated.alert["level"] == "심각" and escalated.alert["cause"] == "tide"
    assert escalated.alert["by_level"] == {"경계": 2, "심각": 1}
    assert [c["cell_id"] for c in get_alert(db, opened.alert_id)["cells"]] == ["c1", "c2", "c3"]  # worst first

    # The same cells at the same levels, scores moving: kept up to date, no event, no new alert.
    assert run(db, 4, {flood: city({"c1": 3, "c2": 2, "c3": 2}, scores={"c1": 91.0},
                                   causes={"c1": "tide", "c3": "tide"})}) == []
    [current] = list_alerts(db)
    assert current["id"] == opened.alert_id and current["cycle"] == 4
    assert get_alert(db, opened.alert_id)["cells"][0]["score"] == 91.0

    [lowered] = run(db, 5, {flood: city({"c1": 2, "c2": 1, "c3": 2}, causes={"c1": "tide", "c3": "tide"})})
    assert lowered.kind == "updated"
    assert lowered.changes == {"level": ["심각", "경계"], "removed": ["c2"], "relevelled": ["c1"],
                               "counts": {"removed": 1, "relevelled": 1}}

    [cleared] = run(db, 6, {flood: city({"c1": 1})})
    assert cleared.kind == "cleared" and cleared.changes == {"removed": ["c1", "c3"], "counts": {"removed": 2}}
    assert cleared.alert["status"] == "cleared" and cleared.alert["cleared_at"] == "2024-07-10T12:02:00"
    assert list_alerts(db) == []
    assert run(db, 7, {flood: city({"c1": 1})}) == []  # nothing to clear twice

    # The next storm is a new alert.
    [again] = run(db, 8, {flood: city({"c4": 2})})
    assert again.kind == "opened" and again.alert_id != opened.alert_id
    assert [a["id"] for a in list_alerts(db, status="all")] == [again.alert_id, opened.alert_id]  # newest first

    history = get_alert(db, opened.alert_id)
    assert [e["kind"] for e in history["events"]] == ["opened", "escalated", "updated", "cleared"]
    ids = event_ids(db)
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 5
    assert alerts.last_event_id(db) == ids[-1]
    assert [e["id"] for e in alerts.events_since(db, ids[1])] == ids[2:]


def test_unknown_cells_never_alert_and_missing_news_is_not_an_all_clear(db):
    flood = ("flood", 1)
    assert run(db, 1, {flood: city({}, default=-1)}) == []  # a whole map unknown: nothing to say
    assert run(db, 2, {flood: city({"c5": -1}, scores={"c5": 99.0})}) == []

    [opened] = run(db, 3, {flood: city({"c1": 3, "c2": 2})})
    # c1 turns unknown: it stays in the alert with its last known level, flagged; c2 falls below.
    [update] = run(db, 4, {flood: city({"c1": -1, "c2": 0})})
    assert update.kind == "updated" and update.changes == {"removed": ["c2"], "counts": {"removed": 1}}
    assert update.alert["level"] == "심각" and update.alert["unknown"] == 1
    [c1] = get_alert(db, opened.alert_id)["cells"]
    assert c1["cell_id"] == "c1" and c1["unknown"] is True and c1["level"] == "심각"
    # A map that says nothing of c1 at all changes nothing; a known low level clears it.
    assert run(db, 5, {flood: city({}, default=-1)}) == []
    [cleared] = run(db, 6, {flood: city({"c1": 1})})
    assert cleared.kind == "cleared"


def test_one_alert_per_domain_and_lead(db):
    storm = city({"c1": 2})
    events = run(db, 1, {("flood", 1): storm, ("flood", 3): storm, ("traffic", 0): storm})
    assert [(e.kind, e.alert["domain"], e.alert["lead_hours"]) for e in events] == [
        ("opened", "flood", 1), ("opened", "flood", 3), ("opened", "traffic", 0)]
    # A map that is not evaluated this cycle leaves its alert alone.
    assert run(db, 2, {("flood", 1): storm}) == []
    assert len(list_alerts(db)) == 3
    assert [a["lead_hours"] for a in list_alerts(db, domain="flood")] == [3, 1]
    with pytest.raises(ValueError, match="status"):
        list_alerts(db, status="closed")


def test_alert_levels_per_domain_from_the_environment(db, monkeypatch):
    monkeypatch.setenv(alerts.LEVELS_ENV, "traffic=심각, fine_dust=caution")
    events = run(db, 1, {("flood", 3): city({"c1": 2}), ("traffic", 0): city({"c1": 2}),
                         ("fine_dust", 0): city({"c2": 1})})
    assert [(e.alert["domain"], e.alert["level"]) for e in events] == [("flood", "경계"), ("fine_dust", "주의")]
    assert alerts.alert_levels("심각") == {"*": 3}
    assert alerts.alert_levels("flood=alert,serious") == {"*": 3, "flood": 2}
    for bad, named in (("flood=red", "red"), ("flod=경계", "flod")):
        with pytest.raises(ValueError, match=named):
            alerts.alert_levels(bad)


def test_acknowledge_and_dismiss_are_recorded(db):
    [opened] = run(db, 1, {("flood", 3): city({"c1": 3})})
    at = datetime(2024, 7, 10, 7, 10)
    acked = ack(db, opened.alert_id, " 김당직 ", "ack", note="crew sent", now=at)
    assert acked.kind == "acknowledged" and acked.by == "김당직" and acked.note == "crew sent"
    assert acked.alert["acknowledged"] == {"action": "ack", "by": "김당직", "at": "2024-07-10T07:10:00",
                                           "note": "crew sent"}
    dismissed = ack(db, opened.alert_id, "Lee", "dismiss")
    assert dismissed.kind == "dismissed" and dismissed.id > acked.id
    shown = get_alert(db, opened.alert_id)
    assert shown["acknowledged"]["action"] == "dismiss" and shown["acknowledged"]["by"] == "Lee"
    assert [(e["kind"], e["by"]) for e in shown["events"]] == [("opened", None), ("acknowledged", "김당직"),
                                                               ("dismissed", "Lee")]
    # A dismissed alert is still followed: escalation is news.
    [update] = run(db, 2, {("flood", 3): city({"c1": 3, "c2": 2})})
    assert update.kind == "updated" and update.alert["acknowledged"]["action"] == "dismiss"

    with pytest.raises(KeyError):
        ack(db, 999, "Kim", "ack")
    with pytest.raises(ValueError, match="action"):
        ack(db, opened.alert_id, "Kim", "silence")
    with pytest.raises(ValueError, match="by"):
        ack(db, opened.alert_id, "  ", "ack")


def test_events_stay_small_and_a_large_alert_is_read_a_page_at_a_time(db):
    """2,000 cells and 60 acknowledgements: every event (and so every webhook and stream message) is a few
    kilobytes, whatever the alert's size; GET /alerts/{id} pages its cells and events."""
    import json

    n = 2000
    many = pd.DataFrame({"cell_id": [f"x{i:04d}" for i in range(n)], "district": [f"구{i % 12}" for i in range(n)],
                         "lat": 37.5, "lon": 126.7, "level": [3 if i < 100 else 2 for i in range(n)],
                         "score": [90.0 - i / 100 for i in range(n)], "cause": "rain"})
    maps = [CityLevels("flood", 3, pd.Timestamp(START), many)]
    [opened] = evaluate(db, 1, maps, START)
    acks = [ack(db, opened.alert_id, f"officer {i}", "ack") for i in range(60)]
    assert opened.changes["counts"] == {"added": n} and len(opened.changes["added"]) == alerts.MAX_LISTED
    assert opened.alert["by_level"] == {"경계": 1900, "심각": 100} and opened.alert["cell_count"] == n
    assert len(opened.alert["districts"]) == alerts.MAX_DISTRICTS + 1 and sum(opened.alert["districts"].values()) == n
    assert max(len(json.dumps(e.as_dict(), ensure_ascii=False)) for e in [opened, *acks]) < 8_000

    first = get_alert(db, opened.alert_id, cell_limit=1500, event_limit=25)
    assert [c["cell_id"] for c in first["cells"]] == [f"x{i:04d}" for i in range(1500)]  # worst first
    assert first["cells_next_offset"] == 1500
    rest = get_alert(db, opened.alert_id, cell_offset=1500, cell_limit=1500)
    assert len(rest["cells"]) == 500 and rest["cells_next_offset"] is None
    # Events: the newest page first, each page oldest first, then back through the cursor.
    seen, before = [], None
    while True:
        page = get_alert(db, opened.alert_id, events_before=before, event_limit=25)
        ids = [e["id"] for e in page["events"]]
        assert ids == sorted(ids) and len(ids) <= 25
        seen = ids + seen
        before = page["events_before_next"]
        if before is None:
            break
    assert seen == [opened.id, *(a.id for a in acks)]

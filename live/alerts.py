"""Alerts: cells entering 경계 or 심각, grouped per domain and lead, pushed to webhooks and dashboards.

After each cycle re-scores a domain's city map, :func:`evaluate` compares it with the open alert of that
(domain, lead): one alert per (domain, lead_hours) stays open while any cell is at or above the domain's
alert level, and is updated in place (cells added or removed, level raised or lowered) instead of being
issued again each cycle; it is cleared when no cell is at that level any more. A person acknowledges or
dismisses it with :func:`ack`; that silences nothing (later changes are still recorded and pushed) but
says who has seen it, when and why.

Every change is an event in ``alert_events``, numbered by a counter that only grows in commit order (the
id a server-sent event stream resumes from with ``Last-Event-ID``). An event is compact: what changed (its
``changes``: cell ids added, removed and relevelled, at most :data:`MAX_LISTED` of each with their full
counts, the level and cause from/to) and a summary of its alert as it stood after it (level, counts per
level and district, no cell list), so its size does not grow with the alert: the cells are read, a page at
a time, from the alert itself (:func:`get_alert`). The same transaction queues the event for every webhook
(live/webhooks.py), so a crash loses nothing.

Alert levels (``URBAN_SAFETY_ALERT_LEVELS``): the lowest level that raises an alert, per domain, e.g.
``flood=경계,traffic=심각`` or ``flood=alert,traffic=serious``; a bare level (``심각``) sets every domain not
named. Default: 경계 (alert) for every domain.

A cell answered "unknown" (level -1, an essential input missing) never opens or joins an alert. A cell
already in an alert that turns unknown (or drops out of the map) stays in it, flagged ``unknown``, with
its last known level: missing data is not an all-clear.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from features.registry import LEVELS
from live import webhooks
from live.db import METADATA, now_kst, writing

LEVELS_ENV = "URBAN_SAFETY_ALERT_LEVELS"
DEFAULT_LEVEL = 2  # 경계 alert
#: What a person can do to an alert, and the event it records.
ACTIONS = {"ack": "acknowledged", "dismiss": "dismissed"}
EVENT_KINDS = ("opened", "escalated", "updated", "cleared", *ACTIONS.values())
#: The most cell ids an event lists per change (added, removed, relevelled); ``changes["counts"]`` has them all.
MAX_LISTED = 200
#: The most districts an alert's summary counts by name (the rest are summed as ``other``).
MAX_DISTRICTS = 10

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
ALERTS = sa.Table(
    "alerts", METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("domain", sa.Text, nullable=False),
    sa.Column("lead_hours", sa.Integer, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # open | cleared
    sa.Column("level", sa.Integer, nullable=False),  # index into LEVELS: the highest level among its cells
    sa.Column("cells", sa.Text, nullable=False),  # JSON: [{cell_id, district, lat, lon, level, level_en, score, cause}]
    sa.Column("cause", sa.Text),  # the most common cause among its cells
    sa.Column("data_time", sa.DateTime, nullable=False),  # the data time of the last map that confirmed it
    sa.Column("opened_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),  # its last change
    sa.Column("cleared_at", sa.DateTime),
    sa.Column("opened_cycle", sa.BigInteger),
    sa.Column("cycle", sa.BigInteger),  # the last cycle that evaluated it
    sa.Column("ack_action", sa.Text),  # ack | dismiss: the latest a person did
    sa.Column("ack_by", sa.Text),
    sa.Column("ack_at", sa.DateTime),
    sa.Column("ack_note", sa.Text),
    # What a per-event alert is about (an earthquake's event id, live/impact.py); NULL for map and input alerts.
    sa.Column("subject", sa.Text),
    sa.Column("details", sa.Text),  # JSON: a per-event alert's assessment (live/impact.py)
)
# One open alert per (domain, lead, subject): a partial unique index (SQLite and PostgreSQL both have them).
sa.Index("alerts_one_open_subject", ALERTS.c.domain, ALERTS.c.lead_hours, sa.func.coalesce(ALERTS.c.subject, ""),
         unique=True, sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))
ALERT_EVENTS = sa.Table(
    "alert_events", METADATA,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),  # from ALERT_CLOCK, see record_event
    sa.Column("alert_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("kind", sa.Text, nullable=False),  # one of EVENT_KINDS
    sa.Column("cycle", sa.BigInteger),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
    sa.Column("data_time", sa.DateTime),
    sa.Column("acted_by", sa.Text),  # who acknowledged or dismissed
    sa.Column("note", sa.Text),
    sa.Column("changes", sa.Text, nullable=False),  # JSON: what moved (added/removed cells, level from/to...)
    sa.Column("alert", sa.Text, nullable=False),  # JSON: the alert's summary after this event (alert_summary)
)
# The last event id handed out. A sequence (or autoincrement) number is taken when a row is inserted, not
# when it commits: on PostgreSQL a reader polling "id > N" could then pass over a smaller id that commits
# later. Taking the number from this row, locked until commit, orders ids by commit.
ALERT_CLOCK = sa.Table(
    "alert_clock", METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("last_event", sa.BigInteger, nullable=False),
)
sa.event.listen(ALERT_CLOCK, "after_create",
                lambda target, connection, **_: connection.execute(target.insert().values(id=1, last_event=0)))


@dataclass(frozen=True)
class CityLevels:
    """One re-scored city map, as the live cycle hands it over."""

    domain: str  # flood | traffic | earthquake | fine_dust
    lead_hours: int  # 0 where the domain has no lead
    at: pd.Timestamp  # the data time (naive KST) the map answers for
    cells: pd.DataFrame  # cell_id, district, lat, lon, level (index into LEVELS, -1 unknown), score, cause


@dataclass(frozen=True)
class AlertEvent:
    """One recorded change of an alert, with a summary of the alert as it stood after it."""

    id: int
    alert_id: int
    kind: str
    cycle: int | None
    recorded_at: str  # ISO time
    data_time: str | None
    by: str | None
    note: str | None
    changes: dict
    alert: dict  # alert_summary(): no cell list

    def as_dict(self) -> dict:
        return asdict(self)


# --- configuration --------------------------------------------------------------------------------

def level_index(name: str) -> int:
    """The index into :data:`LEVELS` of a level's Korean or English name (``경계``, ``alert``)."""
    for i, (ko, en) in enumerate(LEVELS):
        if name.strip() in (ko, en) or name.strip().lower() == en:
            return i
    raise ValueError(f"unknown alert level {name!r}; levels: {', '.join(f'{ko} ({en})' for ko, en in LEVELS)}")


def alert_levels(raw: str | None = None) -> dict[str, int]:
    """The lowest alerting level index per domain, from ``URBAN_SAFETY_ALERT_LEVELS`` (or ``raw``); the key
    ``*`` holds the default for domains not named."""
    from features.registry import domains

    raw = os.environ.get(LEVELS_ENV, "") if raw is None else raw
    out = {"*": DEFAULT_LEVEL}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        domain, sep, name = part.rpartition("=")
        domain = domain.strip() if sep else "*"
        if domain != "*" and domain not in domains():
            raise ValueError(f"{LEVELS_ENV}: unknown domain {domain!r} in {part!r}; domains: {', '.join(domains())}")
        try:
            out[domain] = level_index(name)
        except ValueError as exc:
            raise ValueError(f"{LEVELS_ENV}: {exc} (in {part!r})") from None
    return out


def threshold(domain: str, levels: dict[str, int]) -> int:
    return levels.get(domain, levels["*"])


# --- the rules ------------------------------------------------------------------------------------

def evaluate(db: sa.Engine, cycle: int, maps: list[CityLevels], issued_at: datetime) -> list[AlertEvent]:
    """Open, update or clear the alert of each map's (domain, lead) and record every change; one transaction
    for the whole cycle (events, alerts and webhook deliveries land together or not at all)."""
    with writing(db) as conn:
        return evaluate_in(conn, cycle, maps, issued_at)


def evaluate_in(conn, cycle: int, maps: list[CityLevels], issued_at: datetime) -> list[AlertEvent]:
    """:func:`evaluate` within the caller's writing transaction ``conn`` (the live cycle stores its maps
    and their alerts in one, so a reader never sees a cycle without its alerts)."""
    levels = alert_levels()
    events = []
    for levels_map in maps:
        events += _evaluate_one(conn, cycle, levels_map, threshold(levels_map.domain, levels), issued_at)
    return events


def _evaluate_one(conn, cycle: int, m: CityLevels, alert_level: int, issued_at: datetime) -> list[AlertEvent]:
    open_row = conn.execute(sa.select(ALERTS).where(
        ALERTS.c.domain == m.domain, ALERTS.c.lead_hours == m.lead_hours, ALERTS.c.status == "open")).mappings().first()
    frame = m.cells
    levels = pd.to_numeric(frame["level"], errors="coerce").fillna(-1).astype(int)
    members = {c["cell_id"]: c for c in map(_cell, frame[levels >= alert_level].to_dict("records"))}
    previous = {c["cell_id"]: c for c in json.loads(open_row["cells"])} if open_row else {}
    known = set(frame.loc[levels >= 0, "cell_id"])
    for cell_id, cell in previous.items():  # no news of a cell is not an all-clear: keep its last level
        if cell_id not in known:
            members[cell_id] = {**cell, "unknown": True}
    data_time = pd.Timestamp(m.at).to_pydatetime()

    if not members:
        if open_row is None:
            return []
        conn.execute(ALERTS.update().where(ALERTS.c.id == open_row["id"]).values(
            status="cleared", cleared_at=issued_at, updated_at=issued_at, cycle=cycle, data_time=data_time))
        return [record_event(conn, open_row["id"], "cleared", cycle, issued_at, data_time,
                        _listed(removed=sorted(previous)))]

    cells = sorted(members.values(), key=lambda c: (-_rank(c), -(c["score"] or 0.0), c["cell_id"]))
    level = max(_rank(c) for c in cells)
    cause = _most_common_cause(cells)
    values = dict(level=level, cells=json.dumps(cells, ensure_ascii=False), cause=cause, data_time=data_time,
                  cycle=cycle)
    if open_row is None:
        alert_id = conn.execute(ALERTS.insert().values(
            domain=m.domain, lead_hours=m.lead_hours, status="open", opened_at=issued_at, updated_at=issued_at,
            opened_cycle=cycle, **values)).inserted_primary_key[0]
        return [record_event(conn, alert_id, "opened", cycle, issued_at, data_time,
                        {"level": [None, LEVELS[level][0]], **_listed(added=sorted(members))})]

    changes = {}
    if level != open_row["level"]:
        changes["level"] = [LEVELS[open_row["level"]][0], LEVELS[level][0]]
    changes.update(_listed(
        added=sorted(set(members) - set(previous)), removed=sorted(set(previous) - set(members)),
        relevelled=sorted(i for i in set(members) & set(previous) if _rank(members[i]) != _rank(previous[i]))))
    if cause != open_row["cause"]:
        changes["cause"] = [open_row["cause"], cause]
    # Scores and the data time move every cycle: kept up to date, but not news on their own.
    conn.execute(ALERTS.update().where(ALERTS.c.id == open_row["id"]).values(
        **values, **({"updated_at": issued_at} if changes else {})))
    if not changes:
        return []
    kind = "escalated" if level > open_row["level"] else "updated"
    return [record_event(conn, open_row["id"], kind, cycle, issued_at, data_time, changes)]


def _listed(**lists: list[str]) -> dict:
    """The non-empty cell-id lists of a change, each cut to MAX_LISTED, and ``counts`` of them all (a
    change's size stays bounded however many cells move)."""
    lists = {k: v for k, v in lists.items() if v}
    if not lists:
        return {}
    return {**{k: v[:MAX_LISTED] for k, v in lists.items()}, "counts": {k: len(v) for k, v in lists.items()}}


def _cell(row: dict) -> dict:
    level = int(row["level"])
    return {"cell_id": str(row["cell_id"]), "district": _clean(row.get("district")),
            "lat": _clean(row.get("lat")), "lon": _clean(row.get("lon")),
            "level": LEVELS[level][0], "level_en": LEVELS[level][1],
            "score": _clean(row.get("score")), "cause": _clean(row.get("cause"))}


def _clean(value):
    """A JSON-safe scalar: NaN and pandas' missing values are None, NumPy numbers plain Python."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return None
    return value.item() if hasattr(value, "item") else value


def _rank(cell: dict) -> int:
    return level_index(cell["level"])


def _most_common_cause(cells: list[dict]) -> str | None:
    counts = Counter(c["cause"] for c in cells if c.get("cause"))
    # Ties go to the cause of the worse cells, then by name, so the answer never depends on row order.
    worst = {cause: max(_rank(c) for c in cells if c.get("cause") == cause) for cause in counts}
    return min(counts, key=lambda cause: (-counts[cause], -worst[cause], cause)) if counts else None


# --- inputs ----------------------------------------------------------------------------------------------

#: The lead of a domain's input-quality alert (drift or missing inputs, live/monitor.py): it is about the
#: data the domain answers from, not a map's cells, so it holds none; its cause lists the problems.
INPUTS_LEAD = -1


def data_quality(db: sa.Engine, domain: str, problems: list[str], issued_at: datetime) -> list[AlertEvent]:
    """Open (at 경계), update or clear ``domain``'s input-quality alert: open while ``problems`` is not empty."""
    cause = "; ".join(problems) or None
    with writing(db) as conn:
        row = conn.execute(sa.select(ALERTS).where(ALERTS.c.domain == domain, ALERTS.c.lead_hours == INPUTS_LEAD,
                                                   ALERTS.c.status == "open")).mappings().first()
        if cause is None:
            if row is None:
                return []
            conn.execute(ALERTS.update().where(ALERTS.c.id == row["id"]).values(
                status="cleared", cleared_at=issued_at, updated_at=issued_at))
            return [record_event(conn, row["id"], "cleared", None, issued_at, issued_at, {"cause": [row["cause"], None]})]
        if row is None:
            alert_id = conn.execute(ALERTS.insert().values(
                domain=domain, lead_hours=INPUTS_LEAD, status="open", level=DEFAULT_LEVEL, cells="[]", cause=cause,
                data_time=issued_at, opened_at=issued_at, updated_at=issued_at)).inserted_primary_key[0]
            return [record_event(conn, alert_id, "opened", None, issued_at, issued_at, {"cause": [None, cause]})]
        if cause == row["cause"]:
            return []
        conn.execute(ALERTS.update().where(ALERTS.c.id == row["id"]).values(cause=cause, updated_at=issued_at,
                                                                            data_time=issued_at))
        return [record_event(conn, row["id"], "updated", None, issued_at, issued_at, {"cause": [row["cause"], cause]})]


# --- people -------------------------------------------------------------------------------------------

def ack(db: sa.Engine, alert_id: int, by: str, action: str, note: str | None = None,
        now: datetime | None = None) -> AlertEvent:
    """Record that ``by`` acknowledged (``action="ack"``) or dismissed (``"dismiss"``) an alert, with the time
    and an optional note. KeyError for an unknown alert, ValueError for an unknown action or an empty name."""
    if action not in ACTIONS:
        raise ValueError(f"action: {action!r} is not one of {', '.join(ACTIONS)}")
    by = (by or "").strip()
    if not by:
        raise ValueError("by: the name of who acknowledges must not be empty")
    now = now or now_kst()
    with writing(db) as conn:
        row = conn.execute(sa.select(ALERTS.c.id).where(ALERTS.c.id == alert_id)).first()
        if row is None:
            raise KeyError(f"no alert {alert_id}")
        conn.execute(ALERTS.update().where(ALERTS.c.id == alert_id).values(
            ack_action=action, ack_by=by, ack_at=now, ack_note=note))
        return record_event(conn, alert_id, ACTIONS[action], None, now, None, {}, by=by, note=note)


# --- the event log --------------------------------------------------------------------------------------

def record_event(conn, alert_id: int, kind: str, cycle: int | None, at: datetime, data_time: datetime | None,
            changes: dict, by: str | None = None, note: str | None = None) -> AlertEvent:
    """Append one event (its id from the clock, locked until commit) and queue it for every webhook."""
    clock = conn.execute(sa.select(ALERT_CLOCK.c.last_event).where(ALERT_CLOCK.c.id == 1).with_for_update()).scalar_one()
    event_id = clock + 1
    conn.execute(ALERT_CLOCK.update().where(ALERT_CLOCK.c.id == 1).values(last_event=event_id))
    alert = alert_summary(conn.execute(sa.select(ALERTS).where(ALERTS.c.id == alert_id)).mappings().one())
    conn.execute(ALERT_EVENTS.insert().values(
        id=event_id, alert_id=alert_id, kind=kind, cycle=cycle, recorded_at=at, data_time=data_time, acted_by=by, note=note,
        changes=json.dumps(changes, ensure_ascii=False), alert=json.dumps(alert, ensure_ascii=False)))
    event = AlertEvent(id=event_id, alert_id=alert_id, kind=kind, cycle=cycle, recorded_at=_iso(at),
                       data_time=_iso(data_time), by=by, note=note, changes=changes, alert=alert)
    webhooks.enqueue(conn, event.as_dict())
    return event


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def alert_summary(row) -> dict:
    """An ``alerts`` row as lists, events and webhooks show it: everything but the cell list, with the
    cells counted (``cell_count``; ``by_level``: per level, ``unknown`` for cells whose news stopped;
    ``districts``: per district, the MAX_DISTRICTS largest, the rest as ``other``)."""
    cells = json.loads(row["cells"])
    by_level = Counter(c["level"] for c in cells)
    districts = Counter(c.get("district") or "unknown" for c in cells).most_common()
    named = dict(districts[:MAX_DISTRICTS])
    if rest := sum(n for _, n in districts[MAX_DISTRICTS:]):
        named["other"] = rest
    return {"id": row["id"], "domain": row["domain"], "lead_hours": row["lead_hours"], "status": row["status"],
            "level": LEVELS[row["level"]][0], "level_en": LEVELS[row["level"]][1], "cause": row["cause"],
            "cell_count": len(cells), "by_level": {ko: by_level[ko] for ko, _ in LEVELS if by_level[ko]},
            "unknown": sum(bool(c.get("unknown")) for c in cells), "districts": named,
            **({"subject": row["subject"], "impact": json.loads(row["details"])} if row.get("details") else {}),
            "data_time": _iso(row["data_time"]), "opened_at": _iso(row["opened_at"]),
            "updated_at": _iso(row["updated_at"]), "cleared_at": _iso(row["cleared_at"]), "cycle": row["cycle"],
            "acknowledged": None if row["ack_action"] is None else {
                "action": row["ack_action"], "by": row["ack_by"], "at": _iso(row["ack_at"]), "note": row["ack_note"]}}


def event_dict(row) -> dict:
    """An ``alert_events`` row as the API and the event stream show it (an event stored before events were
    compact loses its snapshot's cell list here)."""
    alert = json.loads(row["alert"])
    alert.pop("cells", None)
    return AlertEvent(id=row["id"], alert_id=row["alert_id"], kind=row["kind"], cycle=row["cycle"],
                      recorded_at=_iso(row["recorded_at"]), data_time=_iso(row["data_time"]), by=row["acted_by"],
                      note=row["note"], changes=json.loads(row["changes"]), alert=alert).as_dict()


# --- reading -------------------------------------------------------------------------------------------

#: Page sizes of :func:`get_alert`: (default, most).
CELL_PAGE, EVENT_PAGE = (500, 5000), (100, 1000)


def list_alerts(db: sa.Engine, status: str = "open", domain: str | None = None, limit: int = 100) -> list[dict]:
    """Alert summaries, newest first: ``status="open"`` only the open ones, ``"all"`` cleared ones too."""
    if status not in ("open", "all"):
        raise ValueError(f"status: {status!r} is not one of open, all")
    query = sa.select(ALERTS).order_by(ALERTS.c.opened_at.desc(), ALERTS.c.id.desc()).limit(limit)
    if status == "open":
        query = query.where(ALERTS.c.status == "open")
    if domain:
        query = query.where(ALERTS.c.domain == domain)
    with db.connect() as conn:
        return [alert_summary(r) for r in conn.execute(query).mappings()]


def get_alert(db: sa.Engine, alert_id: int, cell_offset: int = 0, cell_limit: int = CELL_PAGE[0],
              events_before: int | None = None, event_limit: int = EVENT_PAGE[0]) -> dict:
    """One alert: its summary, a page of its cells (worst first, from ``cell_offset``) and a page of its
    events (the newest ``event_limit`` before event id ``events_before``, listed oldest first), with the
    cursors of the next pages (``cells_next_offset``, ``events_before_next``: None on the last page).
    KeyError if there is no such alert."""
    e = ALERT_EVENTS.c
    with db.connect() as conn:
        row = conn.execute(sa.select(ALERTS).where(ALERTS.c.id == alert_id)).mappings().first()
        if row is None:
            raise KeyError(f"no alert {alert_id}")
        query = sa.select(ALERT_EVENTS).where(e.alert_id == alert_id)
        if events_before is not None:
            query = query.where(e.id < events_before)
        events = [event_dict(r) for r in conn.execute(query.order_by(e.id.desc()).limit(event_limit + 1)).mappings()]
    cells = json.loads(row["cells"])
    more_events = len(events) > event_limit
    events = events[:event_limit][::-1]
    end = cell_offset + cell_limit
    return {**alert_summary(row), "cells": cells[cell_offset:end], "cells_offset": cell_offset,
            "cells_next_offset": end if end < len(cells) else None,
            "events": events, "events_before_next": events[0]["id"] if more_events else None}


def events_since(db: sa.Engine, after: int, limit: int = 100) -> list[dict]:
    """The events recorded after event id ``after``, oldest first (at most ``limit``)."""
    query = sa.select(ALERT_EVENTS).where(ALERT_EVENTS.c.id > after).order_by(ALERT_EVENTS.c.id).limit(limit)
    with db.connect() as conn:
        return [event_dict(r) for r in conn.execute(query).mappings()]


def last_event_id(db: sa.Engine) -> int:
    """The id of the newest event (0 before the first)."""
    with db.connect() as conn:
        return conn.execute(sa.select(ALERT_CLOCK.c.last_event).where(ALERT_CLOCK.c.id == 1)).scalar() or 0

"""Alert and replay routes, a FastAPI router mounted on the service's ``web`` app.

| route | answer |
|---|---|
| ``GET /alerts?status=open|all&domain=&limit=`` | ``{"alerts": [summary...], "last_event_id": n}``, newest first |
| ``GET /alerts/{id}?cell_offset=&cell_limit=&events_before=&event_limit=`` | the alert's summary, a page of its cells (worst first) and a page of its events (oldest first), with the next pages' cursors |
| ``POST /alerts/{id}/ack`` | body ``{"by": "name", "action": "ack"|"dismiss", "note": "..."}`` -> the event |
| ``GET /alerts/stream`` | server-sent events: ``event: alert``, ``id:`` the event id, ``data:`` the event JSON |
| ``GET /replay?domain=&hours=24&lead_hours=`` | the stored cycles of a domain over the last hours of data |
| ``GET /replay/{cycle}/{domain}?lead_hours=`` | that cycle's stored map (the /risk_map GeoJSON) |

Every route sits behind the API key when one is set (serving/security.py): alerts name places at risk and
who handles them, so reading them is no more open than a risk map. Errors are the API's shape
(serving/errors.py): 400 for a bad parameter or body (unknown fields included), 404 for an unknown alert,
cycle or map, 503 when the live database cannot be reached.

An event is compact (live/alerts.py): what changed and the alert's summary, never its cell list, so every
message of the stream and every webhook is bounded whatever the alert's size; ``GET /alerts/{id}`` pages
the cells (``cell_limit`` default 500, at most 5,000) and the events (``event_limit`` default 100, at most
1,000; ``events_before``: the cursor ``events_before_next`` of the page before).

The stream polls ``alert_events`` about once a second for ids after the last one sent (at most 100 a
message batch), starting after ``Last-Event-ID`` (header, or ``?last_event_id=``) when given, else after
the newest event (a client reads ``GET /alerts`` first, then streams from its ``last_event_id``: nothing
falls between). Its first message is ``event: ready`` with the id it starts after. A ``Last-Event-ID`` the
server never issued (above the newest: the store was reset, moved or restored) is answered with
``event: reset`` naming the newest id (``id:`` line and ``data: {"last_event_id": n, "requested": m}``)
before ``ready``: the client re-reads ``GET /alerts`` and goes on from there, blind to nothing. A comment
line keeps idle connections open; each connection ends after ``URBAN_SAFETY_ALERT_STREAM_S`` seconds
(default 45, under the server's request deadline) and the client reconnects with ``Last-Event-ID``,
missing nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import unicodedata
import zlib
from datetime import timedelta
from typing import Literal

import sqlalchemy as sa
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from live import alerts as live_alerts
from live.cycle import CYCLE_MAPS, CYCLES
from live.db import database, store_url
from serving.errors import ApiError, documented_body, read_body

router = APIRouter()
STREAM_SECONDS_ENV = "URBAN_SAFETY_ALERT_STREAM_S"
POLL_S = 1.0
PING_S = 15
MAX_HOURS = 24 * 7


class AckBody(BaseModel):
    """``POST /alerts/{id}/ack``: who, what, and why."""

    model_config = ConfigDict(extra="forbid", strict=True)
    by: str = Field(max_length=200, description="who acknowledges: the duty officer's name")
    action: Literal["ack", "dismiss"]
    note: str | None = Field(default=None, max_length=2000)

    @field_validator("by")
    @classmethod
    def named(cls, value: str) -> str:
        if (bad := _invisible(value, allowed="")) is not None:
            raise ValueError(f"must not contain the control or format character {bad}")
        if not any(_visible(ch) for ch in value):
            raise ValueError("must name who acknowledges (a visible character)")
        return value.strip()

    @field_validator("note")
    @classmethod
    def plain(cls, value: str | None) -> str | None:
        if value is not None and (bad := _invisible(value, allowed="\n\t")) is not None:
            raise ValueError(f"must not contain the control or format character {bad} (newlines and tabs are fine)")
        return value


def _invisible(value: str, allowed: str) -> str | None:
    """The first control (Cc) or format (Cf: zero-width, BOM, bidi) character of ``value`` not in
    ``allowed``, as ``U+XXXX``, or None."""
    for ch in value:
        if ch not in allowed and unicodedata.category(ch) in ("Cc", "Cf"):
            return f"U+{ord(ch):04X}"
    return None


#: Letters and symbols that draw nothing: Hangul fillers (a Korean IME's "blank" name) and the braille blank.
_BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _visible(ch: str) -> bool:
    """A character that shows: not a control, format, separator (Z*), unassigned, surrogate or private-use
    code point, whitespace, or a blank glyph."""
    return unicodedata.category(ch)[0] not in ("C", "Z") and not ch.isspace() and ch not in _BLANK_GLYPHS


def _db() -> sa.Engine:
    from urban_safety.settings import get_settings

    return database(store_url(get_settings()))


async def _answer(fn, *args):
    """``fn(db, *args)`` on a worker thread; the live module's KeyError and ValueError become 404 and 400."""
    try:
        return await run_in_threadpool(lambda: fn(_db(), *args))
    except ApiError as exc:
        return exc.response()
    except sa.exc.SQLAlchemyError as exc:
        return ApiError(503, [], f"the live database is unavailable: {type(exc).__name__}", "unavailable").response()


def _params(request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
    params = dict(request.query_params)
    if unknown := sorted(set(params) - set(allowed)):
        raise ApiError(400, [unknown[0]], f"unknown parameter; allowed: {', '.join(allowed) or 'none'}", "extra_forbidden")
    return params


def _int(params: dict, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, [name], f"{raw!r} is not a whole number", "int_parsing") from None
    if not low <= value <= high:
        raise ApiError(400, [name], f"{value} is outside {low}-{high}", "out_of_range")
    return value


def _domain(params: dict, required: bool) -> str | None:
    from features.registry import domains

    name = params.get("domain") or None
    if name is None and required:
        raise ApiError(400, ["domain"], f"required; one of {', '.join(domains())}", "missing")
    if name is not None and name not in domains():
        raise ApiError(400, ["domain"], f"unknown domain {name!r}; one of {', '.join(domains())}", "enum")
    return name


def _iso(t):
    return None if t is None else t.isoformat(timespec="seconds")


#: A path id: ASCII decimal digits only (str.isdigit() also takes "²" or "٣"), at most a BigInteger.
_ID = re.compile(r"[0-9]{1,19}")
MAX_ID = 2**63 - 1


def path_id(raw: str, field: str, what: str) -> int:
    """``raw`` (a path segment) as a row id, or a 404 naming ``field``: an id is 1-19 ASCII digits and at
    most 2**63-1 (the columns are BIGINT); anything else names no row, and is never a 500."""
    if _ID.fullmatch(raw) is None or int(raw) > MAX_ID:
        raise ApiError(404, [field], f"no {what} {raw!r}", "not_found")
    return int(raw)


def _alert_id(raw: str) -> int:
    return path_id(raw, "id", "alert")


# --- alerts -----------------------------------------------------------------------------------------------

@router.get("/alerts")
async def list_alerts(request: Request) -> Response:
    """Open alerts (``status=all``: cleared ones too), newest first, and the id of the newest event."""
    try:
        params = _params(request, ("status", "domain", "limit"))
        status = params.get("status") or "open"
        if status not in ("open", "all"):
            raise ApiError(400, ["status"], f"{status!r} is not one of open, all", "enum")
        domain, limit = _domain(params, required=False), _int(params, "limit", 100, 1, 1000)
    except ApiError as exc:
        return exc.response()

    def read(db):
        last = live_alerts.last_event_id(db)  # before the list: an event in between is streamed, not lost
        return JSONResponse({"alerts": live_alerts.list_alerts(db, status, domain, limit), "last_event_id": last})
    return await _answer(read)


@router.get("/alerts/stream")
async def stream(request: Request) -> Response:
    """Alert events as they are recorded (server-sent events), resuming after ``Last-Event-ID``."""
    try:
        params = _params(request, ("last_event_id",))
        raw = request.headers.get("last-event-id") or params.get("last_event_id")
        after = _int({"last_event_id": raw}, "last_event_id", None, 0, 2**62)
    except ApiError as exc:
        return exc.response()
    newest = await _answer(live_alerts.last_event_id)
    if isinstance(newest, Response):
        return newest
    requested = after
    if after is None or after > newest:  # an id never issued resumes nowhere: start from the newest, and say so
        after = newest
    seconds = float(os.environ.get(STREAM_SECONDS_ENV) or 45)

    async def events():
        nonlocal after
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        if requested is not None and requested > newest:
            yield {"event": "reset", "id": str(newest),
                   "data": json.dumps({"last_event_id": newest, "requested": requested,
                                       "reason": f"event {requested} was never issued (the newest is {newest}): "
                                                 "re-read GET /alerts and go on from the newest"})}
        # The client's reconnection delay, and where this stream starts (tests and dashboards wait for it).
        yield {"event": "ready", "id": str(after), "data": json.dumps({"last_event_id": after}), "retry": 2000}
        while loop.time() < end:
            batch = await run_in_threadpool(live_alerts.events_since, _db(), after)
            for event in batch:
                after = event["id"]
                yield {"event": "alert", "id": str(event["id"]), "data": json.dumps(event, ensure_ascii=False)}
            if not batch:
                await asyncio.sleep(POLL_S)

    return EventSourceResponse(events(), ping=PING_S, headers={"Cache-Control": "no-store",
                                                                "X-Accel-Buffering": "no"})


@router.get("/alerts/{alert_id}")
async def get_alert(alert_id: str, request: Request) -> Response:
    """One alert: its summary, a page of its cells and a page of its events."""
    try:
        params = _params(request, ("cell_offset", "cell_limit", "events_before", "event_limit"))
        number = _alert_id(alert_id)
        pages = {"cell_offset": _int(params, "cell_offset", 0, 0, 10**9),
                 "cell_limit": _int(params, "cell_limit", live_alerts.CELL_PAGE[0], 1, live_alerts.CELL_PAGE[1]),
                 "events_before": _int(params, "events_before", None, 1, MAX_ID),
                 "event_limit": _int(params, "event_limit", live_alerts.EVENT_PAGE[0], 1, live_alerts.EVENT_PAGE[1])}
    except ApiError as exc:
        return exc.response()

    def read(db):
        try:
            return JSONResponse(live_alerts.get_alert(db, number, **pages))
        except KeyError:
            raise ApiError(404, ["id"], f"no alert {number}", "not_found") from None
    return await _answer(read)


@router.post("/alerts/{alert_id}/ack", openapi_extra=documented_body(AckBody))
async def acknowledge(alert_id: str, request: Request) -> Response:
    """Record that a person acknowledged or dismissed an alert; answers the recorded event."""
    raw = await request.body()
    try:
        number = _alert_id(alert_id)
        _params(request, ())
    except ApiError as exc:
        return exc.response()
    body, problem = read_body(raw, AckBody, "by, action and note")
    if problem is not None:
        return problem

    def record(db):
        try:
            event = live_alerts.ack(db, number, body.by, body.action, body.note)
        except KeyError:
            raise ApiError(404, ["id"], f"no alert {number}", "not_found") from None
        except ValueError as exc:
            field, _, msg = str(exc).partition(": ")
            raise ApiError(400, [field], msg or str(exc)) from None
        return JSONResponse(event.as_dict())
    return await _answer(record)


# --- replay -----------------------------------------------------------------------------------------------

@router.get("/replay")
async def replay(request: Request) -> Response:
    """The cycles stored for a domain over the last ``hours`` of data time (to the newest stored map),
    oldest first: cycle id, data time, lead, when it ran, and how many cells were at each level."""
    try:
        params = _params(request, ("domain", "hours", "lead_hours"))
        domain = _domain(params, required=True)
        hours = _int(params, "hours", 24, 1, MAX_HOURS)
        lead = _int(params, "lead_hours", None, 0, 240)
    except ApiError as exc:
        return exc.response()

    def read(db):
        m = CYCLE_MAPS.c
        where = [m.domain == domain] + ([m.lead_hours == lead] if lead is not None else [])
        with db.connect() as conn:
            newest = conn.execute(sa.select(sa.func.max(m.at)).where(*where)).scalar()
            rows = [] if newest is None else conn.execute(
                sa.select(m.cycle, m.at, m.lead_hours, m.levels, CYCLES.c.started_at, CYCLES.c.store_version)
                .select_from(CYCLE_MAPS.outerjoin(CYCLES, CYCLES.c.id == m.cycle))
                .where(*where, m.at > newest - timedelta(hours=hours))
                .order_by(m.at, m.cycle, m.lead_hours)).mappings().all()
        return JSONResponse({"domain": domain, "hours": hours, "lead_hours": lead, "newest": _iso(newest),
                             "steps": [{"cycle": r["cycle"], "at": _iso(r["at"]), "lead_hours": r["lead_hours"],
                                        "started_at": _iso(r["started_at"]), "store_version": r["store_version"],
                                        "levels": json.loads(r["levels"])}
                                       for r in rows]})
    return await _answer(read)


@router.get("/replay/{cycle}/{domain}")
async def replay_map(cycle: str, domain: str, request: Request) -> Response:
    """The city map a cycle stored for a domain (GeoJSON, as ``POST /risk_map`` answered then)."""
    try:
        params = _params(request, ("lead_hours",))
        _domain({"domain": domain}, required=True)
        lead = _int(params, "lead_hours", None, 0, 240)
        number = path_id(cycle, "cycle", "cycle")
    except ApiError as exc:
        return exc.response()

    def read(db):
        m = CYCLE_MAPS.c
        where = [m.cycle == number, m.domain == domain] + ([m.lead_hours == lead] if lead is not None else [])
        with db.connect() as conn:
            rows = conn.execute(sa.select(m.lead_hours, m.geojson).where(*where).order_by(m.lead_hours)).all()
        if not rows:
            raise ApiError(404, ["cycle"], f"no {domain} map stored for cycle {number}"
                           + (f" at lead {lead} h" if lead is not None else ""), "not_found")
        if len(rows) > 1:
            leads = ", ".join(str(r.lead_hours) for r in rows)
            raise ApiError(400, ["lead_hours"], f"required: cycle {number} stored {domain} at leads {leads}", "missing")
        return Response(zlib.decompress(rows[0].geojson), media_type="application/geo+json")
    return await _answer(read)


# --- monitoring ---------------------------------------------------------------------------------------------

@router.get("/monitoring")
async def monitoring(request: Request) -> Response:
    """Per domain: the answers of the last ``hours`` of data time against what was answered before at the same
    hours (or the training table's months): ``status`` insufficient / ok / shift (report lines only) /
    input_quality (``problems``: what opens the operator alert), ``reference``, ``report_lines``, ``exempt``
    (inputs that are no drift, and why), ``performance`` (estimated without labels), ``prediction_psi`` and
    per feature PSI, missing shares and share outside the training range; see live/monitor.py."""
    try:
        params = _params(request, ("hours", "domain"))
        hours = _int(params, "hours", 24, 1, 24 * 30)
        domain = _domain(params, required=False)
    except ApiError as exc:
        return exc.response()

    def read(db):
        from live.monitor import check

        report = check(db, hours, [domain] if domain else None)
        return JSONResponse({"hours": hours, "domains": report})
    return await _answer(read)

"""The alert and replay routes of the real served process: the event stream, acknowledgement, replay.

The test process writes alerts and cycle maps into the served process's own live database (SQLite under
its data folder), as the live cycle would, and reads them back over HTTP.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections import Counter
from datetime import datetime, timedelta

import httpx
import pandas as pd
import pytest

from features.registry import LEVELS
from live.alerts import CityLevels, evaluate
from live.cycle import CYCLE_MAPS, CYCLES
from live.db import database, writing

KO = [ko for ko, _ in LEVELS]


@pytest.fixture(scope="module")
def live_db(served, small_tables):
    """The served process's live database (it uses ``<data>/live.db``: no URBAN_SAFETY_STORE_URL is set)."""
    return database(f"sqlite:///{small_tables.data / 'live.db'}")


def city_levels(fc: dict, domain: str, lead: int, raise_worst: int = 0, level: int = 2) -> CityLevels:
    """The map's own cells, all below the alert level (at most 주의) but its ``raise_worst`` highest-scoring
    cells, put at ``level``."""
    rows = []
    for f in fc["features"]:
        p = f["properties"]
        ring = f["geometry"]["coordinates"][0][:-1]
        rows.append({"cell_id": p["cell_id"], "district": p["district"], "lat": sum(y for _, y in ring) / len(ring),
                     "lon": sum(x for x, _ in ring) / len(ring), "level": KO.index(p["level"]) if p["level"] else -1,
                     "score": p["score"] if p["score"] is not None else float("nan"), "cause": p.get("cause")})
    cells = pd.DataFrame(rows)
    cells["level"] = cells["level"].clip(upper=1)  # below the alert level, but for the cells raised here
    worst = cells.sort_values("score", ascending=False).index[:raise_worst]
    cells.loc[worst, "level"] = level
    cells.loc[worst, "cause"] = "test storm"
    return CityLevels(domain, lead, pd.Timestamp(fc["metadata"]["at"]), cells)


def store_cycle(db, fc: dict, domain: str, lead: int, at: datetime) -> int:
    """Record a cycle and its stored map, as the live cycle does; the cycle's id."""
    levels = dict(fc["metadata"]["levels"], unknown=fc["metadata"]["unknown"])
    with writing(db) as conn:
        cycle = conn.execute(CYCLES.insert().values(started_at=at + timedelta(minutes=3), store_version=0,
                                                    data_time=at, seconds=1.5, timings="{}")).inserted_primary_key[0]
        conn.execute(CYCLE_MAPS.insert().values(cycle=cycle, domain=domain, lead_hours=lead, at=at,
                                                levels=json.dumps(levels),
                                                geojson=zlib.compress(json.dumps(fc).encode())))
    return cycle


def risk_map(url: str, domain: str) -> dict:
    answer = httpx.post(f"{url}/risk_map", json={"domain": domain}, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()


class Stream:
    """A background reader of GET /alerts/stream: the events it has seen, in order."""

    def __init__(self, url: str, last_event_id: int | None = None):
        self.events: list[dict] = []
        self.resets: list[dict] = []
        self.ready_data: dict = {}
        self.ready = threading.Event()
        self.seen = threading.Condition()
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        self.client = httpx.Client(base_url=url, timeout=httpx.Timeout(10, read=60))
        self.response = self.client.send(self.client.build_request("GET", "/alerts/stream", headers=headers),
                                          stream=True)
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        fields: dict = {}
        try:
            for line in self.response.iter_lines():
                if line.startswith(":"):
                    continue
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                    continue
                with self.seen:
                    if fields.get("event") == "ready":
                        self.ready_data = {"sse_id": int(fields["id"]), **json.loads(fields["data"])}
                        self.ready.set()
                    elif fields.get("event") == "reset":
                        self.resets.append({"sse_id": int(fields["id"]), **json.loads(fields["data"])})
                    elif fields.get("event") == "alert":
                        self.events.append({"sse_id": int(fields["id"]), **json.loads(fields["data"])})
                    self.seen.notify_all()
                fields = {}
        except httpx.HTTPError:
            pass

    def wait_for(self, count: int, seconds: float = 20) -> list[dict]:
        with self.seen:
            assert self.seen.wait_for(lambda: len(self.events) >= count, seconds), self.events
            return list(self.events)

    def close(self):
        self.response.close()
        self.client.close()


def test_stream_ack_and_resume(served, live_db):
    fc = risk_map(served, "traffic")
    stream = Stream(served)
    try:
        assert stream.response.status_code == 200
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        assert stream.ready.wait(20)
        [opened] = evaluate(live_db, 1, [city_levels(fc, "traffic", 0, raise_worst=3)], datetime(2024, 7, 1, 9))
        [escalated] = evaluate(live_db, 2, [city_levels(fc, "traffic", 0, raise_worst=4, level=3)],
                               datetime(2024, 7, 1, 10))
        events = stream.wait_for(2)
        assert [(e["sse_id"], e["id"], e["kind"]) for e in events] == [
            (opened.id, opened.id, "opened"), (escalated.id, escalated.id, "escalated")]
        assert events[1]["alert"]["cell_count"] == 4 and events[1]["alert"]["level"] == "심각"

        answer = httpx.post(f"{served}/alerts/{opened.alert_id}/ack",
                            json={"by": "김당직", "action": "ack", "note": "crew sent"}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["kind"] == "acknowledged" and answer.json()["alert"]["acknowledged"]["by"] == "김당직"
        [*_, acked] = stream.wait_for(3)
        assert acked["id"] == answer.json()["id"] and acked["kind"] == "acknowledged"
    finally:
        stream.close()

    # A reconnecting client names the last event it saw and gets everything after it.
    again = Stream(served, last_event_id=opened.id)
    try:
        assert [e["kind"] for e in again.wait_for(2)] == ["escalated", "acknowledged"]
    finally:
        again.close()

    listed = httpx.get(f"{served}/alerts", params={"domain": "traffic"}, timeout=30).json()
    assert listed["last_event_id"] >= acked["id"]
    assert [a["id"] for a in listed["alerts"]] == [opened.alert_id]
    shown = httpx.get(f"{served}/alerts/{opened.alert_id}", timeout=30).json()
    assert [e["kind"] for e in shown["events"]] == ["opened", "escalated", "acknowledged"]


def test_an_event_id_never_issued_is_answered_with_a_reset_and_nothing_is_skipped(served, live_db):
    """A dashboard holding an id from before a store reset: told the newest id, then given every new event."""
    fc = risk_map(served, "traffic")
    newest = httpx.get(f"{served}/alerts", timeout=30).json()["last_event_id"]
    stream = Stream(served, last_event_id=newest + 1000)
    try:
        assert stream.ready.wait(20)
        assert stream.resets == [{"sse_id": newest, "last_event_id": newest, "requested": newest + 1000,
                                  "reason": stream.resets[0]["reason"]}]
        assert stream.ready_data == {"sse_id": newest, "last_event_id": newest}
        [event] = evaluate(live_db, 9, [city_levels(fc, "traffic", 12, raise_worst=2)], datetime(2024, 7, 1, 13))
        assert [e["id"] for e in stream.wait_for(1)] == [event.id]
    finally:
        stream.close()
    # An id at or below the newest is no reset.
    again = Stream(served, last_event_id=newest)
    try:
        assert again.ready.wait(20) and again.resets == [] and again.ready_data["last_event_id"] == newest
    finally:
        again.close()


def test_an_alert_pages_its_cells_and_events(served, live_db):
    fc = risk_map(served, "traffic")
    [opened] = evaluate(live_db, 10, [city_levels(fc, "traffic", 24, raise_worst=7)], datetime(2024, 7, 1, 14))
    for i in range(3):
        httpx.post(f"{served}/alerts/{opened.alert_id}/ack", json={"by": f"officer {i}", "action": "ack"}, timeout=30)
    page = httpx.get(f"{served}/alerts/{opened.alert_id}", params={"cell_limit": 5, "event_limit": 2},
                     timeout=30).json()
    assert page["cell_count"] == 7 and len(page["cells"]) == 5 and page["cells_next_offset"] == 5
    assert [e["kind"] for e in page["events"]] == ["acknowledged", "acknowledged"]
    older = httpx.get(f"{served}/alerts/{opened.alert_id}", params={
        "cell_offset": 5, "cell_limit": 5, "events_before": page["events_before_next"]}, timeout=30).json()
    assert len(older["cells"]) == 2 and older["cells_next_offset"] is None
    assert [e["kind"] for e in older["events"]] == ["opened", "acknowledged"] and older["events_before_next"] is None
    assert {c["cell_id"] for c in page["cells"]} | {c["cell_id"] for c in older["cells"]} == {
        c["cell_id"] for c in httpx.get(f"{served}/alerts/{opened.alert_id}", timeout=30).json()["cells"]}
    assert all("cells" not in e["alert"] for e in page["events"] + older["events"])


def test_bad_requests_are_shaped_errors(served, live_db):
    fc = risk_map(served, "traffic")
    [event] = evaluate(live_db, 3, [city_levels(fc, "traffic", 6, raise_worst=1)], datetime(2024, 7, 1, 11))
    cases = [
        ("post", f"/alerts/{event.alert_id}/ack", {"by": "Kim", "action": "ack", "urgent": True}, 400, "urgent"),
        ("post", f"/alerts/{event.alert_id}/ack", {"by": " ", "action": "ack"}, 400, "by"),
        ("post", f"/alerts/{event.alert_id}/ack", {"by": "Kim", "action": "mute"}, 400, "action"),
        ("post", f"/alerts/{event.alert_id}/ack", {"action": "ack"}, 400, "by"),
        ("post", "/alerts/987654/ack", {"by": "Kim", "action": "ack"}, 404, "id"),
        ("get", "/alerts/987654", None, 404, "id"),
        ("get", "/alerts?status=closed", None, 400, "status"),
        ("get", "/alerts?domain=volcano", None, 400, "domain"),
        ("get", f"/alerts/{event.alert_id}?cell_limit=0", None, 400, "cell_limit"),
        ("get", f"/alerts/{event.alert_id}?event_limit=5000", None, 400, "event_limit"),
        ("get", f"/alerts/{event.alert_id}?cells=all", None, 400, "cells"),
        ("get", "/replay", None, 400, "domain"),
        ("get", "/replay?domain=flood&hours=1000", None, 400, "hours"),
        ("get", "/replay/987654/flood", None, 404, "cycle"),
    ]
    for method, path, body, status, field in cases:
        answer = httpx.request(method, f"{served}{path}", json=body, timeout=30)
        assert answer.status_code == status, (path, body, answer.text)
        error = answer.json()
        assert error["error"].startswith(field) and error["detail"][0]["loc"][0] == field, (path, error)


def test_replay_lists_stored_cycles_and_returns_their_maps(served, live_db):
    fc = risk_map(served, "flood")
    newest = datetime(2024, 7, 20, 12)
    old = store_cycle(live_db, fc, "flood", 3, newest - timedelta(hours=30))  # outside the last 24 h
    cycles = [store_cycle(live_db, fc, "flood", 3, newest - timedelta(hours=h)) for h in (2, 1, 0)]
    store_cycle(live_db, fc, "flood", 1, newest)

    listed = httpx.get(f"{served}/replay", params={"domain": "flood", "lead_hours": 3}, timeout=30).json()
    assert [s["cycle"] for s in listed["steps"]] == cycles and old not in [s["cycle"] for s in listed["steps"]]
    assert listed["newest"] == newest.isoformat() and listed["steps"][0]["started_at"] == "2024-07-20T10:03:00"
    assert listed["steps"][-1]["levels"] == dict(fc["metadata"]["levels"], unknown=fc["metadata"]["unknown"])
    assert Counter(s["lead_hours"] for s in httpx.get(f"{served}/replay", params={"domain": "flood"},
                                                      timeout=30).json()["steps"]) == {3: 3, 1: 1}

    stored = httpx.get(f"{served}/replay/{cycles[-1]}/flood", params={"lead_hours": 3}, timeout=30)
    assert stored.status_code == 200 and stored.headers["content-type"] == "application/geo+json"
    assert stored.json() == fc
    assert httpx.get(f"{served}/replay/{cycles[-1]}/flood", timeout=30).status_code == 200  # one lead stored
    assert httpx.get(f"{served}/replay/{cycles[-1]}/flood", params={"lead_hours": 6}, timeout=30).status_code == 404


def test_alert_routes_need_the_api_key(tmp_path, monkeypatch):
    """Deny by default: the alert and replay routes are not among the security middleware's open paths."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from serving.alerts_api import router
    from serving.security import ApiKeyMiddleware

    monkeypatch.setenv("URBAN_SAFETY_DATA_DIR", str(tmp_path))
    app = FastAPI()
    app.include_router(router)
    client = TestClient(ApiKeyMiddleware(app, api_key="k3y"))
    for method, path in (("GET", "/alerts"), ("GET", "/alerts/1"), ("POST", "/alerts/1/ack"),
                         ("GET", "/alerts/stream"), ("GET", "/replay?domain=flood"), ("GET", "/replay/1/flood")):
        answer = client.request(method, path)
        assert answer.status_code == 401 and answer.json()["detail"][0]["loc"] == ["authorization"], path
    answer = client.get("/alerts", headers={"Authorization": "Bearer k3y"})
    assert answer.status_code == 200 and answer.json() == {"alerts": [], "last_event_id": 0}

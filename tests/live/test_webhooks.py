"""Webhook deliveries to a real local HTTP receiver that fails, dedups and verifies signatures."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from live import webhooks
from live.alerts import ack
from live.db import now_kst
from live.webhooks import DELIVERIES, WebhookConfig, deliver_pending, pending
from tests.live.test_alerts import city, run, sqlite_store

SECRET = "s3cret-월요일"


class Receiver:
    """A webhook receiver as the module docstring tells one to be: verify the signature, act once per
    Idempotency-Key. ``/hook`` answers 500 to the first two attempts of each key, ``/down`` always."""

    def __init__(self):
        self.lock = threading.Lock()
        self.attempts: dict[str, int] = {}
        self.acted: list[dict] = []  # one entry per event acted on
        self.handled: set[str] = set()
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers["Idempotency-Key"]
                with receiver.lock:
                    receiver.attempts[key] = receiver.attempts.get(key, 0) + 1
                    if self.path == "/down" or (self.path == "/hook" and receiver.attempts[key] <= 2):
                        return self.answer(500)
                    if not webhooks.verify(raw, self.headers.get(webhooks.SIGNATURE_HEADER), SECRET):
                        receiver.bad_signatures += 1
                        return self.answer(401)
                    if key not in receiver.handled:
                        receiver.handled.add(key)
                        receiver.acted.append({"key": key, "body": json.loads(raw), "headers": dict(self.headers)})
                return self.answer(200)

            def answer(self, status):
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def configured(monkeypatch, receiver):
    monkeypatch.setenv(webhooks.URLS_ENV, f"{receiver.url}/hook")
    monkeypatch.setenv(webhooks.SECRET_ENV, SECRET)
    monkeypatch.setenv(webhooks.BACKOFF_ENV, "0.01")
    monkeypatch.setenv(webhooks.ATTEMPTS_ENV, "5")
    return receiver


def deliver_until_done(db, rounds: int = 200) -> int:
    delivered = 0
    for _ in range(rounds):
        if not pending(db):
            return delivered
        delivered += deliver_pending(db)
        time.sleep(0.02)
    raise AssertionError(f"{pending(db)} deliveries still pending after {rounds} rounds")


def deliveries(db) -> list[dict]:
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(DELIVERIES).order_by(DELIVERIES.c.id)).mappings()]


def test_each_event_is_acted_on_once_after_two_failures(tmp_path, configured):
    receiver, db = configured, sqlite_store(tmp_path)
    [opened] = run(db, 1, {("flood", 3): city({"c1": 2})})
    [escalated] = run(db, 2, {("flood", 3): city({"c1": 3})})
    acked = ack(db, opened.alert_id, "김당직", "ack", note="crew sent")
    events = [opened, escalated, acked]
    assert pending(db) == 3  # queued with the events, in their transactions

    assert deliver_until_done(db) == 3
    assert receiver.bad_signatures == 0
    assert sorted(a["body"]["event"]["id"] for a in receiver.acted) == [e.id for e in events]  # each once
    assert set(receiver.attempts.values()) == {3}  # two 500s, then a 200, under one stable key
    for act in receiver.acted:
        event = next(e for e in events if e.id == act["body"]["event"]["id"])
        assert act["key"] == webhooks.idempotency_key(event.id, f"{receiver.url}/hook")
        assert act["headers"]["X-Urban-Safety-Event"] == event.kind
        assert int(act["headers"][webhooks.TIMESTAMP_HEADER]) == pytest.approx(time.time(), abs=60)
        assert act["body"]["alert"] == event.alert and act["body"]["event"]["kind"] == event.kind
    assert receiver.acted[-1]["body"]["alert"]["acknowledged"]["by"] == "김당직"
    rows = deliveries(db)
    assert [r["attempts"] for r in rows] == [3, 3, 3] and all(r["delivered_at"] for r in rows)

    # The process dies after the receiver acted but before the delivery was recorded: it is sent again,
    # and the receiver, seeing its key again, does not act twice (the claim's lease is over).
    with db.begin() as conn:
        conn.execute(DELIVERIES.update().where(DELIVERIES.c.id == rows[0]["id"])
                     .values(delivered_at=None, next_attempt_at=now_kst()))
    assert deliver_until_done(db) == 1
    assert len(receiver.acted) == 3 and receiver.attempts[receiver.acted[0]["key"]] == 4


def test_deliveries_left_by_a_crashed_process_go_out_next_time(tmp_path, configured):
    receiver = configured
    db = sqlite_store(tmp_path)
    run(db, 1, {("flood", 3): city({"c1": 2})})
    run(db, 2, {("flood", 3): city({"c1": 3})})
    db.dispose()  # the process stops before delivering: the outbox rows are all that is left

    fresh = sa.create_engine(str(db.url))
    assert pending(fresh) == 2
    # One deliverer claims the rows, then dies mid-send: they wait out the lease, then go out.
    now = now_kst()
    claimed = webhooks._claim(fresh, now, WebhookConfig.from_env(), 100)
    assert len(claimed) == 2
    assert deliver_pending(fresh, now=now) == 0 and receiver.attempts == {}
    later = now + WebhookConfig.from_env().lease + timedelta(seconds=1)
    deliver_pending(fresh, now=later)  # first failures (500); back-off from "later"
    assert deliver_pending(fresh, now=later + timedelta(seconds=1)) == 0  # second failures
    assert deliver_pending(fresh, now=later + timedelta(seconds=2)) == 2
    assert len(receiver.acted) == 2 and pending(fresh) == 0


def test_a_receiver_that_never_answers_well_is_given_up(tmp_path, monkeypatch, receiver):
    monkeypatch.setenv(webhooks.URLS_ENV, f"{receiver.url}/down, http://127.0.0.1:9/closed")
    monkeypatch.setenv(webhooks.BACKOFF_ENV, "0.01")
    monkeypatch.setenv(webhooks.ATTEMPTS_ENV, "3")
    monkeypatch.setenv(webhooks.TIMEOUT_ENV, "2")
    db = sqlite_store(tmp_path)
    [event] = run(db, 1, {("flood", 3): city({"c1": 2})})
    assert deliver_until_done(db) == 0
    down, closed = deliveries(db)
    assert (down["attempts"], closed["attempts"]) == (3, 3)
    assert down["gave_up_at"] and closed["gave_up_at"] and not down["delivered_at"]
    assert down["last_error"].startswith("HTTP 500") and "Connect" in closed["last_error"]
    assert down["event_id"] == closed["event_id"] == event.id
    # One key per event and URL.
    assert webhooks.idempotency_key(event.id, down["url"]) != webhooks.idempotency_key(event.id, closed["url"])


def test_configuration_is_checked(monkeypatch):
    monkeypatch.setenv(webhooks.URLS_ENV, "ftp://example.org/hook")
    with pytest.raises(ValueError, match=webhooks.URLS_ENV):
        WebhookConfig.from_env()
    monkeypatch.setenv(webhooks.URLS_ENV, "https://example.org/hook")
    monkeypatch.setenv(webhooks.BACKOFF_ENV, "0")
    with pytest.raises(ValueError, match=webhooks.BACKOFF_ENV):
        WebhookConfig.from_env()
    body = b'{"event":{}}'
    assert webhooks.verify(body, webhooks.sign(body, "k"), "k")
    assert not webhooks.verify(body + b" ", webhooks.sign(body, "k"), "k")
    assert not webhooks.verify(body, None, "k")

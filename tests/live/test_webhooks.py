"""Webhook deliveries to a real local HTTP receiver that fails, dedups and verifies signatures (with the
Standard Webhooks reference library, as a receiver written to the convention would)."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from live import webhooks
from live.alerts import ack
from live.webhooks import DELIVERIES, Deliverer, WebhookConfig, deliver_pending, pending
from tests.live.test_alerts import city, run, sqlite_store

SECRET = "whsec_" + base64.b64encode(b"a 24-byte signing key!!!").decode()


class Receiver:
    """A webhook receiver as the module docstring tells one to be: verify the signature (Standard Webhooks:
    id, timestamp within 5 minutes, body), act once per webhook-id. ``/hook`` answers 500 to the first two
    attempts of each id, ``/down`` always. Every attempt's arrival (wall time) is kept."""

    def __init__(self):
        self.lock = threading.Lock()
        self.attempts: dict[str, int] = {}
        self.acted: list[dict] = []  # one entry per event acted on
        self.handled: set[str] = set()
        self.bad_signatures = 0
        self.arrivals: dict[str, list[float]] = {}
        self.secret = SECRET
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers["webhook-id"]
                with receiver.lock:
                    receiver.arrivals.setdefault(key, []).append(time.time())
                    receiver.attempts[key] = receiver.attempts.get(key, 0) + 1
                    if self.path == "/down" or (self.path == "/hook" and receiver.attempts[key] <= 2):
                        return self.answer(500)
                    try:
                        Webhook(receiver.secret).verify(raw, dict(self.headers))
                    except WebhookVerificationError:
                        receiver.bad_signatures += 1
                        return self.answer(401)
                    if not webhooks.verify(raw, self.headers.get(webhooks.SIGNATURE_HEADER), SECRET):
                        receiver.bad_signatures += 1  # the older header signs the same body
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
        assert act["headers"]["Idempotency-Key"] == act["key"]
        assert act["headers"]["X-Urban-Safety-Event"] == event.kind
        assert act["headers"]["webhook-timestamp"] == act["headers"][webhooks.TIMESTAMP_HEADER]
        assert int(act["headers"][webhooks.TIMESTAMP_HEADER]) == pytest.approx(time.time(), abs=60)
        assert act["body"]["alert"] == event.alert and act["body"]["event"]["kind"] == event.kind
    assert receiver.acted[-1]["body"]["alert"]["acknowledged"]["by"] == "김당직"
    rows = deliveries(db)
    assert [r["attempts"] for r in rows] == [3, 3, 3] and all(r["delivered_at"] for r in rows)

    # The process dies after the receiver acted but before the delivery was recorded: it is sent again,
    # and the receiver, seeing its key again, does not act twice (the claim's lease is over).
    with db.begin() as conn:
        conn.execute(DELIVERIES.update().where(DELIVERIES.c.id == rows[0]["id"])
                     .values(delivered_at=None, next_attempt_at=webhooks.wall_kst()))
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
    now = webhooks.wall_kst()
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


def test_the_deliverer_sends_within_seconds_and_retries_on_the_documented_schedule(tmp_path, configured,
                                                                                  monkeypatch):
    """No cycle, no new data: an acknowledgement's webhook goes out on the deliverer's own loop within a
    second or two, and each retry follows BACKOFF x 2^(attempt-1) from the failure before it."""
    receiver, db = configured, sqlite_store(tmp_path)
    [opened] = run(db, 1, {("flood", 3): city({"c1": 2})})
    monkeypatch.setenv(webhooks.POLL_ENV, "30")  # so only the commit's wake-up and the retry times can send
    deliverer = Deliverer(db, WebhookConfig.from_env()).start()
    try:
        deliver_until_done(db, rounds=100)  # the opening: out of the way
        monkeypatch.setenv(webhooks.BACKOFF_ENV, "0.4")  # long enough to see the schedule
        t0 = time.time()
        acked = ack(db, opened.alert_id, "김당직", "ack")
        key = webhooks.idempotency_key(acked.id, f"{receiver.url}/hook")
        for _ in range(100):
            if any(a["key"] == key for a in receiver.acted):
                break
            time.sleep(0.05)
        arrivals = receiver.arrivals[key]
        assert len(arrivals) == 3 and receiver.attempts[key] == 3  # two 500s, then acted on once
        assert arrivals[0] - t0 < 2.0  # the first attempt: woken by the event, not by a cycle
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
        assert gaps[0] >= 0.4 - 0.02 and gaps[1] >= 0.8 - 0.02  # 0.4 s, then 0.8 s (20 ms: timer granularity)
        assert gaps[0] < 2.0 and gaps[1] < 3.0
        row = next(r for r in deliveries(db) if r["event_id"] == acked.id)
        assert (row["first_attempt_at"] - row["queued_at"]).total_seconds() < 2.0 and row["attempts"] == 3
    finally:
        deliverer.stop()


def test_signatures_follow_standard_webhooks_and_a_replayed_message_is_refused():
    body = json.dumps({"event": {"id": 7, "kind": "opened"}, "alert": {}}).encode()
    sent = webhooks.datetime.now(webhooks.KST)
    for secret, receiver_key in ((SECRET, SECRET), ("plain secret 월", "plain secret 월".encode())):
        headers = webhooks.headers_for("urban-safety-7-x", body, "opened", secret, sent)
        assert headers["webhook-signature"].startswith("v1,") and headers["webhook-id"] == "urban-safety-7-x"
        assert Webhook(receiver_key).verify(body, headers) == json.loads(body)
        assert webhooks.verify(body, headers[webhooks.SIGNATURE_HEADER], secret)
        with pytest.raises(WebhookVerificationError):
            Webhook(receiver_key).verify(body + b" ", headers)  # any other bytes
        old = webhooks.headers_for("urban-safety-7-x", body, "opened", secret, sent - timedelta(minutes=6))
        with pytest.raises(WebhookVerificationError, match="too old"):
            Webhook(receiver_key).verify(body, old)  # more than 5 minutes off: a replay
    assert "webhook-signature" not in webhooks.headers_for("i", body, "opened", None, sent)  # unsigned, said in the log


def test_targets_come_from_the_configuration_only(tmp_path, configured, monkeypatch):
    """A delivery queued for a URL that is no longer configured is given up, never sent."""
    receiver, db = configured, sqlite_store(tmp_path)
    run(db, 1, {("flood", 3): city({"c1": 2})})
    monkeypatch.setenv(webhooks.URLS_ENV, "http://127.0.0.1:9/elsewhere")
    assert deliver_pending(db) == 0
    [row] = deliveries(db)
    assert row["gave_up_at"] and "no longer among" in row["last_error"] and receiver.attempts == {}


def test_a_malformed_whsec_secret_is_a_configuration_error(monkeypatch):
    monkeypatch.setenv(webhooks.SECRET_ENV, "whsec_not*base64")
    with pytest.raises(ValueError, match=webhooks.SECRET_ENV):
        WebhookConfig.from_env()
    monkeypatch.setenv(webhooks.URLS_ENV, "http://127.0.0.1:9/hook")
    assert webhooks.start_delivery(sa.create_engine("sqlite://")) is None  # logged; the service still answers


def test_a_store_from_before_the_delivery_times_gets_the_new_columns(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = sa.create_engine(url)
    with old.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE deliveries (id INTEGER PRIMARY KEY, event_id BIGINT NOT NULL, url TEXT "
                             "NOT NULL, body TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt_at DATETIME NOT "
                             "NULL, delivered_at DATETIME, gave_up_at DATETIME, last_error TEXT)")
        conn.exec_driver_sql("INSERT INTO deliveries VALUES (1, 1, 'http://x', '{}', 1, '2024-01-01 00:00:00', "
                             "'2024-01-01 00:00:01', NULL, NULL)")
    old.dispose()
    from live.db import database

    db = database(url)
    [row] = deliveries(db)
    assert row["queued_at"] is None and row["first_attempt_at"] is None and row["attempts"] == 1
    indexes = {i["name"] for i in sa.inspect(db).get_indexes("deliveries")}
    assert {"ix_deliveries_event_id", "ix_deliveries_next_attempt_at"} <= indexes  # declared since, made too

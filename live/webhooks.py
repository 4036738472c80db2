"""Webhooks: every alert event POSTed to each configured URL, signed, retried, recorded, on its own loop.

An outbox: the event's transaction also writes one ``deliveries`` row per URL (:func:`enqueue`), so an
event is never recorded without its deliveries, nor lost when the process stops before sending them.
Every process that records events (the service workers for acknowledgements, the live cycle for maps)
runs a :class:`Deliverer`: a thread that sends what is due at once when its own process queues an event
and otherwise looks every ``URBAN_SAFETY_WEBHOOK_POLL_S`` (default 1 s) for rows other processes queued
and retries that fell due. A due row is claimed for a lease before it is sent, so two deliverers (two
workers, two replicas) never send it together, and one that dies mid-send leaves it to be sent again when
the lease ends. Delivery times (queued, attempts, lease, back-off) follow the wall clock, not the
injectable clock of ``features/clock.py``: they are about networks, which a replayed clock does not speed up.

A delivery is ``POST <url>`` with the JSON body ``{"event": {...}, "alert": {...}}``: the event (what
changed: cells added and removed, level, counts; see live/alerts.py) and a summary of the alert as it
stood after it (no cell list: ``GET /alerts/{id}`` pages the cells). Headers, following the Standard
Webhooks convention (https://www.standardwebhooks.com, signed with its reference library):

- ``webhook-id``: the same on every attempt of one event to one URL (a receiver acts once per id);
- ``webhook-timestamp``: when this attempt was sent, Unix seconds;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">``;

and, kept for receivers written before them:

- ``X-Urban-Safety-Signature: sha256=<hex>``: HMAC-SHA256 of the raw body bytes;
- ``X-Urban-Safety-Timestamp`` (= ``webhook-timestamp``), ``X-Urban-Safety-Event`` (the event kind:
  opened, escalated, updated, cleared, acknowledged, dismissed), ``Idempotency-Key`` (= ``webhook-id``).

The key is ``URBAN_SAFETY_WEBHOOK_SECRET``: a ``whsec_``-prefixed base64 secret (the convention's form) is
decoded to its bytes; any other value is used as its UTF-8 bytes, as before. Without a secret nothing is
signed (a warning is logged). A receiver verifies before acting, on the bytes as received::

    from standardwebhooks.webhooks import Webhook
    payload = Webhook(secret).verify(raw_body, request.headers)   # whsec_ secret; a plain one: secret.encode()
    # raises when the signature is wrong or the timestamp is more than 5 minutes off (a replayed message)
    if headers["webhook-id"] already handled: answer 2xx again and do nothing
    act, remember the id, answer 2xx

Delivery is at least once: any 2xx answer counts as delivered; anything else (or no answer within the
timeout) is retried after ``URBAN_SAFETY_WEBHOOK_BACKOFF_S`` x 2^(attempts-1) seconds (capped at one hour)
until ``URBAN_SAFETY_WEBHOOK_MAX_ATTEMPTS`` attempts, when the delivery is given up (``gave_up_at``, with the
last error). Deliveries are not ordered: a receiver that keeps state per alert keeps the highest
``event.id`` it has seen (ids only grow).

Configuration: ``URBAN_SAFETY_WEBHOOKS`` (comma-separated http(s) URLs; the only targets: a queued delivery
whose URL is no longer configured is given up, never sent), ``URBAN_SAFETY_WEBHOOK_SECRET``,
``URBAN_SAFETY_WEBHOOK_BACKOFF_S`` (default 30), ``URBAN_SAFETY_WEBHOOK_MAX_ATTEMPTS`` (default 10),
``URBAN_SAFETY_WEBHOOK_TIMEOUT_S`` (default 10), ``URBAN_SAFETY_WEBHOOK_POLL_S`` (default 1).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from live.db import KST, METADATA, writing

log = logging.getLogger("urban_safety.live")

URLS_ENV = "URBAN_SAFETY_WEBHOOKS"
SECRET_ENV = "URBAN_SAFETY_WEBHOOK_SECRET"
BACKOFF_ENV = "URBAN_SAFETY_WEBHOOK_BACKOFF_S"
ATTEMPTS_ENV = "URBAN_SAFETY_WEBHOOK_MAX_ATTEMPTS"
TIMEOUT_ENV = "URBAN_SAFETY_WEBHOOK_TIMEOUT_S"
POLL_ENV = "URBAN_SAFETY_WEBHOOK_POLL_S"
SIGNATURE_HEADER = "X-Urban-Safety-Signature"
TIMESTAMP_HEADER = "X-Urban-Safety-Timestamp"
SECRET_PREFIX = "whsec_"
MAX_BACKOFF_S = 3600.0

DELIVERIES = sa.Table(
    "deliveries", METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # exactly the bytes sent (UTF-8), so every attempt signs the same
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    # Wall clock (KST, naive) from here on: see the module docstring.
    sa.Column("next_attempt_at", sa.DateTime, nullable=False, index=True),
    sa.Column("queued_at", sa.DateTime),  # when the event was recorded
    sa.Column("first_attempt_at", sa.DateTime),  # the first send: its delay from queued_at is what a receiver waits
    sa.Column("delivered_at", sa.DateTime),
    sa.Column("gave_up_at", sa.DateTime),
    sa.Column("last_error", sa.Text),
    sa.UniqueConstraint("event_id", "url"),
)


def wall_kst() -> datetime:
    """The wall clock in KST, naive, as the deliveries table records it."""
    return datetime.now(KST).replace(tzinfo=None)


@dataclass(frozen=True)
class WebhookConfig:
    """Where and how alert events are pushed (read from the environment when used, not at import)."""

    urls: tuple[str, ...]
    secret: str | None
    backoff_s: float = 30.0
    max_attempts: int = 10
    timeout_s: float = 10.0
    poll_s: float = 1.0

    @classmethod
    def from_env(cls) -> WebhookConfig:
        """The configuration; ValueError naming the variable for a bad URL, number or ``whsec_`` secret."""
        urls = tuple(u.strip() for u in os.environ.get(URLS_ENV, "").split(",") if u.strip())
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{URLS_ENV}: {url!r} is not an http:// or https:// URL")
        secret = os.environ.get(SECRET_ENV) or None
        if secret is not None:
            signing_key(secret)  # a malformed whsec_ secret is a configuration error, not a bad signature later
        return cls(urls=urls, secret=secret, backoff_s=_positive(BACKOFF_ENV, 30.0, float),
                   max_attempts=_positive(ATTEMPTS_ENV, 10, int), timeout_s=_positive(TIMEOUT_ENV, 10.0, float),
                   poll_s=_positive(POLL_ENV, 1.0, float))

    @property
    def lease(self) -> timedelta:
        """How long a claimed delivery is left alone before another deliverer may take it."""
        return timedelta(seconds=self.timeout_s + 30)

    def backoff(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.backoff_s * 2 ** max(attempts - 1, 0), MAX_BACKOFF_S))


def _positive(name: str, default, kind):
    raw = os.environ.get(name, "").strip()
    try:
        value = kind(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a positive number, not {raw!r}") from None
    if not value > 0:
        raise ValueError(f"{name} must be a positive number, not {raw!r}")
    return value


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: a ``whsec_<base64>`` secret's decoded bytes, any other its UTF-8 bytes.
    ValueError naming the variable when the part after ``whsec_`` is not base64."""
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{SECRET_ENV}: the part after {SECRET_PREFIX!r} is not base64") from None
    if not key:
        raise ValueError(f"{SECRET_ENV}: {SECRET_PREFIX!r} is followed by no key")
    return key


def body_of(event: dict) -> str:
    """The JSON body pushed for an event dict (``live.alerts.AlertEvent.as_dict()``): the event without its
    alert summary, and the summary beside it."""
    head = {k: v for k, v in event.items() if k != "alert"}
    return json.dumps({"event": head, "alert": event["alert"]}, ensure_ascii=False, separators=(",", ":"))


def sign(body: bytes, secret: str) -> str:
    """The ``X-Urban-Safety-Signature`` value for ``body``: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(signing_key(secret), body, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str | None, secret: str) -> bool:
    """What a receiver of the older header does: does ``signature`` (its value) sign the raw ``body``?"""
    return signature is not None and hmac.compare_digest(sign(body, secret), signature)


def headers_for(webhook_id: str, body: bytes, kind: str, secret: str | None, sent: datetime) -> dict[str, str]:
    """Every header of one attempt sent at ``sent`` (an aware datetime): the Standard Webhooks ones and the
    older ones (see the module docstring); unsigned without a secret."""
    timestamp = str(int(sent.timestamp()))
    headers = {"Content-Type": "application/json", "User-Agent": "urban-safety-webhooks",
               "webhook-id": webhook_id, "webhook-timestamp": timestamp, "Idempotency-Key": webhook_id,
               TIMESTAMP_HEADER: timestamp, "X-Urban-Safety-Event": kind}
    if secret:
        headers["webhook-signature"] = Webhook(signing_key(secret)).sign(webhook_id, sent, body)
        headers[SIGNATURE_HEADER] = sign(body, secret)
    return headers


def idempotency_key(event_id: int, url: str) -> str:
    """The ``webhook-id``: the same for every attempt of one event to one URL, different for another URL."""
    return f"urban-safety-{event_id}-{hashlib.sha256(url.encode()).hexdigest()[:16]}"


def enqueue(conn: sa.Connection, event: dict, config: WebhookConfig | None = None) -> int:
    """Queue ``event`` for every configured URL inside the caller's transaction, and wake this process's
    deliverer; the number queued."""
    config = config or WebhookConfig.from_env()
    if not config.urls:
        return 0
    body, now = body_of(event), wall_kst()
    conn.execute(DELIVERIES.insert(), [{"event_id": event["id"], "url": url, "body": body, "attempts": 0,
                                        "next_attempt_at": now, "queued_at": now} for url in config.urls])
    sa.event.listen(conn, "commit", lambda _conn: wake(), once=True)  # sent once there is something to read
    return len(config.urls)


def deliver_pending(db: sa.Engine, now: datetime | None = None, client: httpx.Client | None = None,
                    limit: int = 100) -> int:
    """Send every delivery due at ``now`` (wall clock, KST naive; at most ``limit``), record each attempt;
    the number delivered."""
    config = WebhookConfig.from_env()
    now = now or wall_kst()
    due = _claim(db, now, config, limit)
    if due and not config.secret:
        log.warning("%s is not set: webhook deliveries go out unsigned", SECRET_ENV)
    own = client is None
    client = client or httpx.Client(timeout=config.timeout_s)
    delivered, started = 0, wall_kst()
    try:
        for row in due:
            if row["url"] not in config.urls:
                _finish(db, row, False, f"{row['url']} is no longer among {URLS_ENV}: not sent", now, config,
                        give_up=True)
                continue
            sent = wall_kst()
            ok, error = _post(client, row, config)
            _finish(db, row, ok, error, now + (wall_kst() - started), config, sent=sent)  # back-off from the failure
            delivered += ok
    finally:
        if own:
            client.close()
    return delivered


def next_due(db: sa.Engine) -> datetime | None:
    """When the earliest pending delivery falls due (None: nothing pending); a plain read, no lock."""
    d = DELIVERIES.c
    with db.connect() as conn:
        return conn.execute(sa.select(sa.func.min(d.next_attempt_at)).where(
            d.delivered_at.is_(None), d.gave_up_at.is_(None))).scalar()


def _claim(db: sa.Engine, now: datetime, config: WebhookConfig, limit: int) -> list:
    d = DELIVERIES.c
    due = next_due(db)
    if due is None or due > now:  # the common case, answered without taking the write lock
        return []
    with writing(db) as conn:
        rows = conn.execute(sa.select(DELIVERIES).where(
            d.delivered_at.is_(None), d.gave_up_at.is_(None), d.next_attempt_at <= now)
            .order_by(d.id).limit(limit).with_for_update(skip_locked=True)).mappings().all()
        if rows:
            conn.execute(DELIVERIES.update().where(d.id.in_([r["id"] for r in rows]))
                         .values(next_attempt_at=now + config.lease))
    return rows


def _post(client: httpx.Client, row, config: WebhookConfig) -> tuple[bool, str | None]:
    body = row["body"].encode()
    sent = datetime.now(KST)
    headers = headers_for(idempotency_key(row["event_id"], row["url"]), body,
                          json.loads(row["body"])["event"]["kind"], config.secret, sent)
    try:
        response = client.post(row["url"], content=body, headers=headers, timeout=config.timeout_s)
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}: {exc}"[:500]
    if response.is_success:
        return True, None
    return False, f"HTTP {response.status_code}: {response.text[:200]}"


def _finish(db: sa.Engine, row, ok: bool, error: str | None, now: datetime, config: WebhookConfig,
            give_up: bool = False, sent: datetime | None = None) -> None:
    attempts = row["attempts"] + (not give_up)
    first = {"first_attempt_at": sa.func.coalesce(DELIVERIES.c.first_attempt_at, sent)} if sent else {}
    if ok:
        values = {"delivered_at": wall_kst()}
    elif give_up or attempts >= config.max_attempts:
        values = {"gave_up_at": wall_kst()}
        log.error("webhook delivery %s of event %s to %s given up after %d attempts: %s", row["id"],
                  row["event_id"], row["url"], attempts, error)
    else:
        values = {"next_attempt_at": now + config.backoff(attempts)}
    with writing(db) as conn:
        conn.execute(DELIVERIES.update().where(DELIVERIES.c.id == row["id"])
                     .values(attempts=attempts, last_error=error, **first, **values))


def pending(db: sa.Engine) -> int:
    """How many deliveries are neither delivered nor given up."""
    d = DELIVERIES.c
    with db.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(DELIVERIES)
                            .where(d.delivered_at.is_(None), d.gave_up_at.is_(None))).scalar_one()


# --- the delivery loop --------------------------------------------------------------------------------

_WAKE = threading.Event()
_RUNNING: dict[str, Deliverer] = {}  # one deliverer per process and store URL
_START = threading.Lock()


def wake() -> None:
    """Tell this process's deliverer that an event was queued (it sends at once, not at its next look)."""
    _WAKE.set()


class Deliverer:
    """The outbox drained on a daemon thread: woken by :func:`wake`, else every ``poll_s`` or when the next
    retry falls due, whichever is sooner. A failed round (a store blip) is logged and tried again."""

    def __init__(self, db: sa.Engine, config: WebhookConfig):
        self.db, self.config = db, config
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def start(self) -> Deliverer:
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        _WAKE.set()
        self.thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self.config.poll_s
            try:
                deliver_pending(self.db)
                due = next_due(self.db)  # more due already (a round is capped at 100 rows): go again at once
                if due is not None:
                    wait = min(wait, max((due - wall_kst()).total_seconds(), 0.05))
            except Exception:
                log.exception("webhook delivery round failed; trying again")
            _WAKE.wait(wait)
            _WAKE.clear()


def start_delivery(db: sa.Engine) -> Deliverer | None:
    """This process's deliverer for the store ``db``, started once (None when no webhook is configured, or
    the configuration is bad: that is logged, and the service still answers)."""
    try:
        config = WebhookConfig.from_env()
    except ValueError as exc:
        log.error("webhooks not delivered: %s", exc)
        return None
    if not config.urls:
        return None
    with _START:
        key = str(db.url)
        if key not in _RUNNING:
            _RUNNING[key] = Deliverer(db, config).start()
        return _RUNNING[key]

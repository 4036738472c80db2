"""Webhooks: every alert event POSTed to each configured URL, signed, retried, recorded.

An outbox: the event's transaction also writes one ``deliveries`` row per URL (:func:`enqueue`), so an
event is never recorded without its deliveries, nor lost when the process stops before sending them.
:func:`deliver_pending` sends what is due and records each attempt; call it after each cycle and on a
timer (any process may: a due row is claimed for a lease before it is sent, so two deliverers do not send
it together, and one that dies mid-send leaves it to be sent again when the lease ends).

A delivery is ``POST <url>`` with the JSON body ``{"event": {...}, "alert": {...}}`` (the event without
its alert snapshot, and the alert as it stood after the event) and the headers

- ``X-Urban-Safety-Signature: sha256=<hex>``: HMAC-SHA256 of the raw body bytes, keyed with
  ``URBAN_SAFETY_WEBHOOK_SECRET`` (absent when no secret is set);
- ``X-Urban-Safety-Timestamp``: when this attempt was sent, Unix seconds;
- ``X-Urban-Safety-Event``: the event kind (opened, escalated, updated, cleared, acknowledged, dismissed);
- ``Idempotency-Key``: the same on every attempt of one event to one URL.

A receiver verifies before acting::

    expected = "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers["X-Urban-Safety-Signature"]):
        reject (401)
    if idempotency_key already handled: answer 2xx again and do nothing
    act, remember the key, answer 2xx

It must hash the bytes as received (not re-serialised JSON) and compare in constant time. Any 2xx
answer counts as delivered; anything else (or no answer within the timeout) is retried after
``URBAN_SAFETY_WEBHOOK_BACKOFF_S`` x 2^(attempts-1) seconds (capped at one hour) until
``URBAN_SAFETY_WEBHOOK_MAX_ATTEMPTS`` attempts, when the delivery is given up (``gave_up_at``, with the
last error). Deliveries are not ordered: a receiver that keeps state per alert keeps the highest
``event.id`` it has seen (ids only grow).

Configuration: ``URBAN_SAFETY_WEBHOOKS`` (comma-separated http(s) URLs; read when an event is recorded),
``URBAN_SAFETY_WEBHOOK_SECRET``, ``URBAN_SAFETY_WEBHOOK_BACKOFF_S`` (default 30),
``URBAN_SAFETY_WEBHOOK_MAX_ATTEMPTS`` (default 10), ``URBAN_SAFETY_WEBHOOK_TIMEOUT_S`` (default 10).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import sqlalchemy as sa

from live.db import METADATA, now_kst, writing

log = logging.getLogger("urban_safety.live")

URLS_ENV = "URBAN_SAFETY_WEBHOOKS"
SECRET_ENV = "URBAN_SAFETY_WEBHOOK_SECRET"
BACKOFF_ENV = "URBAN_SAFETY_WEBHOOK_BACKOFF_S"
ATTEMPTS_ENV = "URBAN_SAFETY_WEBHOOK_MAX_ATTEMPTS"
TIMEOUT_ENV = "URBAN_SAFETY_WEBHOOK_TIMEOUT_S"
SIGNATURE_HEADER = "X-Urban-Safety-Signature"
TIMESTAMP_HEADER = "X-Urban-Safety-Timestamp"
MAX_BACKOFF_S = 3600.0

DELIVERIES = sa.Table(
    "deliveries", METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # exactly the bytes sent (UTF-8), so every attempt signs the same
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.DateTime, nullable=False, index=True),
    sa.Column("delivered_at", sa.DateTime),
    sa.Column("gave_up_at", sa.DateTime),
    sa.Column("last_error", sa.Text),
    sa.UniqueConstraint("event_id", "url"),
)


@dataclass(frozen=True)
class WebhookConfig:
    """Where and how alert events are pushed (read from the environment when used, not at import)."""

    urls: tuple[str, ...]
    secret: str | None
    backoff_s: float = 30.0
    max_attempts: int = 10
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls) -> WebhookConfig:
        urls = tuple(u.strip() for u in os.environ.get(URLS_ENV, "").split(",") if u.strip())
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{URLS_ENV}: {url!r} is not an http:// or https:// URL")
        return cls(urls=urls, secret=os.environ.get(SECRET_ENV) or None,
                   backoff_s=_positive(BACKOFF_ENV, 30.0, float), max_attempts=_positive(ATTEMPTS_ENV, 10, int),
                   timeout_s=_positive(TIMEOUT_ENV, 10.0, float))

    @property
    def lease(self) -> timedelta:
        """How long a claimed delivery is left alone before another deliverer may take it."""
        return timedelta(seconds=self.timeout_s + 30)

    def backoff(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.backoff_s * 2 ** max(attempts - 1, 0), MAX_BACKOFF_S))


def _positive(name: str, default, kind):
    raw = os.environ.get(name, "").strip()
    value = kind(raw) if raw else default
    if not value > 0:
        raise ValueError(f"{name} must be a positive number, not {raw!r}")
    return value


def body_of(event: dict) -> str:
    """The JSON body pushed for an event dict (``live.alerts.AlertEvent.as_dict()``)."""
    head = {k: v for k, v in event.items() if k != "alert"}
    return json.dumps({"event": head, "alert": event["alert"]}, ensure_ascii=False, separators=(",", ":"))


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for ``body``: ``sha256=`` and the hex HMAC-SHA256 keyed with ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str | None, secret: str) -> bool:
    """What a receiver does: does ``signature`` (the header's value) sign the raw ``body``?"""
    return signature is not None and hmac.compare_digest(sign(body, secret), signature)


def idempotency_key(event_id: int, url: str) -> str:
    """The same for every attempt of one event to one URL, different for another URL."""
    return f"urban-safety-{event_id}-{hashlib.sha256(url.encode()).hexdigest()[:16]}"


def enqueue(conn: sa.Connection, event: dict, config: WebhookConfig | None = None) -> int:
    """Queue ``event`` for every configured URL inside the caller's transaction; the number queued."""
    config = config or WebhookConfig.from_env()
    if not config.urls:
        return 0
    body, now = body_of(event), now_kst()
    conn.execute(DELIVERIES.insert(), [{"event_id": event["id"], "url": url, "body": body, "attempts": 0,
                                        "next_attempt_at": now} for url in config.urls])
    return len(config.urls)


def deliver_pending(db: sa.Engine, now: datetime | None = None, client: httpx.Client | None = None,
                    limit: int = 100) -> int:
    """Send every delivery due at ``now`` (at most ``limit``), record each attempt; the number delivered."""
    config = WebhookConfig.from_env()
    now = now or now_kst()
    due = _claim(db, now, config, limit)
    if due and not config.secret:
        log.warning("%s is not set: webhook deliveries go out unsigned", SECRET_ENV)
    own = client is None
    client = client or httpx.Client(timeout=config.timeout_s)
    delivered = 0
    try:
        for row in due:
            ok, error = _post(client, row, config)
            _finish(db, row, ok, error, now, config)
            delivered += ok
    finally:
        if own:
            client.close()
    return delivered


def _claim(db: sa.Engine, now: datetime, config: WebhookConfig, limit: int) -> list:
    d = DELIVERIES.c
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
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: str(int(time.time())),
               "Idempotency-Key": idempotency_key(row["event_id"], row["url"]),
               "X-Urban-Safety-Event": json.loads(row["body"])["event"]["kind"],
               "User-Agent": "urban-safety-webhooks"}
    if config.secret:
        headers[SIGNATURE_HEADER] = sign(body, config.secret)
    try:
        response = client.post(row["url"], content=body, headers=headers, timeout=config.timeout_s)
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}: {exc}"[:500]
    if response.is_success:
        return True, None
    return False, f"HTTP {response.status_code}: {response.text[:200]}"


def _finish(db: sa.Engine, row, ok: bool, error: str | None, now: datetime, config: WebhookConfig) -> None:
    attempts = row["attempts"] + 1
    if ok:
        values = {"delivered_at": now_kst()}
    elif attempts >= config.max_attempts:
        values = {"gave_up_at": now_kst()}
        log.error("webhook delivery %s of event %s to %s given up after %d attempts: %s", row["id"],
                  row["event_id"], row["url"], attempts, error)
    else:
        values = {"next_attempt_at": now + config.backoff(attempts)}
    with writing(db) as conn:
        conn.execute(DELIVERIES.update().where(DELIVERIES.c.id == row["id"])
                     .values(attempts=attempts, last_error=error, **values))


def pending(db: sa.Engine) -> int:
    """How many deliveries are neither delivered nor given up."""
    d = DELIVERIES.c
    with db.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(DELIVERIES)
                            .where(d.delivered_at.is_(None), d.gave_up_at.is_(None))).scalar_one()

"""The one clock every time rule reads: the wall clock in KST, shifted and sped up by configuration.

Tests and replays run the product at another time or faster than real time without touching the wall clock:

    simulated = since + offset + (wall - since) * speed

- ``URBAN_SAFETY_CLOCK_OFFSET_S``: seconds added to the wall clock (negative runs in the past), or
  ``URBAN_SAFETY_CLOCK_START``: the KST time (ISO) the clock reads at ``since`` (the offset follows);
- ``URBAN_SAFETY_CLOCK_SPEED``: simulated seconds per wall second (default 1);
- ``URBAN_SAFETY_CLOCK_SINCE``: the wall-clock moment (ISO with offset, or Unix seconds) from which the
  speed applies; required with a speed other than 1, so that every process of one deployment (the service
  workers, the live cycle) reads the same simulated time.

Which durations are simulated time (they scale with the speed) and which are wall time (they do not):

- simulated: everything a time rule declares (clock skew, source delays, lateness windows, staleness,
  how far back a correction reaches; ``features/sources/timing.py``), the replay window
  (``URBAN_SAFETY_REPLAY_HOURS``) and the retention of observations: they are about the data's hours;
- wall: HTTP timeouts and retries of the fetch clients, request deadlines, how often a worker asks the
  store for news (``URBAN_SAFETY_FOLLOW_S``), the live loop's poll and interval: they are about the
  machine and the network, which a replay does not speed up.

A naive datetime from :meth:`Clock.now` is KST, as every time the store records.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from features.errors import DataError

#: Korea Standard Time, a fixed UTC+9 (no summer time since 1988; the tz database's Asia/Seoul would replay
#: historical offsets).
KST = timezone(timedelta(hours=9), "KST")


@dataclass(frozen=True)
class Clock:
    """``offset_s`` seconds ahead of the wall clock at ``since`` (Unix seconds), running ``speed`` times as
    fast from then on."""

    offset_s: float = 0.0
    speed: float = 1.0
    since: float = 0.0

    def timestamp(self) -> float:
        """The simulated time as Unix seconds."""
        wall = time.time()
        return self.since + self.offset_s + (wall - self.since) * self.speed

    def now(self) -> datetime:
        """The simulated time in KST, naive (as the store records times)."""
        return datetime.fromtimestamp(self.timestamp(), KST).replace(tzinfo=None)

    def wall_seconds(self, simulated: timedelta) -> float:
        """How many wall seconds pass while the clock moves ``simulated`` (a delay to sleep for)."""
        return simulated.total_seconds() / self.speed

    def at(self, when: datetime) -> Clock:
        """The same speed, reading ``when`` (naive KST) now: a test or replay sets its clock with this."""
        target = when.replace(tzinfo=KST).timestamp() if when.tzinfo is None else when.timestamp()
        wall = time.time()
        # since + offset + (wall - since) * speed = target, keeping since and speed
        return Clock(target - self.since - (wall - self.since) * self.speed, self.speed, self.since)

    @classmethod
    def from_env(cls, env=None) -> Clock:
        """The configured clock (see the module docstring); :class:`DataError` names a bad variable."""
        env = os.environ if env is None else env
        speed = _number(env, "URBAN_SAFETY_CLOCK_SPEED", 1.0)
        if speed <= 0:
            raise DataError(f"URBAN_SAFETY_CLOCK_SPEED={env['URBAN_SAFETY_CLOCK_SPEED']!r}: must be above 0")
        raw_since = env.get("URBAN_SAFETY_CLOCK_SINCE", "").strip()
        if speed != 1.0 and not raw_since:
            raise DataError("URBAN_SAFETY_CLOCK_SPEED is set without URBAN_SAFETY_CLOCK_SINCE: give the wall-clock "
                              "moment the speed applies from (ISO time with offset, or Unix seconds), the same for "
                              "every process")
        since = _moment(raw_since, "URBAN_SAFETY_CLOCK_SINCE") if raw_since else time.time()
        start = env.get("URBAN_SAFETY_CLOCK_START", "").strip()
        if start and env.get("URBAN_SAFETY_CLOCK_OFFSET_S", "").strip():
            raise DataError("give URBAN_SAFETY_CLOCK_START or URBAN_SAFETY_CLOCK_OFFSET_S, not both")
        offset = (_moment(start, "URBAN_SAFETY_CLOCK_START") - since) if start else \
            _number(env, "URBAN_SAFETY_CLOCK_OFFSET_S", 0.0)
        return cls(offset, speed, since if raw_since else 0.0)


def _number(env, name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise DataError(f"{name}={raw!r}: expected a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise DataError(f"{name}={raw!r}: expected a finite number")
    return value


def _moment(raw: str, name: str) -> float:
    """Unix seconds of ``raw``: a number, or an ISO time (naive = KST)."""
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise DataError(f"{name}={raw!r}: expected an ISO time like 2023-07-10T12:00+09:00 or Unix seconds") from None
    return (when if when.tzinfo else when.replace(tzinfo=KST)).timestamp()


_CLOCK: Clock | None = None


def clock() -> Clock:
    """The process's clock: set by :func:`set_clock`, else read once from the environment."""
    global _CLOCK
    if _CLOCK is None:
        _CLOCK = Clock.from_env()
    return _CLOCK


def set_clock(value: Clock | None) -> None:
    """Inject a clock (tests, replays); None reads the environment again at the next use."""
    global _CLOCK
    _CLOCK = value


def now_kst() -> datetime:
    """The clock's time in KST, naive, as the live tables record times."""
    return clock().now()

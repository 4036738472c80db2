"""Time rules by source, declared once beside the contracts: when a row may be stamped, how finer rows
become the stored cadence, and how long the service waits for a source before an hour is complete.

Read by the loaders (roll-up of finer rows), live ingest and ``data import`` (rows refused with their row,
field and reason), the observation store (staleness, look-ahead) and the service (the newest complete
hour). Every comparison with "now" reads the one clock (``features/clock.py``); every duration here is
simulated time (it scales with the clock's speed).

Conventions (``features.sources.canonical``): times are naive KST; an hourly value stamped ``t`` covers
``(t - 1 h, t]`` and is known at ``t``. So a 10-minute row stamped 11:10 belongs to the hour stamped 12:00,
and a finer series is only ever rolled up into whole hours, never averaged with an hourly row.

Sources of the figures:
- delays: KMA AWS hourly data reach the API hub within 1-2 min of the hour, ASOS within 5-10 min (its
  hourly quality control); AirKorea publishes each hour's real-time values 15-30 min after it
  (airkorea.or.kr, 실시간 자료는 매시 15분 이후 갱신); KMA issues the ultra-short-range forecast (초단기예보)
  at HH30, on the API from about HH45 (data.go.kr VilageFcstInfoService_2.0 guide, "매시간 30분 생성,
  45분 이후 호출"); KHOA's real-time tide (1-minute) within a few minutes.
- lateness: about three times the usual delay (a feed a little slower than usual is waited for; one
  an hour behind is not).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from math import gcd

import numpy as np
import pandas as pd

HOUR = pd.Timedelta(hours=1)


@dataclass(frozen=True)
class TimeRule:
    """When rows of one source may be stamped and how they are made hourly.

    - ``time``: the column holding the row's time (the issue time for the nowcast);
    - ``cadence``: the step the store holds (1 h; a value stamped ``t`` covers ``(t - cadence, t]``);
    - ``rollup``: element -> how finer rows make one row of the cadence (``sum`` an amount, ``mean`` a
      rate or a level, ``max`` a peak, ``last`` a state read at the end of the hour, ``cumulative`` an
      amount differenced from a running total); an element without a rule cannot come finer (such rows
      are refused);
    - ``skew``: how far ahead of the clock an observed time may be (clock differences, an issue time
      rounded up to the hour it serves);
    - ``observed``: the columns whose value makes a row an observation (empty: any value column);
    - ``ahead``: how far ahead of the clock a row holding no observation, only forecast values
      (``forecast``), may lie;
    - ``valid``: for a forecast, the valid-time column and the longest lead after its issue;
    - ``delay``: when rows usually arrive after their time (the range, for documentation and replays);
    - ``lateness``: how long an hour waits for the source; after that it is complete without it (the
      answer's fallback or ``unknown`` applies);
    - ``finer``: the steps finer rows of the source come at (KMA's 1- and 10-minute AWS/ASOS data, the
      tide portal's 1-minute series), rolled up into whole hours;
    - ``corrections``: how far back before the clock a live row may reach (None: back to the city's first
      accepted time; KMA and AirKorea re-issue quality-controlled values months to a year later, and the
      store keeps every revision).
    """

    source: str
    time: str
    delay: tuple[pd.Timedelta, pd.Timedelta]
    lateness: pd.Timedelta
    cadence: pd.Timedelta = HOUR
    rollup: Mapping[str, str] = field(default_factory=dict)
    skew: pd.Timedelta = pd.Timedelta(minutes=10)
    forecast: tuple[str, ...] = ()
    observed: tuple[str, ...] = ()
    ahead: pd.Timedelta = pd.Timedelta(0)
    valid: tuple[str, pd.Timedelta] | None = None
    corrections: pd.Timedelta | None = None
    finer: tuple[pd.Timedelta, ...] = ()

    @property
    def stale_after(self) -> pd.Timedelta:
        """A feed is stale when its newest row is older than one step plus its lateness."""
        return self.cadence + self.lateness

    def describe(self) -> dict:
        """The rule as JSON values (minutes for durations): for the API and the docs."""
        def minutes(d):
            return None if d is None else round(d.total_seconds() / 60, 1)
        return {"cadence_min": minutes(self.cadence), "rollup": dict(self.rollup), "skew_min": minutes(self.skew),
                "delay_min": [minutes(d) for d in self.delay], "lateness_min": minutes(self.lateness),
                "corrections_min": minutes(self.corrections),
                **({"forecast": list(self.forecast), "ahead_min": minutes(self.ahead)} if self.forecast else {}),
                **({"valid": self.valid[0], "longest_lead_min": minutes(self.valid[1])} if self.valid else {})}


_WEATHER_ROLLUP = {"rain_mm": "sum", "temp_c": "mean", "wind_ms": "mean", "humidity_pct": "mean",
                   "wind_dir_deg": "last", "pressure_hpa": "last", "snow_cm": "last"}
M = pd.Timedelta
_FINER = (M(minutes=1), M(minutes=10))  # KMA's minute (매분) and 10-minute data
RULES: dict[str, TimeRule] = {
    "aws": TimeRule("aws", "time", (M(minutes=1), M(minutes=2)), M(minutes=10), rollup=_WEATHER_ROLLUP,
                    finer=_FINER),
    "asos": TimeRule("asos", "time", (M(minutes=5), M(minutes=10)), M(minutes=30), rollup=_WEATHER_ROLLUP,
                     finer=_FINER),
    "airkorea": TimeRule("airkorea", "time", (M(minutes=15), M(minutes=30)), M(minutes=75),
                         observed=("pm10", "pm25")),
    # The tide portal's 1-minute series: the hour keeps the level read at its end; predictions lie ahead
    # (KHOA publishes the astronomical tide a year in advance).
    "tide": TimeRule("tide", "time", (M(minutes=2), M(minutes=5)), M(minutes=20),
                     rollup={"tide_cm": "last", "tide_pred_cm": "last"}, forecast=("tide_pred_cm",),
                     observed=("tide_cm",), ahead=M(days=400), finer=(M(minutes=1),)),
    # ``issued`` is the HH30 issue rounded up to the hour it serves, so it may lie up to an hour ahead.
    "nowcast": TimeRule("nowcast", "issued", (M(minutes=-15), M(minutes=-15)), M(minutes=30), skew=M(hours=1),
                        forecast=("rain_mm",), observed=("rain_mm",), valid=("valid", M(hours=7))),
}


# --- roll-up of finer rows ---------------------------------------------------------------------
@dataclass
class Rolled:
    """A frame made hourly: the rows kept (``frame``), the number in the file of each kept row (``rows``: the
    last of the finer rows it was made of) and the rows left out with the reason (``dropped``)."""

    frame: pd.DataFrame
    rows: np.ndarray
    dropped: list[dict]
    note: str | None = None


def to_cadence(source: str, frame: pd.DataFrame, key: str, rows, cumulative: pd.Series | None = None) -> Rolled:
    """Make the rows of each ``key`` entity hourly by the source's rule.

    Rows on the hour are hourly values and stay as they are. Rows off the hour are a finer series when their
    step (the smallest gap next to them) is one the source comes in (``finer``): each whole hour
    ``(t - 1 h, t]`` holding every step becomes one row stamped ``t``, its elements rolled up by the rule
    (rain from ``cumulative``, a running total, where the file gives one instead of per-step amounts). Rows
    off the hour that make no whole hour are dropped with their reason (an hourly total from part of the
    hour would understate it; a half-hour row is never averaged with the hour), and so is an on-the-hour row
    that merely starts a finer series. Sources whose elements are all levels (``last``) keep the reading
    on the hour of each hour the finer series covers. ``rows`` numbers the frame's rows in their file."""
    r = RULES[source]
    rows = np.asarray(rows)
    times = pd.to_datetime(frame[r.time])
    off = (times != times.dt.floor(r.cadence)).to_numpy()
    if not off.any():
        return Rolled(frame, rows, [])
    elements = [c for c in frame.columns if c not in (key, r.time)]
    levels = bool(r.rollup) and all(how == "last" for how in r.rollup.values())
    keep = np.ones(len(frame), bool)  # rows kept as they are (hourly values)
    made, made_rows, dropped = [], [], []
    for entity in pd.unique(frame.loc[off, key]):
        at = np.flatnonzero((frame[key] == entity).to_numpy())
        t = pd.Series(times.to_numpy()[at]).reset_index(drop=True)
        order = np.argsort(t.to_numpy(), kind="stable")
        at, t = at[order], t.iloc[order].reset_index(drop=True)
        is_off = off[at]
        step = _step(t, is_off)
        per_hour = int(r.cadence // step) if step is not None and step in r.finer else 0
        bucket = t.dt.ceil(r.cadence)
        counts = bucket.map(bucket.value_counts()).to_numpy()
        on_hour = ~is_off
        unruled = [c for c in elements if frame[c].iloc[at].notna().any() and c not in r.rollup
                   and not (c == "rain_mm" and cumulative is not None)]
        whole = (counts == per_hour) if per_hour and not unruled else np.zeros(len(t), bool)
        if levels and per_hour:  # the level read on the hour; the minutes between are only its series
            whole = bucket.isin(t[on_hour]).to_numpy()
        starts = np.zeros(len(t), bool)
        if per_hour:
            nxt = set((t[is_off]).tolist())
            starts = on_hour & ~whole & (t + step).isin(nxt).to_numpy()
        for j in np.flatnonzero((is_off | starts) & ~whole):
            dropped.append({"row": int(rows[at[j]]), "field": r.time, "reason": _why_dropped(
                source, t.iloc[j], step if per_hour else None, per_hour, int(counts[j]), unruled, r)})
        keep[at[(is_off | starts | whole)]] = False
        if not whole.any():
            continue
        use = whole & (on_hour if levels else True)
        body = frame.iloc[at[use]]
        if cumulative is not None:
            body = body.assign(rain_mm=_from_cumulative(cumulative.iloc[at[use]].set_axis(body.index),
                                                        pd.Series(t[use].to_numpy(), index=body.index), step))
        grouped = body.groupby(bucket[use].to_numpy(), sort=True)
        out = pd.DataFrame({key: entity}, index=grouped.size().index)
        for c in elements:
            how = r.rollup.get(c, "last")
            # An amount with a step missing is unknown (a sum of part of the hour would understate it).
            value = grouped[c].sum(min_count=per_hour) if how in ("sum", "cumulative") else grouped[c].agg(how)
            out[c] = value.round(3) if how == "mean" else value  # no 24.099999 from a mean of 24.1s
        out[r.time] = out.index
        made.append(out.reset_index(drop=True)[frame.columns].astype(frame.dtypes.to_dict()))
        made_rows.append(pd.Series(rows[at[use]]).groupby(bucket[use].to_numpy(), sort=True).max().to_numpy())
    result = pd.concat([frame.loc[keep], *made], ignore_index=True)
    result_rows = np.concatenate([rows[keep], *made_rows])
    order = np.lexsort((pd.to_datetime(result[r.time]).to_numpy(), result[key].astype(str).to_numpy()))
    n_made = sum(len(m) for m in made)
    note = (f"{int((~keep).sum()) - len(dropped):,} rows finer than hourly made {n_made:,} hourly rows"
            + (f"; {len(dropped):,} rows off the hour left out (no whole hour)" if dropped else ""))
    return Rolled(result.iloc[order].reset_index(drop=True), result_rows[order], dropped, note)


def _step(t: pd.Series, is_off: np.ndarray) -> pd.Timedelta | None:
    """The step of a finer series: the smallest gap next to a row off the hour (for a lone row off the hour
    with no neighbour, the largest step its minute fits)."""
    gaps = t.diff().to_numpy()[1:]
    near = is_off[1:] | is_off[:-1]  # the gap before or after a row off the hour
    near = gaps[near & (gaps > np.timedelta64(0))]
    if len(near):
        return pd.Timedelta(near.min())
    minute = int(t[is_off].iloc[0].minute) if is_off.any() else 0
    return pd.Timedelta(minutes=gcd(minute, 60)) if minute else None


def _why_dropped(source, time, step, per_hour, n, unruled, r) -> str:
    shown = f"{time:%Y-%m-%d %H:%M}"
    steps = " or ".join(f"{int(s.total_seconds() // 60)}-minute" for s in r.finer)
    if unruled:
        return (f"{shown} is off the hour: {source} is stored hourly and {', '.join(unruled)} cannot be made "
                "hourly from finer rows; send the hourly value stamped on the hour")
    if not per_hour:
        return (f"{shown} is off the hour: {source} is stored hourly (a value stamped on the hour covers the hour "
                f"before it) and takes finer rows only as whole hours of {steps or 'no finer'} rows; it is never "
                "averaged with the hour")
    return (f"{shown} is off the hour: {source} is stored hourly (a value stamped on the hour covers the hour "
            f"before it); rows every {int(step.total_seconds() // 60)} min are made hourly only for a whole hour "
            f"({per_hour} rows for {time.ceil('h'):%H:%M}, {n} given), never averaged with the hour")


def _from_cumulative(total: pd.Series, times: pd.Series, step: pd.Timedelta) -> pd.Series:
    """Per-step amounts from a running total: differences (a drop is the daily reset: the amount since it);
    the first step of the day is its own total, another first row is unknown."""
    total = total.astype(float)
    diff = total.diff()
    gap = times.diff()
    diff = diff.where(gap == step)  # a gap breaks the chain
    diff = diff.where(diff >= 0, total.where(diff < 0))  # reset: what fell since
    first_of_day = (times - times.dt.normalize()) == step
    return diff.fillna(total.where(first_of_day))


# --- rows the rules refuse -------------------------------------------------------------------
def violations(source: str, frame: pd.DataFrame, since: datetime, now: datetime, live: bool) -> list[tuple[int, str, str]]:
    """(position in ``frame``, field, reason) of each row a rule refuses, in order: an observed time after
    the clock plus the skew, a forecast beyond its reach, a time before ``since`` (the city's first accepted
    time) and, for ``live`` rows, a correction further back than the rule allows."""
    r = RULES.get(source)
    if r is None or frame.empty:
        return []
    now, since = pd.Timestamp(now), pd.Timestamp(since)
    t = pd.to_datetime(frame[r.time])
    observed = [c for c in r.observed if c in frame]
    has_observation = frame[observed].notna().any(axis=1) if r.ahead and observed else \
        pd.Series(True, index=frame.index)
    horizon = now + r.skew
    late_ok = now + r.ahead
    out: list[tuple[int, str, str]] = []
    for i in np.flatnonzero((t > horizon).to_numpy()):
        if r.ahead and not has_observation.iloc[i] and t.iloc[i] <= late_ok:
            continue
        what = "forecast" if r.ahead and not has_observation.iloc[i] else "observed"
        reach = late_ok if what == "forecast" else horizon
        out.append((int(i), r.time, f"{t.iloc[i]:%Y-%m-%d %H:%M} is in the future: an {what} time may be at most "
                    f"{_minutes(r.ahead if what == 'forecast' else r.skew)} ahead of the clock "
                    f"({now:%Y-%m-%d %H:%M} KST; latest accepted {reach:%Y-%m-%d %H:%M})"))
    for i in np.flatnonzero((t < since).to_numpy()):
        out.append((int(i), r.time, f"{t.iloc[i]:%Y-%m-%d %H:%M} is before the city's first accepted time "
                    f"{since:%Y-%m-%d} (observations_since in its city config)"))
    if live and r.corrections is not None:
        cut = now - r.corrections
        for i in np.flatnonzero(((t < cut) & (t >= since)).to_numpy()):
            out.append((int(i), r.time, f"{t.iloc[i]:%Y-%m-%d %H:%M} is older than a correction may reach "
                        f"({_minutes(r.corrections)} before the clock)"))
    if r.valid is not None:
        column, longest = r.valid
        lead = pd.to_datetime(frame[column]) - t
        for i in np.flatnonzero(((lead <= pd.Timedelta(0)) | (lead > longest)).to_numpy()):
            out.append((int(i), column, f"valid {pd.Timestamp(frame[column].iloc[i]):%Y-%m-%d %H:%M} is not within "
                        f"{_minutes(longest)} after its issue {t.iloc[i]:%Y-%m-%d %H:%M}"))
    return sorted(out)


def _minutes(d: pd.Timedelta) -> str:
    m = d.total_seconds() / 60
    return f"{m / 1440:g} days" if m >= 1440 * 2 else f"{m / 60:g} h" if m >= 120 else f"{m:g} min"


# --- the newest complete hour ------------------------------------------------------------------
@dataclass(frozen=True)
class Reported:
    """Which entities (stations, gauges, grid points) of one source reported each recent hour, and which
    the city needs."""

    source: str
    hours: Mapping[pd.Timestamp, frozenset]
    needed: frozenset
    newest: pd.Timestamp | None  # the newest hour held (any entity)


def complete_hour(reports: list[Reported], now: datetime) -> tuple[pd.Timestamp | None, dict]:
    """The newest hour (at most the newest any source holds) that every source has reported for every
    entity the city needs, or whose lateness window has passed; and, per source, what is still awaited for
    that hour and the ones after it (``{source: [{"hour", "missing", "until"}]}``).

    None when no source holds any hour."""
    fronts = [r.newest for r in reports if r.newest is not None]
    if not fronts:
        return None, {}
    now = pd.Timestamp(now)
    top = max(fronts)
    longest = max(RULES[r.source].lateness for r in reports)
    hour, floor = top.floor("h"), (now - longest).floor("h") - HOUR
    while hour > floor:
        if not awaited_at(reports, hour, now):
            break
        hour -= HOUR
    return hour, awaited_after(reports, hour, top, now)


def awaited_at(reports: list[Reported], hour: pd.Timestamp, now: datetime) -> dict[str, list[str]]:
    """Per source still within its lateness for ``hour``, the needed entities it has not reported."""
    out = {}
    for r in reports:
        if pd.Timestamp(now) >= hour + RULES[r.source].lateness:
            continue
        missing = r.needed - r.hours.get(hour, frozenset())
        if missing:
            out[r.source] = sorted(missing)
    return out


def awaited_after(reports: list[Reported], shown: pd.Timestamp, top: pd.Timestamp, now: datetime,
                  limit: int = 6) -> dict:
    """What is awaited for ``shown`` (when partial) and each later hour up to ``top`` (at most ``limit``)."""
    out: dict[str, list] = {}
    hour = shown
    while hour <= top and hour < shown + limit * HOUR:
        for source, missing in awaited_at(reports, hour, now).items():
            out.setdefault(source, []).append({"hour": hour.isoformat(), "missing": missing,
                                               "until": (hour + RULES[source].lateness).isoformat()})
        hour += HOUR
    return out

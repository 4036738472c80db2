"""Hourly PM10 and PM2.5 from the issue time to the end of the target day, and advisory probabilities.

The daily model forecasts the target day's mean D. The hours follow from it and from the station's own
history (statistics of the held observations, so they hold for real data as for the embedded set):

- the diurnal profile: each hour's mean share of its day's mean (rush hours, night-time boundary layer);
- the hourly anomaly: log(value / (day mean x profile)), an AR(1) in the hour with sd ``sigma_h`` and lag-1
  correlation ``rho``. The anomaly of the last observed hour decays as rho^lead, so the first hours
  stay close to what is measured now and the later ones follow the profile;
- the level: today's mean so far for the rest of the issue day, D for the target day (whose hours are
  scaled to average exactly D, so the daily grade is the grade of the hours' mean);
- the uncertainty: the day-level forecast error in log units, ``skill x sigma_p`` where sigma_p is the
  sd of log(D_{d+1} / D_d) (persistence's error at the station) and ``skill`` the model's error relative
  to persistence (see :data:`SKILL`), plus the hourly anomaly's own spread.

Advisories (대기오염경보, 환경부 기준): PM10 주의보 when the hourly mean is >= 150 ug/m3 for 2 h, 경보 >= 300;
PM2.5 주의보 >= 75 for 2 h, 경보 >= 150. The probability that an advisory level holds at hour t is the
share of simulated paths (fixed seed, deterministic) with that hour and the one before at or above the
threshold; the hour before the first forecast hour is the last observation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

POLLUTANTS = ("pm10", "pm25")
#: (name, pollutant, threshold ug/m3) of each advisory level, sustained for 2 h.
ADVISORIES = (("미세먼지 주의보", "pm10", 150.0), ("미세먼지 경보", "pm10", 300.0),
              ("초미세먼지 주의보", "pm25", 75.0), ("초미세먼지 경보", "pm25", 150.0))
SUSTAIN_H = 2
#: Day-level forecast error relative to persistence's (ratio of log-error sds), with a forecast of the
#: target day's weather and without one. Measured by ``bench/fine_dust_skill.py`` on the embedded data
#: (holdout; Incheon seeds 42, 7, 123 and Busan: 0.61-0.67 with a forecast, 0.85-0.92 without), rounded
#: up: a property of the model, to be re-measured on real data before trusting the probabilities.
SKILL = {"forecast": 0.65, "persistence": 0.9}
PATHS = 400
_HOUR_NS = 3_600_000_000_000


@dataclass(frozen=True)
class Stats:
    """Hourly statistics of one station and pollutant (see the module docstring)."""

    profile: tuple[float, ...]  # 24 shares, index 0 = the hour stamped 01:00 (00-01 h) ... 23 = 24:00
    sigma_h: float
    rho: float
    sigma_p: float

    @staticmethod
    def neutral() -> Stats:
        """No history: a flat profile and the embedded set's typical spreads (conservative defaults)."""
        return Stats(tuple([1.0] * 24), 0.25, 0.85, 0.4)


def station_stats(air: pd.DataFrame, until=None) -> dict[tuple[int, int], Stats]:
    """Per (station_code, pollutant index): :class:`Stats` from AirKorea rows stamped <= ``until``."""
    a = air[["station_code", "time", *POLLUTANTS]].copy()
    a["time"] = pd.to_datetime(a["time"])
    if until is not None:
        a = a[a["time"] <= pd.Timestamp(until)]
    begin = a["time"] - pd.Timedelta(hours=1)
    a["date"], a["h"] = begin.dt.normalize(), begin.dt.hour
    out = {}
    for k, p in enumerate(POLLUTANTS):
        v = a[["station_code", "date", "h", "time", p]].dropna()
        v = v[v[p] > 0]
        if v.empty:
            continue
        day = v.groupby(["station_code", "date"])[p].transform("mean")
        v = v.assign(share=v[p] / day, day=day)
        for code, g in v.groupby("station_code"):
            prof = g.groupby("h")["share"].mean().reindex(range(24)).fillna(1.0).to_numpy()
            prof = prof / prof.mean()
            anomaly = np.log(g[p].to_numpy() / (g["day"].to_numpy() * prof[g["h"].to_numpy()]))
            t = g["time"].to_numpy()
            follows = np.diff(t) == np.timedelta64(1, "h")
            rho = np.corrcoef(anomaly[:-1][follows], anomaly[1:][follows])[0, 1] if follows.sum() > 48 else 0.85
            daily = g.groupby("date")[p].mean()
            step = np.log(daily.to_numpy()[1:] / daily.to_numpy()[:-1])[np.diff(daily.index.to_numpy())
                                                                       == np.timedelta64(1, "D")]
            out[(int(code), k)] = Stats(tuple(float(x) for x in prof), robust_sd(anomaly),
                                        float(np.clip(rho, 0.0, 0.99)),
                                        robust_sd(step) if len(step) > 10 else Stats.neutral().sigma_p)
    return out


def robust_sd(x) -> float:
    """1.4826 x the median absolute deviation: the sd of the bulk, not of the rare dust storms (whose
    jumps would otherwise widen every day's spread and overstate advisories on ordinary days)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if len(x) else float("nan")


def forecast(issue, target, daily: float, today: float, recent: float, stats: Stats,
             skill: float, last: float | None = None, seed: int = 0) -> pd.DataFrame:
    """Hourly forecast of one pollutant at one station from the issue time to the end of the target day.

    ``daily``: the model's target-day mean; ``today``: today's mean so far; ``recent``: the last observed
    hour's value (at the issue time); ``last``: the hour before the first forecast hour for the 2-hour rule
    (``recent`` when None). Returns time (hour stamp, AirKorea convention: the hour ending then), lead_h, value,
    log_sd and, per advisory threshold of this pollutant, its probability (columns ``p_<threshold>``).
    """
    issue, target = pd.Timestamp(issue).floor("h"), pd.Timestamp(target).normalize()
    end = target + pd.Timedelta(days=1)
    hours = pd.date_range(issue + pd.Timedelta(hours=1), end, freq="h")
    lead = np.arange(1, len(hours) + 1)
    prof = np.asarray(stats.profile)
    h = (hours - pd.Timedelta(hours=1)).hour.to_numpy()
    in_target = hours > target
    now_h = (issue - pd.Timedelta(hours=1)).hour
    recent_prof = prof[now_h]
    base_today = today if np.isfinite(today) and today > 0 else daily
    a0 = np.log(recent / (base_today * recent_prof)) if np.isfinite(recent) and recent > 0 else 0.0
    decay = stats.rho ** lead
    level = np.where(in_target, daily, base_today)
    value = level * prof[h] * np.exp(a0 * decay)
    if in_target.any() and np.isfinite(daily):
        value[in_target] *= daily / value[in_target].mean()
    sigma_d = skill * stats.sigma_p * np.where(in_target, 1.0, np.minimum(1.0, lead / 24))
    log_sd = np.sqrt(sigma_d ** 2 + stats.sigma_h ** 2 * (1 - decay ** 2))
    out = pd.DataFrame({"time": hours, "lead_h": lead, "value": value, "log_sd": log_sd})
    rng = np.random.default_rng(seed)
    eta = np.empty((PATHS, len(hours)))
    prev = np.full(PATHS, a0)
    innov = stats.sigma_h * np.sqrt(1 - stats.rho ** 2)
    for i in range(len(hours)):
        prev = stats.rho * prev + innov * rng.standard_normal(PATHS)
        eta[:, i] = prev
    day_err = rng.standard_normal(PATHS)[:, None] * sigma_d[None, :]
    paths = value[None, :] * np.exp(eta - (a0 * decay)[None, :] + day_err - log_sd[None, :] ** 2 / 2)
    before = np.full((PATHS, 1), last if last is not None and np.isfinite(last) else recent)
    previous = np.hstack([before, paths[:, :-1]])
    for threshold in sorted({t for _, _, t in ADVISORIES}):
        out[f"p_{threshold:g}"] = ((paths >= threshold) & (previous >= threshold)).mean(axis=0)
    return out


def advisory_probabilities(hours: dict[str, pd.DataFrame]) -> list[dict[str, float]]:
    """Per hour, {advisory name: probability} from each pollutant's :func:`forecast` frame."""
    n = len(next(iter(hours.values())))
    out = [{} for _ in range(n)]
    for name, pollutant, threshold in ADVISORIES:
        frame = hours.get(pollutant)
        probs = frame[f"p_{threshold:g}"].to_numpy() if frame is not None else np.full(n, np.nan)
        for i in range(n):
            out[i][name] = None if np.isnan(probs[i]) else round(float(probs[i]), 3)
    return out


def likely_advisory(probabilities: dict[str, float | None], at_least: float = 0.5) -> str | None:
    """The most severe advisory whose probability reaches ``at_least`` (경보 before 주의보, PM2.5's and PM10's
    both named when both hold), or None."""
    named = [n for n, p in probabilities.items() if p is not None and p >= at_least]
    warnings = [n for n in named if n.endswith("경보")]
    chosen = warnings + [n for n in named if n.endswith("주의보")
                         and n.replace("주의보", "경보") not in warnings]
    return ", ".join(chosen) if chosen else None

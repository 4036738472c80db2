"""KMA ultra-short-range rain forecasts (RN1, 초단기예보): issued hourly for the next 1-6 h at each station's
grid point.

A forecast is the true rain of that hour with a lognormal error growing with lead time, misses of light
showers, and false alarms (both more frequent further ahead), so it helps a flood model without being the
answer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.embedded.period import Period
from features.sources.limits import LIMITS

LEADS = (1, 2, 3, 4, 5, 6)  # hours ahead, as the real service issues them
MAX_MISS = 0.6  # a forecast six hours out still sees most showers
# No forecast hour beyond hourly rain's warning threshold in the limits table (just above Korea's record):
# what a forecast says stays plausible, so `data check` of the generated files warns of nothing.
MAX_MM = float(LIMITS["rain_mm"].warn_high)


def forecast_values(truth: np.ndarray, lead: int, rng: np.random.Generator) -> np.ndarray:
    """Forecast rain (mm) for true hourly rain ``truth`` at a given lead (hours)."""
    # The error grows fast over the first hours (radar extrapolation), then slower (the model takes over).
    sigma = 0.35 + 0.2 * min(lead, 3) + 0.1 * max(lead - 3, 0)
    wet = truth >= 0.1
    miss = rng.random(truth.shape) < np.minimum(np.where(truth < 2, 0.15, 0.05) * lead, MAX_MISS)
    fc = np.where(wet & ~miss, truth * rng.lognormal(-sigma * sigma / 2, sigma, truth.shape), 0.0)
    false_alarm = ~wet & (rng.random(truth.shape) < 0.008 * lead)
    return np.minimum(np.where(false_alarm, rng.lognormal(-0.5, 0.9, truth.shape), fc), MAX_MM)


def format_values(mm: np.ndarray) -> np.ndarray:
    """The API's fcstValue strings: "강수없음", "1mm 미만", "12.5mm"."""
    out = np.full(mm.shape, "강수없음", dtype=object)
    out[(mm >= 0.1) & (mm < 1)] = "1mm 미만"
    big = mm >= 1
    out[big] = np.char.mod("%.1fmm", mm[big]).astype(object)
    return out


def nowcast_frame(period: Period, stations, rain: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """All forecasts: one row per issue hour (every hour mark, the period's end included), station grid point
    and lead.

    Issues are at ``start + i h``; lead ``k`` forecasts the hour starting ``start + (i + k - 1) h`` (printed as
    fcstDate/fcstTime), i.e. the hour whose true rain is ``rain[i + k - 1]``. Adds a ``year`` column (issue year)
    for splitting into files; drop it before writing.
    """
    n = period.n
    # Every hour mark issues all its leads, the last one too (as in live operation, where the newest issue
    # is never short of leads): past the end the forecast is made from the last hour's rain, persisted.
    times = pd.date_range(period.start, period.end + pd.Timedelta(hours=max(LEADS)), freq="h")
    truth = np.concatenate([rain, np.repeat(rain[-1:], max(LEADS), axis=0)])
    date8 = np.asarray(times.strftime("%Y%m%d"), dtype=object)
    hhmm = np.asarray(times.strftime("%H00"), dtype=object)
    frames = []
    for k in LEADS:
        issue = np.arange(0, n + 1)
        fc = forecast_values(truth[issue + k - 1], k, rng)
        for j, st in enumerate(stations):
            frames.append(pd.DataFrame({
                "baseDate": date8[issue], "baseTime": hhmm[issue], "fcstDate": date8[issue + k - 1],
                "fcstTime": hhmm[issue + k - 1], "category": "RN1", "fcstValue": format_values(fc[:, j]),
                "nx": st.nx, "ny": st.ny, "year": times.year.to_numpy()[issue],
                "_order": (issue * len(stations) + j) * len(LEADS) + k - 1,
            }))
    frame = pd.concat(frames, ignore_index=True).sort_values("_order", kind="stable")
    return frame.drop(columns="_order").reset_index(drop=True)

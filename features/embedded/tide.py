"""Hourly tide at the city's gauge: astronomical harmonics (the prediction) plus surge (the observation).

The mean level and the constituents come from the city config's ``[tide]`` (Incheon's: one of the largest
tidal ranges in the world, spring high waters near the 886-953 cm alert steps from M2 and S2 in phase,
raised by the perigee (N2), the diurnal pair (K1, O1) and the late summer high mean sea level (Sa)).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.embedded.noise import ar1
from features.embedded.period import Period

#: How far past the last observation the file carries the prediction (KHOA publishes a year ahead).
PREDICTED_AHEAD = pd.Timedelta(days=31)


def predicted_tide(period: Period, tide) -> np.ndarray:
    """Astronomical tide (cm) at every hour stamp from the city's ``Tide`` (mean level and constituents).
    Astronomy does not depend on the seed."""
    hours = ((period.stamps - pd.Timestamp("2000-01-01")) / pd.Timedelta(hours=1)).to_numpy()
    level = np.full(len(hours), tide.mean_cm)
    for c in tide.constituents:
        level += c.amplitude_cm * np.cos(2 * np.pi * hours / c.period_h + c.phase_rad)
    return level


def surge(period: Period, events: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Observed minus predicted (cm): slow weather noise plus storm surges during typhoons and storms."""
    out = ar1(rng, period.n, 0.97, 10.0)
    for ev in events.loc[events["surge_cm"] > 0].itertuples():
        h = int(ev.hours) + 6
        bump = ev.surge_cm * np.sin(np.pi * (np.arange(h) + 0.5) / h) ** 2
        s = int(ev.start)
        out[s:s + h] += bump[: len(out[s:s + h])]
    return out


def tide_frame(period: Period, station: str, pred: np.ndarray, obs: np.ndarray,
               rng: np.random.Generator) -> pd.DataFrame:
    """The KHOA file layout; a few observations are missing (gauge outages)."""
    obs = obs.round(0)
    obs[rng.random(len(obs)) < 0.003] = np.nan
    return pd.DataFrame({
        "관측소명": station, "관측시간": period.kma_text, "실측조위(cm)": pd.array(obs, dtype="Int64"),
        "예측조위(cm)": pred.round(0).astype(np.int64),
    })

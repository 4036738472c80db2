"""Hourly tide at Incheon: astronomical harmonics (the prediction) plus surge (the observation).

Incheon has one of the largest tidal ranges in the world; spring high waters near the 886-953 cm alert
steps come from M2 and S2 in phase, raised by the perigee (N2), the diurnal pair (K1, O1) and the late
summer high mean sea level (Sa).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.embedded.noise import ar1
from features.embedded.period import Period

MEAN_CM = 470.0
#: How far past the last observation the file carries the prediction (KHOA publishes a year ahead).
PREDICTED_AHEAD = pd.Timedelta(days=31)
# name: (period h, amplitude cm, phase rad at 2000-01-01 00:00). Astronomy does not depend on the seed;
# the phases are chosen so that high waters pass 886 cm some 40 days a year and 953 cm about once in 6 years.
CONSTITUENTS = {
    "M2": (12.4206012, 270.0, 3.812), "S2": (12.0, 106.0, 4.584), "N2": (12.6583482, 46.0, 3.416),
    "K1": (23.9344696, 36.0, 5.875), "O1": (25.8193417, 27.0, 5.126),
    "Sa": (8766.15, 12.0, -2 * np.pi * 5600 / 8766.15),  # mean sea level peaks in late August
}


def predicted_tide(period: Period) -> np.ndarray:
    """Astronomical tide (cm) at every hour stamp."""
    hours = ((period.stamps - pd.Timestamp("2000-01-01")) / pd.Timedelta(hours=1)).to_numpy()
    level = np.full(len(hours), MEAN_CM)
    for per, amp, phase in CONSTITUENTS.values():
        level += amp * np.cos(2 * np.pi * hours / per + phase)
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

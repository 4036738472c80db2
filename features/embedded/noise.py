"""Small numeric helpers shared by the generators: correlated noise and the normal CDF."""

from __future__ import annotations

import numpy as np


def ar1(rng: np.random.Generator, n: int, phi: float, sd: float, width: int | None = None) -> np.ndarray:
    """A stationary AR(1) series (``n`` steps, optionally ``width`` independent columns) with std ``sd``."""
    shape = (n,) if width is None else (n, width)
    eps = rng.normal(0.0, sd * np.sqrt(1 - phi * phi), shape)
    eps[0] = rng.normal(0.0, sd, shape[1:])
    out = np.empty(shape)
    out[0] = eps[0]
    for i in range(1, n):
        out[i] = phi * out[i - 1] + eps[i]
    return out


def daily_to_hourly(daily: np.ndarray, day_index: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """Linear interpolation of a daily series (valued at noon) to hours, so synoptic swings are smooth."""
    pos = day_index + (hour + 0.5 - 12.0) / 24.0
    lo = np.clip(np.floor(pos).astype(np.int64), 0, len(daily) - 1)
    hi = np.clip(lo + 1, 0, len(daily) - 1)
    w = (pos - np.floor(pos))[(...,) + (None,) * (daily.ndim - 1)]
    return daily[lo] * (1 - w) + daily[hi] * w


def norm_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF (Abramowitz-Stegun 7.1.26, error < 1.5e-7), to avoid a SciPy dependency."""
    z = np.asarray(z, dtype=np.float64)
    x = np.abs(z) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-x * x)
    return 0.5 * (1.0 + np.sign(z) * erf)

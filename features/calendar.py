"""Calendar and sun: Korean public holidays and the sun's elevation, vectorised over pandas/numpy.

Holidays come from the ``holidays`` library (python-holidays, ``country_holidays("KR")``), which computes
the lunar ones (설날, 부처님오신날, 추석) from the Korean lunisolar calendar and keeps the rules for
substitute holidays (대체공휴일), election days (선거일) and the one-off temporary holidays (임시공휴일) that
the government declares, so the table stays right as laws change (e.g. 근로자의 날 and 제헌절 from 2026).
"""

from __future__ import annotations

from functools import lru_cache

import holidays as pyholidays
import numpy as np
import pandas as pd


@lru_cache(maxsize=64)
def holidays(year: int) -> frozenset[pd.Timestamp]:
    """Korean public holidays of ``year`` as midnight timestamps (python-holidays' ``KR`` calendar)."""
    days = pyholidays.country_holidays("KR", years=int(year))
    return frozenset(pd.Timestamp(d) for d in days)


def is_holiday(times) -> np.ndarray:
    """Whether each time falls on a public holiday (weekends are not holidays here: use the weekday)."""
    days = pd.DatetimeIndex(pd.to_datetime(times)).normalize()
    if len(days) == 0:
        return np.zeros(0, dtype=bool)
    known = [d for y in np.unique(days.year) for d in holidays(int(y))]
    return np.asarray(days.isin(pd.DatetimeIndex(known)), dtype=bool)


def sun_elevation_deg(times, lat, lon, utc_offset_h: float = 9.0) -> np.ndarray:
    """Geometric solar elevation (no refraction) in degrees for naive local times at ``lat``/``lon``.

    The low-precision almanac formulas (Astronomical Almanac, accurate to ~0.01 degree for 1950-2050);
    ``times`` are naive local clock times ``utc_offset_h`` hours ahead of UTC (KST by default).
    Broadcasts over its arguments.

    Why not a library: astral and pysolar compute one instant at one place per Python call, and pvlib's
    vectorised SPA takes one place per call and expands its long periodic series for every time, while
    the traffic table asks for millions of (slot, cell) pairs. These few closed-form lines broadcast over
    both and agree with astral to well under 0.1 degree (``tests/features/test_calendar.py``), about
    20 s of sunrise time, far finer than the hourly slots that use them.
    """
    t = pd.DatetimeIndex(pd.to_datetime(np.atleast_1d(times)))
    unix_s = t.as_unit("s").asi8.astype(float)
    n = (unix_s - utc_offset_h * 3600.0) / 86400.0 + 2440587.5 - 2451545.0  # days since J2000.0 (UTC)
    mean_lon = np.radians((280.460 + 0.9856474 * n) % 360)
    anomaly = np.radians((357.528 + 0.9856003 * n) % 360)
    ecl_lon = mean_lon + np.radians(1.915) * np.sin(anomaly) + np.radians(0.020) * np.sin(2 * anomaly)
    obliquity = np.radians(23.439 - 0.0000004 * n)
    right_asc = np.arctan2(np.cos(obliquity) * np.sin(ecl_lon), np.cos(ecl_lon))
    decl = np.arcsin(np.sin(obliquity) * np.sin(ecl_lon))
    gmst_h = (18.697374558 + 24.06570982441908 * n) % 24
    hour_angle = np.radians(gmst_h * 15 + np.asarray(lon, dtype=float)) - right_asc
    phi = np.radians(np.asarray(lat, dtype=float))
    sin_el = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(hour_angle)
    return np.degrees(np.arcsin(np.clip(sin_el, -1, 1)))


#: Elevation of the sun's centre at sunrise/sunset: refraction (34') plus the disc's radius (16').
SUNSET_ELEVATION_DEG = -0.833


def is_dark(times, lat, lon, utc_offset_h: float = 9.0) -> np.ndarray:
    """Whether the sun is below the horizon (after sunset, before sunrise) at each time and place."""
    return sun_elevation_deg(times, lat, lon, utc_offset_h) < SUNSET_ELEVATION_DEG

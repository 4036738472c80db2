"""Calendar and sun: Korean public holidays and the sun's elevation, vectorised over pandas/numpy.

Holidays are hardcoded for 2020-2027 because the lunar ones (설날, 부처님오신날, 추석) and the
substitute, election and one-off temporary holidays cannot be computed from the solar calendar. For
years outside that table only the fixed solar holidays are known (see :func:`holidays`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

#: First and last year of the hardcoded table.
HOLIDAY_YEARS = (2020, 2027)

# Fixed-date solar holidays: 신정, 삼일절, 어린이날, 현충일, 광복절, 개천절, 한글날, 성탄절.
_FIXED = ("01-01", "03-01", "05-05", "06-06", "08-15", "10-03", "10-09", "12-25")

# Per year: 설날 (3 days), 부처님오신날, 추석 (3 days), then substitute (대체), election (선거) and temporary
# (임시) holidays. Substitutes: 설날/추석 only on a Sunday overlap; national days (삼일절, 광복절, 개천절, 한글날)
# on weekends from mid-2021; 부처님오신날 and 성탄절 from May 2023; 어린이날 throughout.
_VARIABLE = {
    2020: ("01-24", "01-25", "01-26", "04-30", "09-30", "10-01", "10-02",
           "01-27", "04-15", "08-17"),
    2021: ("02-11", "02-12", "02-13", "05-19", "09-20", "09-21", "09-22",
           "08-16", "10-04", "10-11"),
    2022: ("01-31", "02-01", "02-02", "05-08", "09-09", "09-10", "09-11",
           "09-12", "10-10", "03-09", "06-01"),
    2023: ("01-21", "01-22", "01-23", "05-27", "09-28", "09-29", "09-30",
           "01-24", "05-29", "10-02"),
    2024: ("02-09", "02-10", "02-11", "05-15", "09-16", "09-17", "09-18",
           "02-12", "05-06", "04-10", "10-01"),
    2025: ("01-28", "01-29", "01-30", "05-05", "10-05", "10-06", "10-07",
           "03-03", "05-06", "10-08", "06-03", "01-27"),
    2026: ("02-16", "02-17", "02-18", "05-24", "09-24", "09-25", "09-26",
           "03-02", "05-25", "08-17", "10-05", "06-03"),
    2027: ("02-06", "02-07", "02-08", "05-13", "09-14", "09-15", "09-16",
           "02-09", "08-16", "10-04", "10-11", "12-27"),
}


@lru_cache(maxsize=64)
def holidays(year: int) -> frozenset[pd.Timestamp]:
    """Korean public holidays of ``year`` (midnight timestamps); only the fixed solar ones outside 2020-2027."""
    days = (*_FIXED, *_VARIABLE.get(year, ()))
    return frozenset(pd.Timestamp(f"{year}-{d}") for d in days)


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

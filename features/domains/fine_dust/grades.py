"""Korean fine-dust grades (DESIGN.md section 2) and the grade index the API scores on."""

from __future__ import annotations

import numpy as np

POLLUTANTS = ("pm10", "pm25")  # the int feature ``pollutant`` of the fine_dust domain indexes this
ISSUE_HOUR = 17  # the national air-quality forecast's issue hour (KST): day d's forecast of day d+1

GRADES = ("good", "moderate", "bad", "very_bad")
GRADE_NAMES_KO = ("좋음", "보통", "나쁨", "매우나쁨")
UPPER_BOUNDS = {"pm10": (30, 80, 150), "pm25": (15, 35, 75)}  # top of good, moderate, bad (ug/m3)


def pollutant_grade(values, pollutant: str) -> np.ndarray:
    """Grade index 0-3 of daily means of one pollutant, -1 where unknown.

    Means are rounded to whole ug/m3 first, as published, so PM10 30.4 is good and 30.6 is moderate.
    """
    v = np.floor(np.asarray(values, dtype=float) + 0.5)
    out = np.searchsorted(np.asarray(UPPER_BOUNDS[pollutant]), v, side="left")
    return np.where(np.isnan(v), -1, out)


def grade(pm10, pm25) -> np.ndarray:
    """The reported grade (0 good .. 3 very bad): the worse of the PM10 and PM2.5 grades; -1 if both unknown."""
    return np.maximum(pollutant_grade(pm10, "pm10"), pollutant_grade(pm25, "pm25"))


def grade_name(grades, korean: bool = True) -> np.ndarray:
    """Names of grade indices (좋음/보통/나쁨/매우나쁨 or good/...); None for -1."""
    names = np.array([*(GRADE_NAMES_KO if korean else GRADES), None], dtype=object)
    return names[np.asarray(grades, dtype=int)]  # -1 picks the trailing None


#: The grade index: each pollutant's daily mean placed on one 0-100 scale whose grade boundaries are
#: 25 (보통 from PM10 31 / PM2.5 16 ug/m3 after rounding), 50 (나쁨 from 81 / 36) and 75 (매우나쁨 from
#: 151 / 76), linear in between and reaching 100 at the warning level (PM10 300, PM2.5 150). The reported
#: index is the larger of the two, so its quarter is exactly the reported Korean grade.
INDEX_BREAKS = {p: (0.0, *(b + 0.5 for b in UPPER_BOUNDS[p]), warning)
                for p, warning in (("pm10", 300.0), ("pm25", 150.0))}


def grade_index(pm10, pm25) -> np.ndarray:
    """The grade index (0-100) of daily means: see :data:`INDEX_BREAKS`; NaN where both are unknown."""
    scale = (0.0, 25.0, 50.0, 75.0, 100.0)
    parts = []
    for p, values in (("pm10", pm10), ("pm25", pm25)):
        v = np.asarray(values, dtype=float)
        parts.append(np.where(np.isnan(v), np.nan, np.interp(v, INDEX_BREAKS[p], scale)))
    return np.fmax(*parts)

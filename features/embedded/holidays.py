"""Korean public holidays 2020-2027 (a fixed list; no calendar library needed).

Lunar holidays (Seollal, Buddha's birthday, Chuseok), substitute and one-off holidays (elections,
temporary days) are listed per year; fixed solar holidays are added for any year.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

_SOLAR = ("01-01", "03-01", "05-05", "06-06", "08-15", "10-03", "10-09", "12-25")

_LUNAR_AND_OTHER = {
    2020: ("01-24", "01-25", "01-26", "01-27", "04-15", "04-30", "08-17", "09-30", "10-01", "10-02"),
    2021: ("02-11", "02-12", "02-13", "05-19", "08-16", "09-20", "09-21", "09-22", "10-04", "10-11"),
    2022: ("01-31", "02-01", "02-02", "03-09", "05-08", "06-01", "09-09", "09-10", "09-11", "09-12",
           "10-10"),
    2023: ("01-21", "01-22", "01-23", "01-24", "05-27", "05-29", "09-28", "09-29", "09-30", "10-02"),
    2024: ("02-09", "02-10", "02-11", "02-12", "04-10", "05-06", "05-15", "09-16", "09-17", "09-18",
           "10-01"),
    2025: ("01-27", "01-28", "01-29", "01-30", "03-03", "05-06", "06-03", "10-05", "10-06", "10-07",
           "10-08"),
    2026: ("02-16", "02-17", "02-18", "03-02", "05-24", "05-25", "06-03", "08-17", "09-24", "09-25",
           "09-26", "10-05"),
    2027: ("02-06", "02-07", "02-08", "02-09", "05-13", "08-16", "09-14", "09-15", "09-16", "10-04",
           "10-11"),
}


def holidays(years) -> set[date]:
    """Public holidays in the given years."""
    out: set[date] = set()
    for y in years:
        for md in _SOLAR + _LUNAR_AND_OTHER.get(int(y), ()):
            m, d = md.split("-")
            out.add(date(int(y), int(m), int(d)))
    return out


def is_holiday(days: pd.DatetimeIndex) -> np.ndarray:
    """Boolean per day: a public holiday."""
    hol = holidays(sorted(set(days.year)))
    return np.fromiter((d in hol for d in days.date), dtype=bool, count=len(days))

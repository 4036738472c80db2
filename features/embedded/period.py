"""The generated period on one hourly time axis.

Hourly values are stamped with the END of the hour they cover (as KMA and AirKorea print them), so the
first stamp is ``start + 1 h`` and the last is the period's end. A stamp belongs to the year and day of
the hour it covers (``stamp - 1 h``), which is how the per-year files are split.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cached_property

import numpy as np
import pandas as pd

HOUR = pd.Timedelta(hours=1)


@dataclass(frozen=True)
class Period:
    start: pd.Timestamp  # midnight opening the first day
    end: pd.Timestamp  # midnight closing the last day

    @classmethod
    def from_settings(cls, start: date, years: int) -> Period:
        s = pd.Timestamp(start)
        return cls(s, s + pd.DateOffset(years=years))

    @cached_property
    def stamps(self) -> pd.DatetimeIndex:
        """Hour-end stamps of every hour in the period."""
        return pd.date_range(self.start + HOUR, self.end, freq="h")

    @property
    def n(self) -> int:
        return len(self.stamps)

    @cached_property
    def begins(self) -> pd.DatetimeIndex:
        """Start of the hour each stamp covers."""
        return self.stamps - HOUR

    @cached_property
    def hour(self) -> np.ndarray:
        """Hour of day (0-23) of the hour each stamp covers."""
        return self.begins.hour.to_numpy()

    @cached_property
    def day(self) -> np.ndarray:
        """Index of the day each stamp belongs to."""
        return ((self.begins - self.start) // pd.Timedelta(days=1)).to_numpy().astype(np.int64)

    @cached_property
    def days(self) -> pd.DatetimeIndex:
        return pd.date_range(self.start, self.end - pd.Timedelta(days=1), freq="D")

    @cached_property
    def season(self) -> np.ndarray:
        """Fraction of the year (0-1) at each hour, for seasonal cycles."""
        b = self.begins
        return ((b.day_of_year.to_numpy() - 1) + b.hour.to_numpy() / 24.0) / 365.25

    @cached_property
    def year(self) -> np.ndarray:
        return self.begins.year.to_numpy()

    @cached_property
    def kma_text(self) -> np.ndarray:
        """``YYYY-MM-DD HH:MM`` of each stamp, formatted once and indexed by every writer."""
        return np.asarray(self.stamps.strftime("%Y-%m-%d %H:%M"), dtype=object)

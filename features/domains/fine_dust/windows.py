"""Prefix-sum windows over dense hourly wide frames (station columns), shared by the fine-dust features."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import timeseries as ts

_DAY_NS = 24 * ts.HOUR_NS


class Windows:
    """Prefix sums over a dense hourly wide frame: mean or sum over any ``(start, end]`` in O(1).

    Rows are found by :meth:`rows` (hourly rows stamped at or before each time, from int64 ns) and
    columns by :meth:`col`, so a request finds them once for every window it asks. ``day_max`` is the
    running maximum within each day (hours stamped 01:00 .. 24:00), available when the frame starts at
    01:00 and holds whole days.
    """

    def __init__(self, wide: pd.DataFrame):
        self.index_ns, self.columns = ts.time_ns(wide.index), wide.columns
        keys = np.asarray(wide.columns, dtype=np.int64)
        self._order = np.argsort(keys, kind="stable")
        self._sorted = keys[self._order]
        values = wide.to_numpy(dtype=float)
        zero = np.zeros((1, values.shape[1]))
        self.sum = np.vstack([zero, np.nancumsum(values, axis=0)])
        self.count = np.vstack([zero, np.cumsum(~np.isnan(values), axis=0)])
        if len(values) and len(values) % 24 == 0 and (self.index_ns[0] // ts.HOUR_NS) % 24 == 1:
            days = values.reshape(-1, 24, values.shape[1])
            self.day_max = np.fmax.accumulate(days, axis=1).reshape(values.shape)
        else:
            self.day_max = np.full(values.shape, np.nan)

    def col(self, keys) -> np.ndarray:
        """Column of each (integer) key, -1 where absent; a scalar key gives a 0-d array that broadcasts."""
        keys = np.asarray(keys, dtype=np.int64)
        if not len(self._sorted):
            return np.full(keys.shape, -1)
        at = np.clip(np.searchsorted(self._sorted, keys), 0, len(self._sorted) - 1)
        return np.where(self._sorted[at] == keys, self._order[at], -1)

    def rows(self, t_ns: np.ndarray) -> np.ndarray:
        """Number of hourly rows stamped at or before each time (int64 ns)."""
        return np.searchsorted(self.index_ns, t_ns, side="right")

    def _stat(self, col, lo_ns, hi_ns, how: str) -> np.ndarray:
        c = np.clip(col, 0, None)
        lo, hi = self.rows(lo_ns), self.rows(hi_ns)
        total = self.sum[hi, c] - self.sum[lo, c]
        count = self.count[hi, c] - self.count[lo, c]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = total / count if how == "mean" else total
        return np.where((col >= 0) & (count > 0), out, np.nan)

    def mean(self, col, start_ns, end_ns) -> np.ndarray:
        return self._stat(col, start_ns, end_ns, "mean")

    def total(self, col, start_ns, end_ns) -> np.ndarray:
        return self._stat(col, start_ns, end_ns, "sum")

    def max_today(self, col, t_ns) -> np.ndarray:
        """Maximum hourly value over ``(midnight, t]`` of t's day."""
        row = self.rows(t_ns) - 1
        r = np.clip(row, 0, None)
        stamp = self.index_ns[r] - ts.HOUR_NS if len(self.index_ns) else np.zeros_like(r)
        day = t_ns - t_ns % _DAY_NS
        same_day = (row >= 0) & (stamp - stamp % _DAY_NS == day) & (t_ns != ts.NAT_NS)
        out = self.day_max[r, np.clip(col, 0, None)] if len(self.index_ns) else np.full(len(r), np.nan)
        return np.where(same_day & (col >= 0) & (t_ns > day), out, np.nan)

"""Shared helpers for station time series, windows over event lists and reproducible sampling.

Conventions (see ``features.sources.canonical``): times are naive KST; an hourly observation stamped
``t`` covers ``(t - 1h, t]`` and is known at ``t``. The "wide" form used here is a DataFrame indexed by
a *dense* hourly ``DatetimeIndex`` (missing hours are NaN rows, never absent rows) with one column per
station, so that a window of ``k`` rows is exactly ``k`` hours.

Everything is vectorised: lookups take arrays of (time, station) pairs and return arrays.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from features.errors import DataError
from features.spatial import haversine_km, nearest

T = TypeVar("T")

HOUR = pd.Timedelta(hours=1)


def hourly_wide(frame: pd.DataFrame, value: str, key: str = "station_id", time: str = "time",
                keys=None, start=None, end=None) -> pd.DataFrame:
    """Pivot a long series (``key``, ``time``, ``value``) to a dense hourly wide frame.

    Duplicate (key, time) rows are averaged. ``keys`` fixes the columns (absent keys become all-NaN
    columns); ``start``/``end`` extend the hourly index beyond the data. Times are floored to the hour.
    """
    data = frame[[key, time, value]].copy()
    data[time] = pd.to_datetime(data[time]).dt.floor("h")
    if keys is not None:
        data = data[data[key].isin(list(keys))]
    wide = data.pivot_table(index=time, columns=key, values=value, aggfunc="mean", dropna=False)
    lo = min([t for t in (start, wide.index.min() if len(wide) else None) if t is not None], default=None)
    hi = max([t for t in (end, wide.index.max() if len(wide) else None) if t is not None], default=None)
    index = pd.date_range(pd.Timestamp(lo).floor("h"), pd.Timestamp(hi).floor("h"), freq="h") \
        if lo is not None else pd.DatetimeIndex([])
    columns = list(keys) if keys is not None else list(wide.columns)
    return wide.reindex(index=index, columns=columns).astype(float)


def trailing_sum(wide: pd.DataFrame, hours: int, min_periods: int = 1) -> pd.DataFrame:
    """Sum of the ``hours`` observations ending at each row: the total over ``(t - hours, t]``.

    Missing hours count as absent: the sum of the available ones, NaN when fewer than ``min_periods``.
    Uses only rows at or before ``t``, so it is point-in-time safe.
    """
    return wide.rolling(hours, min_periods=min_periods).sum()


def leading_agg(wide: pd.DataFrame, hours: int, how: str = "max", min_periods: int = 1) -> pd.DataFrame:
    """Aggregate over the next ``hours`` rows *after* each row: ``(t, t + hours]``.

    Only for series published ahead of time (tide predictions, forecasts) or for labels.
    """
    ahead = wide[::-1].rolling(hours, min_periods=min_periods).agg(how)[::-1]
    return ahead.shift(-1)


def lookup(wide: pd.DataFrame, times, keys) -> np.ndarray:
    """Values of ``wide`` at exact (time, key) pairs; NaN where the time or the key is not in ``wide``."""
    rows = wide.index.get_indexer(pd.DatetimeIndex(pd.to_datetime(np.asarray(times))))
    cols = wide.columns.get_indexer(np.asarray(keys))
    values = wide.to_numpy(dtype=float)
    ok = (rows >= 0) & (cols >= 0)
    out = np.full(len(rows), np.nan)
    out[ok] = values[rows[ok], cols[ok]]
    return out


def asof_lookup(wide: pd.DataFrame, times, keys, tolerance: pd.Timedelta | None = None) -> np.ndarray:
    """Latest non-missing value at or before each time for each key (an as-of join).

    ``tolerance`` bounds how old the value may be (NaN beyond it). Point-in-time safe.
    """
    filled = wide.ffill()
    times = pd.DatetimeIndex(pd.to_datetime(np.asarray(times))).as_unit("ns")
    rows = wide.index.searchsorted(times, side="right") - 1
    cols = wide.columns.get_indexer(np.asarray(keys))
    ok = (rows >= 0) & (cols >= 0)
    out = np.full(len(rows), np.nan)
    out[ok] = filled.to_numpy(dtype=float)[rows[ok], cols[ok]]
    if tolerance is not None:
        seen = pd.DataFrame(np.where(wide.notna(), time_ns(wide.index)[:, None], np.nan),
                            index=wide.index, columns=wide.columns).ffill().to_numpy()
        age = np.full(len(rows), np.inf)
        age[ok] = times.asi8[ok] - seen[rows[ok], cols[ok]]
        out[~(age <= pd.Timedelta(tolerance).value)] = np.nan
    return out


def nearest_key(lat, lon, stations: pd.DataFrame, key: str = "station_id") -> np.ndarray:
    """The ``key`` of the nearest station (great-circle) to each point; ``stations`` has key, lat, lon."""
    if stations.empty:
        raise ValueError("no stations to choose from")
    idx = nearest(np.atleast_1d(lat), np.atleast_1d(lon), stations["lat"].to_numpy(), stations["lon"].to_numpy())
    return stations[key].to_numpy()[idx]


def time_ns(times) -> np.ndarray:
    """Nanoseconds since 1970 of each time (NaT -> the int64 minimum, as pandas stores it).

    A datetime64 array or Series (or int64 nanoseconds) converts without pandas' parser (the online path).
    """
    arr = np.asarray(times)
    if arr.dtype.kind == "M":
        return np.atleast_1d(arr.astype("datetime64[ns]")).view(np.int64)
    if arr.dtype.kind == "i":  # already nanoseconds, as pandas reads integers
        return np.atleast_1d(arr.astype(np.int64, copy=False))
    return pd.DatetimeIndex(pd.to_datetime(np.atleast_1d(arr))).as_unit("ns").asi8


NAT_NS = np.iinfo(np.int64).min
HOUR_NS = 3_600_000_000_000


class EventIndex:
    """Events with an integer group and a time, sorted once for many :meth:`count` queries.

    Build it once per event list (e.g. per Sources with :func:`memo`) and ask it per request; the
    answers are those of :func:`count_in_window`, which builds a throw-away one.
    """

    def __init__(self, event_groups, event_times, weights=None):
        ev_g = np.asarray(event_groups, dtype=np.int64)
        ev_t = time_ns(event_times) if len(ev_g) else np.zeros(0, dtype=np.int64)
        # Rank times among the distinct event times, so that (group, time) packs into one int64 key.
        self.times = np.unique(ev_t)
        self.span = len(self.times) + 1
        keys = ev_g * self.span + np.searchsorted(self.times, ev_t)
        order = np.argsort(keys, kind="stable")  # the order of a stable lexsort by (group, time)
        self.keys = keys[order]
        w = np.ones(len(ev_g)) if weights is None else np.asarray(weights, dtype=float)[order]
        self.cum = np.concatenate([[0.0], np.cumsum(w)])

    def _position(self, groups: np.ndarray, times, side: str) -> np.ndarray:
        """Number of events before (group, time): lower groups, then the group's earlier times."""
        rank = np.searchsorted(self.times, time_ns(times), side=side)
        return np.searchsorted(self.keys, groups * self.span + rank, side="left")

    def count(self, groups, lo, hi, closed: str = "left") -> np.ndarray:
        """Count (or weight sum) of events of each query's group with ``lo <= time < hi`` (``closed="left"``)
        or ``lo < time <= hi`` (``"right"``)."""
        side = "left" if closed == "left" else "right"
        q_g = np.asarray(groups, dtype=np.int64)
        return self.cum[self._position(q_g, hi, side)] - self.cum[self._position(q_g, lo, side)]


def count_in_window(event_groups, event_times, groups, lo, hi, closed: str = "left",
                    weights=None) -> np.ndarray:
    """Count (or sum ``weights`` of) events of the same group with time in a window, per query row.

    ``closed="left"`` counts ``lo <= time < hi``, ``"right"`` counts ``lo < time <= hi``. Groups are
    integer codes (e.g. a cell position, or cell * 8 + slot); times are datetimes. Runs in
    O((n + m) log m) with a sorted (group, time) key, so millions of queries are cheap. Repeated
    queries against the same events should keep an :class:`EventIndex` instead.
    """
    return EventIndex(event_groups, event_times, weights).count(groups, lo, hi, closed)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a fast, well-spread integer hash (uint64 arithmetic wraps on purpose)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def stable_uniform(*parts, seed: int = 0) -> np.ndarray:
    """A reproducible pseudo-random number in [0, 1) per row, a pure function of the row's values.

    Each part is an array of strings, integers or datetimes (broadcast to one length). Unlike a seeded
    RNG the draw of a row does not depend on which other rows exist, so a sample is stable when the
    table grows or is rebuilt from perturbed data.
    """
    h = np.full(1, np.uint64(seed), dtype=np.uint64)
    for part in parts:
        arr = np.asarray(part)
        if arr.dtype.kind in "OUT":
            code = pd.util.hash_array(arr.astype(object))
        elif arr.dtype.kind == "M":
            code = arr.astype("datetime64[ns]").astype(np.int64).view(np.uint64)
        elif arr.dtype.kind == "u":
            code = arr.astype(np.uint64)
        else:
            code = arr.astype(np.int64).view(np.uint64)
        h = _mix64(h ^ _mix64(code))
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


# --- Sources-aware helpers: station tables and a per-Sources memo -------------------------------

_MEMO: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


_READS: dict[str, frozenset[str]] = {}  # what a memo key declared it reads (the grid is always shared)


def memo(src, key: str, compute: Callable[[], T], reads: tuple[str, ...] | None = None) -> T:
    """``compute()`` once per :class:`~features.sources.Sources` object and ``key``.

    ``Sources.override`` returns a new object, so a perturbed or what-if bundle never sees values
    derived from the original frames. A key that declares the sources it ``reads`` is carried into the
    copy ``Sources.replaced`` makes when none of them was replaced (:func:`carry_memo`): a new hour of
    rain or a quake does not rebuild the building stock.
    """
    if reads is not None:
        _READS[key] = frozenset(reads)
    cache = _MEMO.setdefault(src, {})
    if key not in cache:
        cache[key] = compute()
    return cache[key]


def carry_memo(old, new, replaced) -> None:
    """Give ``new`` (a copy of ``old`` with the sources ``replaced``) the memo entries of ``old`` that read
    none of them."""
    kept = {k: v for k, v in _MEMO.get(old, {}).items() if k in _READS and not _READS[k] & set(replaced)}
    if kept:
        _MEMO.setdefault(new, {}).update(kept)


def weather_stations(city, kinds: tuple[str, ...] = ("asos", "aws"), upwind: bool = False) -> pd.DataFrame:
    """The city's weather stations (station_id, name, kind, lat, lon, nx, ny); upwind ones only if asked."""
    rows = [{"station_id": s.id, "name": s.name, "kind": s.kind, "lat": s.lat, "lon": s.lon,
             "nx": s.nx, "ny": s.ny} for s in city.weather_stations
            if s.kind in kinds and (upwind or not s.upwind)]
    return pd.DataFrame(rows, columns=["station_id", "name", "kind", "lat", "lon", "nx", "ny"])


def station_hourly(src, value: str, stations: pd.DataFrame) -> pd.DataFrame:
    """Dense hourly wide frame of one weather variable for ``stations``, from ASOS and AWS together.

    Sources without files are skipped (a city may have no AWS export); the index spans both.
    """
    frames = []
    for source in ("asos", "aws"):
        try:
            frames.append(src[source])
        except DataError:
            continue
    if not frames:
        raise DataError(f"no weather observations (asos or aws) in {src.raw_dir}: run `urban-safety data generate` "
                        "or `urban-safety data import`")
    weather = pd.concat([f[["station_id", "time", value]] for f in frames], ignore_index=True)
    return hourly_wide(weather, value, keys=stations["station_id"].tolist())


def cell_stations(src, stations: pd.DataFrame) -> pd.Series:
    """The nearest of ``stations`` to each grid cell's centre, as a Series indexed by ``cell_id``."""
    cells = src.grid.cells
    ids = nearest_key(cells["lat"].to_numpy(), cells["lon"].to_numpy(), stations)
    return pd.Series(ids, index=cells["cell_id"].to_numpy(), name="station_id")


@dataclass(frozen=True)
class StationChoice:
    """Per grid cell, the stations whose series may stand for it: the nearest first, then every other
    one within the city's ``station_fallback_km`` of the cell, nearest first (``-1`` pads).

    ``columns`` indexes a wide frame's columns (one row per cell position plus a trailing all ``-1`` row
    for position -1); ``ids`` and ``km`` say which station that is and how far from the cell's centre.
    """

    columns: np.ndarray  # (cells + 1, k) int
    ids: np.ndarray  # (cells + 1, k) station ids (0 pads)
    km: np.ndarray  # (cells + 1, k) distance from the cell centre, km (inf pads)


def station_choice(src, stations: pd.DataFrame, columns: pd.Index) -> StationChoice:
    """:class:`StationChoice` for ``stations`` laid out as ``columns`` (a wide frame's station ids)."""
    cells = src.grid.cells
    km = haversine_km(cells["lat"].to_numpy()[:, None], cells["lon"].to_numpy()[:, None],
                      stations["lat"].to_numpy()[None, :], stations["lon"].to_numpy()[None, :])
    order = np.argsort(km, axis=1, kind="stable")
    km = np.take_along_axis(km, order, axis=1)
    ids = stations["station_id"].to_numpy()[order]
    usable = km <= float(src.city.station_fallback_km)
    usable[:, 0] = True  # the nearest station always stands for its cells
    k = max(int(usable.sum(axis=1).max()), 1)
    cols = np.where(usable, columns.get_indexer(ids.ravel()).reshape(ids.shape), -1)[:, :k]
    pad = np.full((1, k), -1)
    return StationChoice(np.vstack([cols, pad]), np.vstack([np.where(usable, ids, 0)[:, :k], pad * 0]),
                         np.vstack([np.where(usable, km, np.inf)[:, :k], pad * np.inf]))


def chosen(candidates: np.ndarray, used: np.ndarray) -> np.ndarray:
    """The column each row chose by :meth:`HourlyArray.first_at` (-1 where none had a value)."""
    return np.where(used >= 0, candidates[np.arange(len(used)), np.maximum(used, 0)], -1)


def fallback_notes(choice: StationChoice, pos: np.ndarray, used: np.ndarray, what: str) -> np.ndarray:
    """A sentence for each row whose value came from a station other than its cell's nearest (else None)."""
    out = np.full(len(used), None, dtype=object)
    for i in np.flatnonzero(used > 0):
        p, k = pos[i], used[i]
        out[i] = (f"{what}: nearest station {choice.ids[p, 0]} has no observation for this hour; station "
                  f"{choice.ids[p, k]} ({choice.km[p, k]:.1f} km from the cell) is used")
    return out


class HourlyArray:
    """A dense hourly wide frame as a plain array, for exact (hour, column) lookups by arithmetic.

    ``at(times, columns)`` answers like :func:`lookup` (NaN where the time is not one of the frame's
    hours or the column is -1) without pandas indexing: the online path asks it per request.
    """

    def __init__(self, wide: pd.DataFrame):
        index = wide.index
        self.columns = wide.columns
        self.values = wide.to_numpy(dtype=float)
        self.start = int(time_ns(index[:1])[0]) if len(index) else 0
        if len(index) > 1 and not (np.diff(time_ns(index)) == HOUR_NS).all():
            raise ValueError("HourlyArray needs a dense hourly index (see hourly_wide)")

    def __len__(self) -> int:
        return len(self.values)

    def column(self, keys) -> np.ndarray:
        """Column position of each key, -1 where it is not a column."""
        return self.columns.get_indexer(np.asarray(keys))

    def rows(self, times) -> np.ndarray:
        """Row of each time, -1 where it is not exactly one of the frame's hours."""
        t = time_ns(times)
        offset = t - self.start
        row = offset // HOUR_NS
        ok = (t != NAT_NS) & (offset % HOUR_NS == 0) & (row >= 0) & (row < len(self.values))
        return np.where(ok, row, -1)

    def first_at(self, times, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The value at ``times`` of the first candidate column (one row of ``candidates`` per time) that
        has one, and which candidate that was (-1: none had a value)."""
        rows = self.rows(times)
        out, used = np.full(len(rows), np.nan), np.full(len(rows), -1)
        for k in range(candidates.shape[1]):
            todo = np.isnan(out)
            if not todo.any():
                break
            vals = self._take(rows[todo], candidates[todo, k])
            got = ~np.isnan(vals)
            idx = np.flatnonzero(todo)[got]
            out[idx], used[idx] = vals[got], k
        return out, used

    def at(self, times, columns) -> np.ndarray:
        return self._take(self.rows(times), columns)

    def _take(self, rows: np.ndarray, columns) -> np.ndarray:
        cols = np.broadcast_to(np.asarray(columns, dtype=np.int64), rows.shape)
        ok = (rows >= 0) & (cols >= 0)
        out = np.full(len(rows), np.nan)
        out[ok] = self.values[rows[ok], cols[ok]]
        return out


def floor_hours_ns(times, hours: int = 1) -> np.ndarray:
    """Times floored to a multiple of ``hours`` (from midnight), as int64 ns; NaT stays NaT."""
    t = time_ns(times)
    step = hours * HOUR_NS
    return np.where(t == NAT_NS, NAT_NS, t - t % step)


def cell_positions(src, cell_ids) -> np.ndarray:
    """Position in ``src.grid.cells`` of each cell_id, -1 for an id that is not a cell of the grid."""
    ids = np.asarray(cell_ids)
    if len(ids) > 10_000:  # a table build: pandas' hash join wins
        index = memo(src, "grid.cell_index", lambda: pd.Index(src.grid.cells["cell_id"]), reads=())
        return index.get_indexer(ids)
    lookup = memo(src, "grid.cell_dict", lambda: {c: i for i, c in enumerate(src.grid.cells["cell_id"].tolist())},
                  reads=())
    return np.fromiter((lookup.get(c, -1) for c in ids.tolist()), dtype=np.int64, count=len(ids))


def cell_arrays(src) -> dict[str, np.ndarray]:
    """Every numeric column of the grid and its static layers (``src.static``) as float arrays by cell
    position, with one trailing NaN so that position -1 (not a cell) reads NaN. Computed once per Sources."""
    def build() -> dict[str, np.ndarray]:
        static = src.static.reindex(src.grid.cells["cell_id"].to_numpy())
        out = {}
        for col in static.columns:
            if pd.api.types.is_numeric_dtype(static[col]) and not pd.api.types.is_bool_dtype(static[col]):
                out[col] = np.append(static[col].to_numpy(dtype=float), np.nan)
        return out
    return memo(src, "grid.cell_arrays", build, reads=("static",))

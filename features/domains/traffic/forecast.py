"""Traffic: the forecast table of a period, one row per cell, every feature frozen at ``as_of``.

The hotspot question differs from the hourly one: not "how many accidents in this cell in this 3-hour
slot, given its weather", but "where will the next period's accidents concentrate, given the record up to
today". One row per cell; every feature reads only accidents stamped strictly before ``as_of`` (and the
static layers, when the city has them), so a past period is seen as it was at its start and a future one
is a forecast. The same function (:func:`forecast_rows`) makes the training rows (at :func:`origins`
before ``as_of``, labelled by :func:`period_counts` with the year that followed each; assembled in
training/hotspots.py) and the rows a forecast is made from.

History features (accidents per year, KST calendar time):

- ``rate_1y``, ``rate_3y``, ``rate_all``: the cell's accidents over the last 1 and 3 years and over the
  whole record before ``as_of``, divided by the years of record inside each window;
- ``eclo_rate_3y``: its ECLO per year over the last 3 years;
- ``neighbour_rate_3y``: the mean ``rate_3y`` of its (up to 8) neighbouring land cells;
- ``district_rate_3y``: the mean ``rate_3y`` of its district's cells;
- ``history_years``: the years of record before ``as_of`` (the same in every row).

Static features are the hourly model's (:data:`features.domains.traffic.features.STATIC`); in a city
without static layers they are *not applicable*: NaN in every row, listed by :func:`not_applicable`.

A period shorter than a year is weighted by the record's day-of-year profile (:func:`exposure_years`):
the accidents of past years on the period's calendar days, against their daily mean. So the weather and
the calendar of the season enter as the record's past years saw them, slot by slot, never as a mean
weather. Labels (:func:`period_counts`) are the period's accidents, ECLO, serious-or-worse casualties
(deaths + serious injuries) and all casualties (deaths + serious + minor + reported injuries).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import pandas as pd

from features import timeseries as ts
from features.domains.traffic.features import STATIC, accidents
from features.errors import DataError

YEAR_DAYS = 365.25
HISTORY = ("rate_1y", "rate_3y", "rate_all", "eclo_rate_3y", "neighbour_rate_3y", "district_rate_3y",
           "history_years")
FEATURES = (*HISTORY, *STATIC)
MIN_HISTORY_YEARS = 1  # a forecast (and a training origin) needs a year of record before it
ORIGIN_STEP_MONTHS = 3  # training origins every quarter, each labelled with the year after it
LABELS = ("accidents", "eclo", "serious", "casualties")
TIME_BANDS = ("00-06시", "06-10시", "10-16시", "16-20시", "20-24시")  # night, morning peak, day, evening peak, evening
_BAND_EDGES = np.array([6, 10, 16, 20])


_BY_DATA: OrderedDict = OrderedDict()  # (fingerprint, key) -> value, least recently used first
_BY_DATA_ENTRIES = 64
_BY_DATA_LOCK = threading.Lock()
_COMPUTING: dict = {}  # (fingerprint, key) -> the lock its first caller holds while computing


def fingerprint(src) -> str:
    """A hash of what the hotspot forecast reads: the accident records, the static layers and the grid
    (computed once per Sources). A service that takes new weather rows holds a new Sources object with the
    same accidents: this keeps its fitted hotspot methods."""
    def build() -> str:
        parts = [src.city.name, str(src.city.grid_m), str(len(src.grid.cells))]
        for name in ("taas", "static"):
            if src.available(name):
                frame = src[name]
                parts.append(f"{name}:{len(frame)}:{int(pd.util.hash_pandas_object(frame, index=False).sum())}")
        return "|".join(parts)
    return ts.memo(src, "traffic.forecast.fingerprint", build)


def data_memo(src, key: str, compute):
    """``compute()`` once per :func:`fingerprint` of the data and ``key`` (the last 64 kept). A second caller
    of the same key waits for the first one's value (the service's warm-up and an early question share it)."""
    full = (fingerprint(src), key)
    with _BY_DATA_LOCK:
        if full in _BY_DATA:
            _BY_DATA.move_to_end(full)
            return _BY_DATA[full]
        lock = _COMPUTING.setdefault(full, threading.Lock())
    with lock:
        with _BY_DATA_LOCK:
            if full in _BY_DATA:
                return _BY_DATA[full]
        value = compute()
        with _BY_DATA_LOCK:
            _BY_DATA[full] = value
            _COMPUTING.pop(full, None)
            while len(_BY_DATA) > _BY_DATA_ENTRIES:
                _BY_DATA.popitem(last=False)
    return value


def forget() -> None:
    """Drop every value :func:`data_memo` keeps (a cold start, as a bench measures it)."""
    with _BY_DATA_LOCK:
        _BY_DATA.clear()


def records(src) -> pd.DataFrame:
    """Accidents on the grid as the hourly table places them (:func:`features.domains.traffic.features.accidents`),
    sorted by time, with ``serious``, ``casualties``, ``accident_type`` and ``road_type`` (computed once per
    data). :class:`DataError` (column ``taas``) when no accident lies on the city's grid."""
    def build() -> pd.DataFrame:
        out = accidents(src)
        if out.empty:
            raise DataError(f"no traffic accident record lies on {src.city.name}'s grid (import TAAS files: "
                            "`urban-safety data import --source taas`)", column="taas")
        return out.sort_values("time", kind="stable", ignore_index=True)
    return data_memo(src, "records", build)


def record_span(src) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first day of the accident record and the day after its newest accident."""
    t = records(src)["time"]
    return pd.Timestamp(t.iloc[0]).normalize(), pd.Timestamp(t.iloc[-1]).normalize() + pd.Timedelta(days=1)


def _before(src, as_of: pd.Timestamp) -> pd.DataFrame:
    acc = records(src)
    return acc.iloc[: int(np.searchsorted(acc["time"].to_numpy(), np.datetime64(as_of, "ns"), side="left"))]


def _years(a: pd.Timestamp, b: pd.Timestamp) -> float:
    return max((b - a) / pd.Timedelta(days=1), 0.0) / YEAR_DAYS


def has_history(first: pd.Timestamp, as_of: pd.Timestamp) -> bool:
    """Whether :data:`MIN_HISTORY_YEARS` of record (in calendar years: 365 days is a year) lie before ``as_of``."""
    return pd.Timestamp(as_of) >= pd.Timestamp(first) + pd.DateOffset(years=MIN_HISTORY_YEARS)


def history(src, as_of) -> pd.DataFrame:
    """The :data:`HISTORY` features of every cell (grid order) from the accidents before ``as_of``.

    A window longer than the record is cut to it (its rate divides by the years it really covers); with
    less than :data:`MIN_HISTORY_YEARS` of record every rate is NaN (no history is not a zero history).
    """
    as_of = pd.Timestamp(as_of)
    first, _ = record_span(src)
    n = len(src.grid.cells)
    out: dict[str, np.ndarray] = dict.fromkeys(HISTORY[:-1], np.full(n, np.nan))
    if has_history(first, as_of):
        acc = _before(src, as_of)
        for name, years, col in (("rate_1y", 1, None), ("rate_3y", 3, None), ("rate_all", None, None),
                                 ("eclo_rate_3y", 3, "eclo")):
            lo = first if years is None else max(first, as_of - pd.DateOffset(years=years))
            part = acc[acc["time"] >= lo]
            sums = np.bincount(part["cell_pos"], weights=None if col is None else part[col], minlength=n)
            out[name] = sums / _years(lo, as_of)
        out["neighbour_rate_3y"] = _neighbour_mean(src.grid.cells, out["rate_3y"])
        district = pd.factorize(src.grid.cells["district"])[0]
        out["district_rate_3y"] = (np.bincount(district, out["rate_3y"]) / np.bincount(district))[district]
    out["history_years"] = np.full(n, _years(first, as_of))
    return pd.DataFrame(out)[list(HISTORY)]


def _neighbour_mean(cells: pd.DataFrame, values: np.ndarray) -> np.ndarray:
    """The mean of ``values`` over each cell's (up to 8) neighbouring cells of the grid (NaN if none)."""
    row, col = cells["row"].to_numpy(), cells["col"].to_numpy()
    grid = np.full((row.max() + 3, col.max() + 3), np.nan)
    grid[row + 1, col + 1] = values
    total, count = np.zeros(len(cells)), np.zeros(len(cells))
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr or dc:
                v = grid[row + 1 + dr, col + 1 + dc]
                total += np.nan_to_num(v)
                count += ~np.isnan(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def static_features(src) -> pd.DataFrame:
    """The static layers' features per cell (grid order); NaN columns in a city without static layers."""
    n = len(src.grid.cells)
    if not src.available("static"):
        return pd.DataFrame({c: np.full(n, np.nan) for c in STATIC})
    arrays = ts.cell_arrays(src)
    return pd.DataFrame({c: arrays[c][:-1] if c in arrays else np.full(n, np.nan) for c in STATIC})


def not_applicable(src) -> dict[str, str]:
    """Each forecast feature this city cannot have, and why (no static layers)."""
    if src.available("static"):
        return {}
    return dict.fromkeys(STATIC, f"{src.city.name} has no static layers (roads, traffic volume, land use)")


def exposure_years(src, as_of, start, end) -> float:
    """The period's weight in accident-years of the record: its length in years times the record's
    day-of-year profile over it (accidents on the period's calendar days, per day, against all accidents
    per day, over the whole years before ``as_of``, so every calendar day counts as often). 1.0 for a whole
    year; a winter month of a city whose winters see more accidents weighs more than its length."""
    start, end, as_of = pd.Timestamp(start), pd.Timestamp(end), pd.Timestamp(as_of)
    days = pd.date_range(start, end, freq="D", inclusive="left")
    length = len(days) / YEAR_DAYS
    first, _ = record_span(src)
    if len(days) >= 365 or not has_history(first, as_of):
        return length
    whole = int(_years(first, as_of) + 1e-6)  # whole years of record before as_of
    while as_of - pd.DateOffset(years=whole) < first:
        whole -= 1
    acc = _before(src, as_of)
    acc = acc[acc["time"] >= as_of - pd.DateOffset(years=whole)]
    if acc.empty:
        return length
    doy = pd.DatetimeIndex(acc["time"]).day_of_year.to_numpy()
    per_doy = np.bincount(np.minimum(doy, 365), minlength=366)[1:]  # 29 Feb counts with 31 Dec's day 365
    wanted = np.minimum(days.day_of_year.to_numpy(), 365) - 1
    return float(length * per_doy[wanted].mean() / per_doy.mean())


def forecast_rows(src, as_of) -> pd.DataFrame:
    """One row per cell (grid order): ``cell_id``, ``district``, ``dong`` and :data:`FEATURES` frozen at
    ``as_of`` (float32, as the models read them)."""
    cells = src.grid.cells
    feats = pd.concat([history(src, as_of), static_features(src)], axis=1)[list(FEATURES)].astype(np.float32)
    ids = pd.DataFrame({"cell_id": cells["cell_id"].to_numpy(), "district": cells["district"].to_numpy(),
                        "dong": cells["dong"].to_numpy()})
    return pd.concat([ids, feats], axis=1)


def period_counts(src, start, end) -> pd.DataFrame:
    """Per cell (grid order): the :data:`LABELS` of the accidents in ``[start, end)``."""
    acc = records(src)
    t = acc["time"].to_numpy()
    lo, hi = np.searchsorted(t, np.datetime64(pd.Timestamp(start), "ns")), np.searchsorted(
        t, np.datetime64(pd.Timestamp(end), "ns"))
    part, n = acc.iloc[lo:hi], len(src.grid.cells)
    return pd.DataFrame({"accidents": np.bincount(part["cell_pos"], minlength=n).astype(float),
                         **{c: np.bincount(part["cell_pos"], weights=part[c], minlength=n)
                            for c in ("eclo", "serious", "casualties")}})


def origins(src, as_of) -> list[pd.Timestamp]:
    """Training origins for a forecast made at ``as_of``: every :data:`ORIGIN_STEP_MONTHS` back from a
    year before ``as_of``, while a year of record lies before the origin (the year after each ends by
    ``as_of``, so nothing after ``as_of`` is read)."""
    first, _ = record_span(src)
    out, o = [], pd.Timestamp(as_of) - pd.DateOffset(years=1)
    while has_history(first, o):
        out.append(o)
        o = o - pd.DateOffset(months=ORIGIN_STEP_MONTHS)
    return out[::-1]


def per_accident(src, as_of, prior: float = 5.0) -> pd.DataFrame:
    """Per cell (grid order): ECLO, serious-or-worse casualties and casualties per accident before ``as_of``,
    shrunk toward the district's mean with ``prior`` pseudo-accidents (the district's own mean shrunk the same
    way toward the city's): ``(sum_cell + prior * mean_district) / (n_cell + prior)``."""
    acc = _before(src, pd.Timestamp(as_of))
    n_cells = len(src.grid.cells)
    district = pd.factorize(src.grid.cells["district"])[0]
    counts = np.bincount(acc["cell_pos"], minlength=n_cells).astype(float)
    out = {}
    for col in ("eclo", "serious", "casualties"):
        sums = np.bincount(acc["cell_pos"], weights=acc[col], minlength=n_cells)
        city = sums.sum() / counts.sum() if counts.sum() else 0.0
        d_sums, d_counts = np.bincount(district, sums), np.bincount(district, counts)
        d_mean = (d_sums + prior * city) / (d_counts + prior)
        out[f"{col}_per_accident"] = (sums + prior * d_mean[district]) / (counts + prior)
    return pd.DataFrame(out)


def dominant_types(src, positions, as_of, years: int = 3) -> list[dict]:
    """For each cell position: its most frequent accident type (사고유형), road form (도로형태) and time of day
    over the ``years`` before ``as_of``, each with its share of the cell's accidents (None without any)."""
    table = data_memo(src, f"dominant.{pd.Timestamp(as_of).isoformat()}.{years}",
                      lambda: _dominant(src, pd.Timestamp(as_of), years))
    out = []
    for pos in np.asarray(positions, dtype=np.int64):
        n = int(table["accidents"][pos])
        item: dict = {"accidents": n}
        for key in ("accident_type", "road_type", "time_of_day"):
            value, count = table[key][0][pos], table[key][1][pos]
            item[key] = None if not count else {"value": str(value), "share": round(float(count / n), 3)}
        out.append(item)
    return out


def _dominant(src, as_of: pd.Timestamp, years: int) -> dict:
    """Per cell position: accidents, and per field (value, count) of its most frequent value (ties: first)."""
    acc = _before(src, as_of)
    acc = acc[acc["time"] >= as_of - pd.DateOffset(years=years)]
    n = len(src.grid.cells)
    pos = acc["cell_pos"].to_numpy()
    band = np.asarray(TIME_BANDS, dtype=object)[np.searchsorted(_BAND_EDGES, acc["time"].dt.hour.to_numpy(),
                                                                 side="right")]
    out: dict = {"accidents": np.bincount(pos, minlength=n)}
    for key, values in (("accident_type", acc["accident_type"].to_numpy(dtype=object)),
                        ("road_type", acc["road_type"].to_numpy(dtype=object)), ("time_of_day", band)):
        codes, labels = pd.factorize(values, use_na_sentinel=True)
        ok = codes >= 0
        k = max(len(labels), 1)
        counts = np.bincount(pos[ok] * k + codes[ok], minlength=n * k).reshape(n, k)
        best = counts.argmax(axis=1)
        out[key] = (np.asarray(labels, dtype=object)[best] if len(labels) else np.full(n, None),
                    counts[np.arange(n), best])
    return out

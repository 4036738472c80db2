"""Traffic: the feature rows, one code path for the training table and for a request."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from features import calendar
from features import timeseries as ts
from features.errors import DataError

log = logging.getLogger(__name__)

SLOT = timedelta(hours=3)
SLOTS_PER_DAY = 8
CONDITIONS = ("hour", "weekday", "holiday", "rain_3h_mm", "snow_cm", "temp_c", "freezing", "dark")
STATIC = ("road_km_arterial", "road_km_collector", "road_km_local", "intersections", "traffic_volume",
          "bus_stops", "schools", "commercial_share", "pop_day", "pop_night")
PAST = ("cell_rate_365d", "cell_slot_rate_365d")
FEATURES = (*CONDITIONS, *STATIC, *PAST)
UNITS = {"hour": "hour of day of the slot start (0-21, KST)", "weekday": "0 = Monday ... 6 = Sunday",
         "holiday": "1 on a Korean public holiday", "rain_3h_mm": "mm", "snow_cm": "cm",
         "temp_c": "degrees C", "freezing": "1 when temp <= 0 C on a wet or snowy road",
         "dark": "1 when the sun is below the horizon at the slot's midpoint"}

HISTORY_DAYS = 365
MIN_HISTORY_DAYS = 30  # a rate over fewer days is noise: NaN instead
DAY_NS = 24 * ts.HOUR_NS


@dataclass(frozen=True)
class Weather:
    """Hourly wide frames (index: hour, columns: station_id) behind the weather conditions."""

    cell_station: pd.Series  # nearest city station (ASOS or AWS) per cell_id
    cell_snow_station: pd.Series  # nearest ASOS station: AWS stations do not measure snow
    rain_3h: pd.DataFrame  # rain over (t - 3h, t]
    temp: pd.DataFrame
    snow: pd.DataFrame


def weather(src) -> Weather:
    """The weather series the conditions read (computed once per Sources)."""
    return ts.memo(src, "traffic.weather", lambda: _weather(src))


def _weather(src) -> Weather:
    stations = ts.weather_stations(src.city)
    snow_stations = ts.weather_stations(src.city, kinds=("asos",))
    return Weather(
        cell_station=ts.cell_stations(src, stations),
        cell_snow_station=ts.cell_stations(src, snow_stations),
        rain_3h=ts.trailing_sum(ts.station_hourly(src, "rain_mm", stations), 3),
        temp=ts.station_hourly(src, "temp_c", stations),
        snow=ts.station_hourly(src, "snow_cm", snow_stations),
    )


@dataclass(frozen=True)
class _Lookups:
    """Weather series as arrays and the accidents sorted for counting (once per Sources)."""

    choice: ts.StationChoice  # by cell position: the city stations that may stand for it
    cell_snow_col: np.ndarray  # the same for the nearest ASOS station in ``snow``
    rain_3h: ts.HourlyArray
    temp: ts.HourlyArray
    snow: ts.HourlyArray
    by_cell: ts.EventIndex  # accidents by cell position
    by_cell_slot: ts.EventIndex  # accidents by cell position * 8 + slot of day
    history_start_ns: int


def _lookups(src) -> _Lookups:
    def build() -> _Lookups:
        w = weather(src)
        rain, temp, snow = ts.HourlyArray(w.rain_3h), ts.HourlyArray(w.temp), ts.HourlyArray(w.snow)
        assert list(rain.columns) == list(temp.columns)
        acc = accidents(src)
        slot = acc["cell_pos"].to_numpy() * SLOTS_PER_DAY + _slot_of_day(acc["time"])
        stations = ts.weather_stations(src.city)
        return _Lookups(ts.station_choice(src, stations, rain.columns),
                        np.append(snow.column(w.cell_snow_station.to_numpy()), -1), rain, temp, snow,
                        ts.EventIndex(acc["cell_pos"], acc["time"]), ts.EventIndex(slot, acc["time"]),
                        int(ts.time_ns([history_start(src)])[0]))
    return ts.memo(src, "traffic.lookups", build)


def read_observed(src, pos: np.ndarray, times, notes: list | None = None) -> dict[str, np.ndarray]:
    """:func:`observed_weather` by cell position; with ``notes`` (a list), appends the fallback sentences."""
    look = _lookups(src)
    hours = ts.floor_hours_ns(times)
    candidates = look.choice.columns[pos]
    rain, rain_used = look.rain_3h.first_at(hours, candidates)
    temp, temp_used = look.temp.first_at(hours, candidates)
    if notes is not None:
        notes.append(ts.fallback_notes(look.choice, pos, rain_used, "rain"))
        notes.append(ts.fallback_notes(look.choice, pos, temp_used, "temperature"))
    return {
        "rain_3h_mm": rain,
        "snow_cm": np.nan_to_num(look.snow.at(hours, look.cell_snow_col[pos])),
        "temp_c": temp,
    }


def observed_weather(src, cell_ids, times) -> pd.DataFrame:
    """rain_3h_mm, snow_cm and temp_c observed at each (cell, time) at the nearest station (rain and
    temperature from the next nearest within the city's ``station_fallback_km`` when it has none).

    Times are floored to the hour. A blank snow depth means no snow on the ground (ASOS prints blanks,
    not zeros), so it reads as 0; missing rain or temperature stays NaN.
    """
    return pd.DataFrame(read_observed(src, ts.cell_positions(src, cell_ids), times))


def calendar_conditions(times, lat, lon) -> pd.DataFrame:
    """hour, weekday, holiday and dark (sun below the horizon at the slot's midpoint) per row."""
    return pd.DataFrame(_calendar(times, lat, lon))


def _calendar(times, lat, lon) -> dict[str, np.ndarray]:
    t = pd.DatetimeIndex(pd.to_datetime(np.asarray(times)))
    return {
        "hour": t.hour.to_numpy(), "weekday": t.day_of_week.to_numpy(),
        "holiday": calendar.is_holiday(t).astype(int),
        "dark": calendar.is_dark(t + SLOT / 2, lat, lon).astype(int),
    }


def freezing(temp_c, rain_3h_mm, snow_cm) -> np.ndarray:
    """1 when the air is at or below 0 C and the road is wet (rain in the last 3 h) or snowy."""
    wet = (np.nan_to_num(np.asarray(rain_3h_mm, dtype=float)) > 0) | (np.nan_to_num(np.asarray(snow_cm, dtype=float)) > 0)
    return ((np.asarray(temp_c, dtype=float) <= 0) & wet).astype(int)


def accidents(src) -> pd.DataFrame:
    """Accidents on the grid: ``cell_pos``, ``time`` (hour start), ``eclo``, ``serious`` (deaths + serious
    injuries), ``casualties`` (all four counts), ``accident_type`` and ``road_type`` (computed once per Sources).

    Rows without coordinates or outside every cell cannot be placed and are dropped (logged).
    """
    return ts.memo(src, "traffic.accidents", lambda: _accidents(src))


def _accidents(src) -> pd.DataFrame:
    raw = src["taas"]
    lat, lon = raw["lat"].to_numpy(dtype=float), raw["lon"].to_numpy(dtype=float)
    no_xy = np.isnan(lat) | np.isnan(lon)
    pos = np.full(len(raw), -1, dtype=np.int64)
    pos[~no_xy] = src.grid.locate(lat[~no_xy], lon[~no_xy])
    if (pos < 0).any():
        log.warning("traffic: %d of %d accidents dropped (%d without coordinates, %d outside the city)",
                    (pos < 0).sum(), len(raw), no_xy.sum(), ((pos < 0) & ~no_xy).sum())
    ok = pos >= 0
    n = {c: raw[c].to_numpy(dtype=float)[ok] for c in ("deaths", "serious", "minor", "reported")}
    return pd.DataFrame({"cell_pos": pos[ok], "time": pd.to_datetime(raw["time"]).to_numpy()[ok],
                         "eclo": raw["eclo"].to_numpy(dtype=float)[ok],
                         # for the hotspot forecast (forecast.py): serious-or-worse casualties, all casualties, kinds
                         "serious": n["deaths"] + n["serious"],
                         "casualties": n["deaths"] + n["serious"] + n["minor"] + n["reported"],
                         "accident_type": raw["accident_type"].to_numpy(dtype=object)[ok],
                         "road_type": raw["road_type"].to_numpy(dtype=object)[ok]})


def history_start(src) -> pd.Timestamp:
    """First day of the accident record: rates are normalised by the days of history since then."""
    return pd.Timestamp(pd.to_datetime(src["taas"]["time"]).min()).normalize()


def _slot_of_day(times) -> np.ndarray:
    return (ts.time_ns(times) // ts.HOUR_NS) % 24 // 3


def past_rates(src, pos: np.ndarray, times) -> dict[str, np.ndarray]:
    """Accidents per day over the 365 days before ``t``, in the cell and in the cell's same slot of day.

    Only accidents stamped strictly before ``t`` count. The divisor is the days of history available
    (at most 365); with fewer than 30 days the rate is NaN.
    """
    look = _lookups(src)
    t = ts.time_ns(times)
    lo = t - HISTORY_DAYS * DAY_NS
    days = np.clip((t - look.history_start_ns) / DAY_NS, 0, HISTORY_DAYS)
    days = np.where(days >= MIN_HISTORY_DAYS, days, np.nan)
    pos = np.asarray(pos, dtype=np.int64)
    cell = look.by_cell.count(pos, lo, t, closed="left")
    slot = look.by_cell_slot.count(pos * SLOTS_PER_DAY + _slot_of_day(t), lo, t, closed="left")
    return {"cell_rate_365d": cell / days, "cell_slot_rate_365d": slot / days}


def build_rows(src, requests: pd.DataFrame) -> pd.DataFrame:
    """Feature rows for requests (``cell_id``, ``time`` = slot start, and any of the condition columns).

    Missing conditions are derived with the training table's code: calendar ones from ``time``, weather
    from the observations at ``time``, ``freezing`` from the (given or observed) temperature, rain and
    snow, ``dark`` from the sun at the cell. Given values are used as they are. Other request columns
    pass through, before the features.
    """
    for col in ("cell_id", "time"):
        if col not in requests:
            raise DataError(f"traffic requests need a {col!r} column", column=col)
    time = requests["time"] if requests["time"].dtype.kind == "M" else pd.to_datetime(requests["time"])
    pos = ts.cell_positions(src, requests["cell_id"].to_numpy())
    if (pos < 0).any():
        bad = requests["cell_id"].to_numpy()[pos < 0][:3]
        raise DataError(f"unknown cell_id {list(bad)} (not a cell of {src.city.name}'s grid)", column="cell_id")
    t_ns = ts.time_ns(time)
    cells = ts.cell_arrays(src)
    derived: dict[str, np.ndarray] = {}
    if {"hour", "weekday", "holiday", "dark"} - set(requests.columns):
        derived.update(_calendar(time, cells["lat"][pos], cells["lon"][pos]))
    if {"rain_3h_mm", "snow_cm", "temp_c"} - set(requests.columns):
        derived.update(read_observed(src, pos, t_ns))
    f: dict[str, np.ndarray] = {}
    for col in ("hour", "weekday", "holiday", "dark", "rain_3h_mm", "snow_cm", "temp_c"):
        f[col] = requests[col].to_numpy(dtype=float) if col in requests else np.asarray(derived[col])
    f["freezing"] = requests["freezing"].to_numpy(dtype=float) if "freezing" in requests else \
        freezing(f["temp_c"], f["rain_3h_mm"], f["snow_cm"])
    for col in STATIC:
        f[col] = cells[col][pos]
    f.update(past_rates(src, pos, t_ns))
    out = {c: (time.array if c == "time" else requests[c].array) for c in requests.columns if c not in FEATURES}
    out.update({c: np.asarray(f[c]).astype(np.float32) for c in FEATURES})
    return pd.DataFrame(out, index=requests.index)


def sample_rows(src, rate: float = 0.05) -> pd.DataFrame:
    """Training cell-slots: every one with an accident, plus zero ones kept when a hash of
    ``(cell_id, t)`` falls below ``rate``; columns ``cell_id``, ``time``, ``weight``.

    Works slot block by slot block, so the 8 x days x cells candidates never exist at once.
    """
    acc = accidents(src)
    cells = src.grid.cells["cell_id"].to_numpy()
    start = history_start(src)
    end = pd.Timestamp(acc["time"].max()).normalize() + pd.Timedelta(days=1)
    slots = pd.date_range(start, end, freq=SLOT, inclusive="left")
    slot_index = ((acc["time"] - start) // SLOT).to_numpy()
    positive = np.unique(acc["cell_pos"].to_numpy() * len(slots) + slot_index)
    cell_code = pd.util.hash_array(cells.astype(object))  # what stable_uniform hashes a cell_id to
    kept = [positive]
    for lo in range(0, len(slots), 256):
        block = slots[lo:lo + 256].to_numpy()
        u = ts.stable_uniform(cell_code[None, :], block[:, None], seed=2)
        i_slot, i_cell = np.nonzero(u < rate)
        kept.append(i_cell.astype(np.int64) * len(slots) + lo + i_slot)
    keys = np.unique(np.concatenate(kept))
    pos, slot = keys // len(slots), keys % len(slots)
    rows = pd.DataFrame({"cell_id": cells[pos], "time": slots[slot],
                         "weight": np.where(np.isin(keys, positive), 1.0, 1.0 / rate)})
    return rows.sort_values(["time", "cell_id"], ignore_index=True)


def label(src, rows: pd.DataFrame) -> pd.DataFrame:
    """``accidents`` (count) and ``eclo`` (severity sum) in each row's slot ``[t, t + 3h)``."""
    acc = accidents(src)
    pos = pd.Index(src.grid.cells["cell_id"]).get_indexer(rows["cell_id"].to_numpy())
    t = pd.to_datetime(rows["time"])
    count = ts.count_in_window(acc["cell_pos"], acc["time"], pos, t, t + SLOT, closed="left")
    eclo = ts.count_in_window(acc["cell_pos"], acc["time"], pos, t, t + SLOT, closed="left", weights=acc["eclo"])
    return pd.DataFrame({"accidents": count.astype(np.int32), "eclo": eclo}, index=rows.index)


def build_table(src, rate: float = 0.05) -> pd.DataFrame:
    """The traffic training table: sampled cell-slots with conditions, features, labels and weights
    (:func:`table_parts` in one frame)."""
    return pd.concat(list(table_parts(src, None, rate)), ignore_index=True)


def table_parts(src, rows_per_part: int | None = None, rate: float = 0.05) -> Iterator[pd.DataFrame]:
    """The training table in parts of about ``rows_per_part`` time-ordered rows (None: one part)."""
    rows = sample_rows(src, rate)
    step = len(rows) if rows_per_part is None else rows_per_part
    n = accidents = with_accidents = 0
    for lo in range(0, max(len(rows), 1), max(step, 1)):
        table = build_rows(src, rows.iloc[lo:lo + step])
        table[["accidents", "eclo"]] = label(src, table)
        n, accidents = n + len(table), accidents + int(table["accidents"].sum())
        with_accidents += int((table["accidents"] > 0).sum())
        yield table
    log.info("traffic table: %d rows (%d with accidents), %d accidents", n, with_accidents, accidents)

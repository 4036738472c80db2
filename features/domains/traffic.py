"""Traffic domain: how many accidents will happen in a cell during a 3-hour slot?

A request is a cell and a slot start ``t`` (00, 03, ..., 21 KST) with the slot's conditions: calendar
(hour, weekday, holiday), weather known at ``t`` (rain in the 3 h before, snow depth and temperature
at ``t``, freezing) and darkness at the slot's midpoint. Features add the cell's road and land-use
layers and its past accident rates, counted strictly before ``t``.

Label: ``accidents`` = accidents in the slot. TAAS stamps an accident with the start of its hour, so
the slot ``(t, t + 3h]`` in continuous time is the stamps ``t <= time < t + 3h``; ``eclo`` sums their
severity (not a feature). Training rows: every cell-slot with an accident plus a hash-sampled share
``rate`` of the zero cell-slots, weighted ``1 / rate`` so that sums and means stay unbiased.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from features import calendar
from features import serving_adapters as sa
from features import timeseries as ts
from features.errors import DataError
from features.metrics import POISSON_DEVIANCE, TOP5_SHARE
from features.registry import Condition, DomainSpec, Levels, Serving, register

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


def _observed(src, pos: np.ndarray, times, notes: list | None = None) -> dict[str, np.ndarray]:
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
    return pd.DataFrame(_observed(src, ts.cell_positions(src, cell_ids), times))


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
    """Accidents on the grid: ``cell_pos``, ``time`` (hour start) and ``eclo`` (computed once per Sources).

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
    return pd.DataFrame({"cell_pos": pos[ok], "time": pd.to_datetime(raw["time"]).to_numpy()[ok],
                         "eclo": raw["eclo"].to_numpy(dtype=float)[ok]})


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
        derived.update(_observed(src, pos, t_ns))
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
    """The traffic training table: sampled cell-slots with conditions, features, labels and weights."""
    rows = sample_rows(src, rate)
    table = build_rows(src, rows)
    table[["accidents", "eclo"]] = label(src, table)
    log.info("traffic table: %d rows (%d with accidents), %d accidents", len(table),
             int((table["accidents"] > 0).sum()), int(table["accidents"].sum()))
    return table


# --- evaluation (holdout only; the truth is never a feature) ---

def baseline(rows: pd.DataFrame, history: pd.DataFrame) -> np.ndarray:
    """Historical rate of the same cell and slot, shrunk halfway to the cell's all-slot rate (so a slot
    with no past accident does not predict zero); the city's mean where a cell has no history."""
    slot = rows["cell_slot_rate_365d"].to_numpy(float)
    cell = rows["cell_rate_365d"].to_numpy(float) / SLOTS_PER_DAY
    city = np.average(history["accidents"], weights=history["weight"])
    return np.nan_to_num(0.5 * slot + 0.5 * cell, nan=city)


def oracle(rows: pd.DataFrame, truth_dir) -> np.ndarray:
    """Expected accidents of each cell-slot: the cell's base rate times the slot's multiplier."""
    cells = pd.read_parquet(Path(truth_dir) / "traffic_truth_cells.parquet")
    slots = pd.read_parquet(Path(truth_dir) / "traffic_truth_slots.parquet")
    joined = rows[["cell_id", "time"]].merge(cells, on="cell_id", how="left").merge(slots, on="time", how="left")
    return (joined["base"] * joined["multiplier"]).to_numpy()


# --- serving: the API's conditions, levels and request adapters ---

SERVING_CONDITIONS = (
    Condition("hour", "h", "hour of day (KST) of the slot asked about, floored to its 3-h slot (0, 3, ..., 21); "
              "moves the slot to that hour of `at`'s day. Omitted: the slot holding `at`", 18, 0, 23, "int"),
    Condition("weekday", "day", "0 = Monday ... 6 = Sunday. Omitted: the slot's weekday", 4, 0, 6, "int"),
    Condition("holiday", "", "a Korean public holiday. Omitted: the slot's day looked up", False, kind="bool"),
    Condition("rain_3h_mm", "mm", "rain in the 3 h before the slot. Omitted: observed at the cell's nearest "
              "station", 12.0, 0.0, 300.0),
    Condition("snow_cm", "cm", "snow depth on the ground. Omitted: observed at the nearest ASOS station",
              0.0, 0.0, 150.0),
    Condition("temp_c", "degrees C", "air temperature at the slot start. Omitted: observed", 2.0, -30.0, 45.0),
    Condition("freezing", "", "freezing wet or snowy road. Omitted: temperature <= 0 C with rain or snow",
              False, kind="bool"),
    Condition("dark", "", "the sun below the horizon mid-slot. Omitted: computed for the cell", True, kind="bool"),
)
_WEATHER = ("rain_3h_mm", "snow_cm", "temp_c")


def serving_requests(src, cells: pd.DataFrame, at, conditions: dict | None = None) -> pd.DataFrame:
    """One request per cell for the 3-h slot holding ``at`` (or, with ``hour``, the slot at that hour of
    ``at``'s day). Given conditions are constants; build_rows derives the others from the slot as in
    training. For a slot that starts after ``at``, omitted weather is the newest observed at ``at``."""
    conds = sa.given(conditions, CONDITIONS)
    at = pd.Timestamp(at)
    slot = at.floor("3h")
    columns: dict[str, object] = {}
    if "hour" in conds:
        hour = int(conds["hour"]) // 3 * 3
        slot = at.normalize() + pd.Timedelta(hours=hour)
        columns["hour"] = float(hour)
    columns = {"time": slot, **columns}
    missing = [c for c in _WEATHER if c not in conds]
    notes: list[np.ndarray] = []
    if missing:  # as build_rows would read them, but here so that the answer can say which station was used
        pos = ts.cell_positions(src, cells["cell_id"].to_numpy())
        observed = _observed(src, pos, np.full(len(cells), ts.time_ns([min(slot, at)])[0]), notes)
        columns.update({c: observed[c] for c in missing})
    columns.update({c: sa.as_float(v) for c, v in conds.items() if c != "hour"})
    columns["notes"] = sa.join_notes(notes, len(cells))
    return sa.cell_requests(cells, columns)


def serving_combine(rows: pd.DataFrame, pred) -> pd.DataFrame:
    """Expected accidents per cell in the slot; details name the slot and the weather used."""
    codes, times = pd.factorize(rows["time"])
    labels = [f"{t:%Y-%m-%d %H:%M}-{t + SLOT:%H:%M}" for t in times]
    weather = sa.records({c: rows[c].to_numpy() for c in _WEATHER}, digits=1)
    details = [{"slot": labels[k], **w} for k, w in zip(codes.tolist(), weather, strict=True)]
    return sa.per_cell(rows, np.clip(np.asarray(pred, dtype=float), 0, None), details=details,
                       notes=rows.get("notes"))


def _observed_hours(src) -> pd.DatetimeIndex:
    """Hours for which a city station observed both 3-h rain and temperature."""
    w = weather(src)
    seen = w.rain_3h.notna().any(axis=1).to_numpy() & w.temp.reindex(w.rain_3h.index).notna().any(axis=1).to_numpy()
    if not seen.any():
        raise DataError("traffic: no weather observations to serve from")
    return w.rain_3h.index[seen]


def serving_now(src) -> pd.Timestamp:
    """The start of the last slot whose weather (3-h rain and temperature) a city station observed."""
    return ts.memo(src, "traffic.now", lambda: pd.Timestamp(_observed_hours(src).max()).floor("3h"))


def serving_first(src) -> pd.Timestamp:
    """The first hour whose weather a city station observed (earlier slots have no inputs to answer from)."""
    return ts.memo(src, "traffic.first", lambda: pd.Timestamp(_observed_hours(src).min()))


# Breaks: the champion's expected accidents over all cell-slots of 2021-2023 (weighted table rows) put
# 75% of cell-slots below 0.0009 (관심), 20% up to 0.0044 (주의), 4% up to 0.0113 (경계) and 1% above (심각).
SERVING = Serving(
    conditions=SERVING_CONDITIONS,
    levels=Levels((1e-5, 0.0009, 0.0044, 0.0113, 0.03), log=True),
    value="expected traffic accidents in the cell during the 3-hour slot",
    unit="accidents per 3 h",
    requests=serving_requests,
    combine=serving_combine,
    now=serving_now,
    first=serving_first,
    scenarios=(("Friday evening rain", {"weekday": 4, "hour": 18, "rain_3h_mm": 15, "temp_c": 14, "holiday": False,
                                         "freezing": False}),),
)


SPEC = register(DomainSpec(
    name="traffic",
    title="Traffic accidents in a 3-hour slot",
    task="count",
    target="accidents",
    keys=("cell_id",),
    time="time",
    horizon=SLOT,
    features=FEATURES,
    conditions=CONDITIONS,
    sources=("asos", "aws", "taas", "static"),
    feature_set_version="traffic-v2",
    build_table=build_table,
    build_rows=build_rows,
    weight="weight",
    serving=SERVING,
    metrics=(POISSON_DEVIANCE, TOP5_SHARE),
    primary_metric="poisson_deviance",
    baseline=baseline,
    oracle=oracle,
    # Exposure and wet or frozen roads never lower the expected count: more traffic, road and junctions,
    # rain (crash rates up ~70% in rain, ~80% in snow: Qiu & Nixon 2008, Transp. Res. Rec. 2055) and a cell's
    # own accident history. Hour, weekday and darkness go both ways (less traffic at night) and stay free.
    monotone=dict.fromkeys(("rain_3h_mm", "snow_cm", "freezing", "traffic_volume", "road_km_arterial",
                            "road_km_collector", "road_km_local", "intersections", "cell_rate_365d",
                            "cell_slot_rate_365d"), 1),
    essential=("rain_3h_mm", "temp_c"),
    extra={"units": UNITS},
))

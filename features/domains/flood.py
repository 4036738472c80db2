"""Flood domain: will a cell start to flood in the next 3 hours?

A request is a cell and an issue time ``t`` (on the hour) with the rain and tide conditions; in the
training table the conditions are the observations at ``t`` (see :func:`observed_conditions` for how
each one is read). Features add the cell's static layers, physics-aware ratios (rain against
the drains' capacity, tide above the first alert step on low-lying land, long rain near a stream) and
the number of earlier floods recorded at the cell.

Label: ``flooded`` = 1 when a flood trace's onset at the cell lies in ``(t, t + 3h]``. Training rows are
"event hours" (heavy observed or forecast rain at any city station, or a predicted high tide) plus a
deterministic 0.5% sample of the other hours, times every cell. Selection uses only what is known at
``t`` (observations, forecasts, tide predictions), so it does not bias ``P(flooded | features)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from features import serving_adapters as sa
from features import timeseries as ts
from features.errors import DataError
from features.metrics import BRIER, PR_AUC, ROC_AUC
from features.registry import Condition, DomainSpec, Levels, Serving, register

log = logging.getLogger(__name__)

HORIZON = timedelta(hours=3)
CONDITIONS = ("rain_1h", "rain_3h", "rain_6h", "rain_24h", "rain_fcst_1h", "rain_fcst_3h", "tide_cm",
              "tide_pred_max_3h_cm")
STATIC = ("elevation_m", "slope_deg", "dist_coast_m", "dist_stream_m", "impervious_share",
          "drain_capacity_mmh", "manhole_density_km2", "reclaimed")
DERIVED = ("rain_1h_over_drain", "rain_3h_over_drain", "rain_fcst_1h_over_drain", "rain_fcst_3h_over_drain",
           "low_lying", "tide_excess_cm", "stream_rain_24h", "past_floods")
FEATURES = (*CONDITIONS, *STATIC, *DERIVED)
UNITS = {"rain_1h": "mm", "rain_3h": "mm", "rain_6h": "mm", "rain_24h": "mm", "rain_fcst_1h": "mm",
         "rain_fcst_3h": "mm", "tide_cm": "cm (Incheon tide datum)", "tide_pred_max_3h_cm": "cm (Incheon tide datum)"}

#: A cell is low-lying when its ground is at most this high (m above mean sea level): the first tide
#: alert step (886 cm on the tide datum) is about 4.2 m above Incheon's mean sea level (~463 cm).
LOW_LYING_M = 4.5
#: Stream flooding fades with distance to the stream on this scale (m).
STREAM_SCALE_M = 500.0
_NO_TIME_NS = ts.time_ns([pd.Timestamp("1900-01-01")])[0]

# Training-row selection, measured on the default data (3 years, 500 m grid, 2,208 cells): 25 mm / 930 cm
# give 482 event hours whose windows hold 394 of the 404 flood onsets, and the 0.5% background adds 116
# calm hours: 1.32M rows. 5 mm / 886 cm would give 2,043 event hours (4.5M rows) for 7 more onsets.
RAIN_EVENT_MM = 25.0  # observed or forecast 3-h rain at any city station
TIDE_EVENT_CM = 930.0  # predicted high tide, between the 2nd and 3rd alert steps (906 / 953 cm)
BACKGROUND = 0.005  # share of the other hours kept, by a hash of the hour


@dataclass(frozen=True)
class StationSeries:
    """Hourly wide frames (index: hour, columns: station_id) behind the conditions."""

    stations: pd.DataFrame  # the city's non-upwind ASOS and AWS stations
    cell_station: pd.Series  # nearest station per cell_id
    rain: dict[int, pd.DataFrame]  # k -> observed rain over (t - k h, t]
    fcst_1h: pd.DataFrame  # nowcast issued at t for (t, t + 1h], at the station's forecast grid point
    fcst_3h: pd.DataFrame  # the same summed over leads 1-3, (t, t + 3h]
    tide: pd.Series  # observed tide at t
    tide_pred: pd.Series  # predicted (astronomical) tide at t
    tide_pred_max_3h: pd.Series  # max predicted tide over (t, t + 3h]


def station_series(src) -> StationSeries:
    """Rain, nowcast and tide series of the city (computed once per Sources)."""
    return ts.memo(src, "flood.station_series", lambda: _station_series(src))


def _station_series(src) -> StationSeries:
    # The upwind island station (Baengnyeong-do) is 200 km out at sea: useless for a cell's rain.
    stations = ts.weather_stations(src.city)
    hourly = ts.station_hourly(src, "rain_mm", stations)
    rain = {k: ts.trailing_sum(hourly, k) for k in (1, 3, 6, 24)}
    nc = src["nowcast"]
    lead = (nc["valid"] - nc["issued"]) / ts.HOUR
    nc = nc.loc[lead.between(1, 3)].assign(lead=lead)
    nc = nc.merge(stations[["station_id", "nx", "ny"]], on=["nx", "ny"])
    fcst_1h = ts.hourly_wide(nc.loc[nc["lead"] == 1], "rain_mm", time="issued", keys=stations["station_id"])
    summed = nc.groupby(["station_id", "issued"], as_index=False)["rain_mm"].sum(min_count=1)
    fcst_3h = ts.hourly_wide(summed, "rain_mm", time="issued", keys=stations["station_id"])
    tide = src["tide"]
    obs = ts.hourly_wide(tide.assign(k=0), "tide_cm", key="k")[0]
    pred = ts.hourly_wide(tide.assign(k=0), "tide_pred_cm", key="k")
    return StationSeries(stations, ts.cell_stations(src, stations), rain, fcst_1h, fcst_3h, obs, pred[0],
                         ts.leading_agg(pred, 3, "max")[0])


@dataclass(frozen=True)
class _Lookups:
    """The station series as plain arrays, and the located traces sorted for counting (once per Sources)."""

    choice: ts.StationChoice  # by cell position: columns of the stations that may stand for it in ``rain`` etc.
    rain: dict[int, ts.HourlyArray]
    fcst_1h: ts.HourlyArray
    fcst_3h: ts.HourlyArray
    tide: ts.HourlyArray  # one column
    tide_pred: ts.HourlyArray
    tide_pred_max_3h: ts.HourlyArray
    known_floods: ts.EventIndex  # located traces by cell position and ``known_at``


def _lookups(src) -> _Lookups:
    def build() -> _Lookups:
        s = station_series(src)
        rain = {k: ts.HourlyArray(w) for k, w in s.rain.items()}
        fcst_1h, fcst_3h = ts.HourlyArray(s.fcst_1h), ts.HourlyArray(s.fcst_3h)
        # Every frame has the city stations as columns, in the same order.
        assert all(list(a.columns) == list(rain[1].columns) for a in (*rain.values(), fcst_1h, fcst_3h))
        choice = ts.station_choice(src, s.stations, rain[1].columns)
        tr = located_traces(src)
        return _Lookups(choice, rain, fcst_1h, fcst_3h, ts.HourlyArray(s.tide.to_frame()),
                        ts.HourlyArray(s.tide_pred.to_frame()), ts.HourlyArray(s.tide_pred_max_3h.to_frame()),
                        ts.EventIndex(tr["cell_pos"], tr["known_at"]))
    return ts.memo(src, "flood.lookups", build)


def _observed(src, pos: np.ndarray, times, notes: list | None = None) -> dict[str, np.ndarray]:
    """:func:`observed_conditions` by cell position (-1: unknown cell, NaN rain); with ``notes`` (a list),
    appends one array per fallback used: a sentence per row that used it, else None."""
    look = _lookups(src)
    hours = ts.floor_hours_ns(times)
    candidates = look.choice.columns[pos]
    # One station for every rain window (the first with this hour's rain), one for both nowcast windows.
    rain_1h, used = look.rain[1].first_at(hours, candidates)
    out = {"rain_1h": rain_1h, **{f"rain_{k}h": look.rain[k].at(hours, ts.chosen(candidates, used))
                                  for k in (3, 6, 24)}}
    out["rain_fcst_3h"], fused = look.fcst_3h.first_at(hours, candidates)
    out["rain_fcst_1h"] = look.fcst_1h.at(hours, ts.chosen(candidates, fused))
    tide, predicted = look.tide.at(hours, 0), look.tide_pred.at(hours, 0)
    gauge_down = np.isnan(tide) & ~np.isnan(predicted)
    out["tide_cm"] = np.where(gauge_down, predicted, tide)  # the astronomical prediction stands in
    out["tide_pred_max_3h_cm"] = look.tide_pred_max_3h.at(hours, 0)
    if notes is not None:
        notes.append(ts.fallback_notes(look.choice, pos, used, "rain"))
        notes.append(ts.fallback_notes(look.choice, pos, fused, "rain nowcast"))
        notes.append(np.where(gauge_down, "tide: no gauge observation for this hour; the predicted tide is used",
                              None))
    return out


def observed_conditions(src, cell_ids, times) -> pd.DataFrame:
    """The conditions as observed at each (cell, issue time): the training table's requests.

    Rain sums and nowcasts come from the cell's nearest city station (nowcasts at that station's
    forecast grid point) or, when it has no value for the hour, from the next nearest within the city's
    ``station_fallback_km``; tide from the tide gauge, or its astronomical prediction when the gauge has
    no observation. Times are floored to the hour (data of that hour are known by then). Anything still
    missing is NaN: an essential input, so the row is left out of training and answered ``unknown``.
    """
    return pd.DataFrame(_observed(src, ts.cell_positions(src, cell_ids), times))


def located_traces(src) -> pd.DataFrame:
    """Flood traces located on the grid, with ``cell_pos``, ``onset`` and ``known_at``.

    ``onset`` is an hour stamp like the weather's: SAT_TM ``HH`` marks the hour *ending* at HH:00 on
    SAT_DATE in which the flooding began. Real traces have no SAT_TM: for those, ``onset`` is the stamp
    of the wettest hour of ``start_date`` at the cell's nearest station. Because that guess depends on
    the whole day's rain, such a trace counts as past (``known_at``) only from the end of that day; a
    trace with a recorded hour counts from its onset. Traces outside the city's cells are dropped.
    """
    return ts.memo(src, "flood.traces", lambda: _traces(src))


def _traces(src) -> pd.DataFrame:
    raw = src["flood_traces"]
    pos = src.grid.locate(raw["lat"].to_numpy(), raw["lon"].to_numpy())
    if (pos < 0).any():
        log.info("flood traces: %d of %d lie outside the grid and are ignored", (pos < 0).sum(), len(raw))
    tr = raw.loc[pos >= 0, ["start_date", "onset"]].reset_index(drop=True)
    tr["cell_pos"] = pos[pos >= 0]
    day = pd.to_datetime(tr["start_date"]).dt.normalize()
    onset = pd.to_datetime(tr["onset"])
    missing = onset.isna().to_numpy()
    if missing.any():
        s = station_series(src)
        station = s.cell_station.to_numpy()[tr["cell_pos"].to_numpy()[missing]]
        stamps = day[missing].to_numpy()[:, None] + np.arange(24) * np.timedelta64(1, "h")
        rain = ts.lookup(s.rain[1], stamps.ravel(), np.repeat(station, 24)).reshape(-1, 24)
        wettest = np.argmax(np.where(np.isnan(rain), -1.0, rain), axis=1)  # a day without data -> 00:00
        onset[missing] = stamps[np.arange(len(stamps)), wettest]
        log.info("flood traces: %d without an onset hour, placed at the day's wettest hour", missing.sum())
    tr["onset"] = onset
    tr["known_at"] = onset.where(~missing, day + pd.Timedelta(days=1))
    return tr


def _cell_positions(src, cell_ids) -> np.ndarray:
    pos = ts.cell_positions(src, cell_ids)
    if (pos < 0).any():
        bad = np.asarray(cell_ids)[pos < 0][:3]
        raise DataError(f"unknown cell_id {list(bad)} (not a cell of {src.city.name}'s grid)", column="cell_id")
    return pos


def build_rows(src, requests: pd.DataFrame) -> pd.DataFrame:
    """Feature rows for requests (``cell_id``, ``time`` and any of the condition columns).

    Condition columns the request lacks are read from the observations at ``time`` with the same code
    that builds the training table; given ones are used as they are (NaN stays unknown). Other request
    columns pass through, before the features.
    """
    for col in ("cell_id", "time"):
        if col not in requests:
            raise DataError(f"flood requests need a {col!r} column", column=col)
    time = requests["time"] if requests["time"].dtype.kind == "M" else pd.to_datetime(requests["time"])
    pos = _cell_positions(src, requests["cell_id"].to_numpy())
    t_ns = ts.time_ns(time)
    f: dict[str, np.ndarray] = {}
    observed = _observed(src, pos, t_ns) if any(c not in requests for c in CONDITIONS) else {}
    for col in CONDITIONS:
        f[col] = requests[col].to_numpy(dtype=float) if col in requests else observed[col]
    cells = ts.cell_arrays(src)
    for col in STATIC:
        f[col] = cells[col][pos]
    f.update(physics_features(f, float(src.city.tide.alert_cm[0])))
    f["past_floods"] = _lookups(src).known_floods.count(pos, np.full(len(pos), _NO_TIME_NS), t_ns, closed="left")
    out = {c: (time.array if c == "time" else requests[c].array) for c in requests.columns if c not in FEATURES}
    out.update({c: f[c].astype(np.float32) for c in FEATURES})
    return pd.DataFrame(out, index=requests.index)


def _col(rows, name: str) -> np.ndarray:
    return np.asarray(rows[name], dtype=float)


def physics_features(rows, tide_alert_cm: float) -> dict[str, np.ndarray]:
    """Ratios a hydrologist would look at first, from condition and static columns (a DataFrame or a
    dict of arrays)."""
    drain = _col(rows, "drain_capacity_mmh")
    drain = np.where(drain > 0, drain, np.nan)  # a cell without drains: ratio unknown, not infinite
    low = (_col(rows, "elevation_m") <= LOW_LYING_M).astype(float)
    tide_top = np.fmax(_col(rows, "tide_pred_max_3h_cm"), _col(rows, "tide_cm"))
    return {
        "rain_1h_over_drain": _col(rows, "rain_1h") / drain,
        "rain_3h_over_drain": _col(rows, "rain_3h") / (3 * drain),
        "rain_fcst_1h_over_drain": _col(rows, "rain_fcst_1h") / drain,
        "rain_fcst_3h_over_drain": _col(rows, "rain_fcst_3h") / (3 * drain),
        "low_lying": low,
        "tide_excess_cm": np.clip(tide_top - tide_alert_cm, 0, None) * low,
        "stream_rain_24h": _col(rows, "rain_24h")
        * np.exp(-_col(rows, "dist_stream_m") / STREAM_SCALE_M),
    }


def cause(rows: pd.DataFrame, tide_alert_cm: float = 886.0, floor: float = 0.1) -> np.ndarray:
    """The dominant flood driver per row: ``rain_over_drain``, ``tide``, ``stream`` or ``none``.

    Each driver gets a score that is 1 at its "trouble" level, and the largest wins:
    - rain over drain: the heavier of observed and forecast 3-h rain (or 3x the last hour) over the
      drains' 3-h capacity;
    - tide: on low-lying cells only, ``(max tide - (alert - 50 cm)) / 50 cm``, so 1 at the first alert
      step (886 cm) and 0 fifty centimetres below it;
    - stream: 24-h rain over 100 mm, damped by ``exp(-distance to stream / 500 m)``.
    ``none`` when every score is below ``floor`` (a dry, calm hour). ``rows`` holds the condition and
    static columns (a :func:`build_rows` output will do).
    """
    f = physics_features(rows, tide_alert_cm)
    rain_top = np.fmax(np.fmax(_col(rows, "rain_3h"), _col(rows, "rain_fcst_3h")),
                       3 * _col(rows, "rain_1h"))
    drain = _col(rows, "drain_capacity_mmh")
    tide_top = np.fmax(_col(rows, "tide_pred_max_3h_cm"), _col(rows, "tide_cm"))
    scores = np.column_stack([
        rain_top / (3 * np.where(drain > 0, drain, np.nan)),
        np.clip(tide_top - (tide_alert_cm - 50), 0, None) / 50 * f["low_lying"],
        f["stream_rain_24h"] / 100.0,
    ])
    scores = np.nan_to_num(scores, nan=0.0)
    names = np.array(["rain_over_drain", "tide", "stream"], dtype=object)
    return np.where(scores.max(axis=1) >= floor, names[scores.argmax(axis=1)], "none")


def event_hours(src, rain_mm: float = RAIN_EVENT_MM, fcst_mm: float = RAIN_EVENT_MM,
                tide_cm: float = TIDE_EVENT_CM, background: float = BACKGROUND) -> pd.DatetimeIndex:
    """Issue times for the training table: event hours plus a hash-sampled ``background`` share of the rest.

    Event hour: any city station with observed 3-h rain >= ``rain_mm`` or a 3-h nowcast >= ``fcst_mm``,
    or a predicted tide in the next 3 h >= ``tide_cm``.
    """
    series = station_series(src)
    hours = series.rain[3].index
    rainy = (series.rain[3] >= rain_mm).any(axis=1).to_numpy()
    fcst = series.fcst_3h.reindex(hours)
    forecast = (fcst >= fcst_mm).any(axis=1).to_numpy()
    tide = (series.tide_pred_max_3h.reindex(hours) >= tide_cm).to_numpy()
    event = rainy | forecast | tide
    sampled = ts.stable_uniform(hours.to_numpy(), seed=1) < background
    log.info("flood event hours: %d rain, %d forecast, %d tide, %d in all; %d background of %d hours",
             rainy.sum(), forecast.sum(), tide.sum(), event.sum(), (sampled & ~event).sum(), len(hours))
    return hours[event | sampled]


def build_table(src, rain_mm: float = RAIN_EVENT_MM, fcst_mm: float = RAIN_EVENT_MM,
                tide_cm: float = TIDE_EVENT_CM, background: float = BACKGROUND) -> pd.DataFrame:
    """The flood training table: (event hours + background hours) x every cell, with the label."""
    hours = event_hours(src, rain_mm, fcst_mm, tide_cm, background)
    cells = src.grid.cells["cell_id"].to_numpy()
    requests = pd.DataFrame({
        "cell_id": np.tile(cells, len(hours)),
        "time": np.repeat(hours.to_numpy(), len(cells)),
    })
    conditions = observed_conditions(src, requests["cell_id"].to_numpy(), requests["time"])
    requests = pd.concat([requests, conditions[list(CONDITIONS)]], axis=1)
    table = build_rows(src, requests)
    table["flooded"] = label(src, table)
    windows = (hours + ts.HOUR).append([hours + 2 * ts.HOUR, hours + 3 * ts.HOUR]).unique()
    covered = located_traces(src)["onset"].isin(windows)
    log.info("flood table: %d rows, %d positive; %d of %d located traces fall in a selected window",
             len(table), int(table["flooded"].sum()), int(covered.sum()), len(covered))
    return table


def label(src, rows: pd.DataFrame) -> np.ndarray:
    """1 when a flood trace's onset at the row's cell lies in ``(time, time + 3h]``."""
    tr = located_traces(src)
    pos = _cell_positions(src, rows["cell_id"])
    t = pd.to_datetime(rows["time"])
    hits = ts.count_in_window(tr["cell_pos"], tr["onset"], pos, t, t + HORIZON, closed="right")
    return (hits > 0).astype(np.int8)


# --- evaluation (holdout only; the truth is never a feature) ---

def heavy_rain_rule(rows: pd.DataFrame) -> np.ndarray:
    """KMA heavy-rain rule on observed or forecast rain (1 h >= 50 and 3 h >= 90, or 1 h >= 72), low-lying cells."""
    fires = np.zeros(len(rows), dtype=bool)
    for one, three in (("rain_1h", "rain_3h"), ("rain_fcst_1h", "rain_fcst_3h")):
        r1, r3 = rows[one].to_numpy(float), rows[three].to_numpy(float)
        fires |= ((r1 >= 50) & (r3 >= 90)) | (r1 >= 72)
    return fires & (rows["low_lying"].to_numpy() > 0)


def baseline(rows: pd.DataFrame, history: pd.DataFrame) -> np.ndarray:
    """The rule, turned into probabilities by the flood rate when it fired / did not fire in the history."""
    fired = heavy_rain_rule(history)
    y = history["flooded"].to_numpy(float)
    p_fire = y[fired].mean() if fired.any() else 0.5
    p_quiet = y[~fired].mean()
    return np.where(heavy_rain_rule(rows), p_fire, p_quiet)


def oracle(rows: pd.DataFrame, truth_dir) -> np.ndarray:
    """The generator's flood probability for each row (absent from the sparse truth = below 1e-4)."""
    truth = pd.read_parquet(Path(truth_dir) / "flood_truth.parquet")
    joined = rows[["cell_id", "time"]].merge(truth, on=["cell_id", "time"], how="left")
    return joined["p_flood"].fillna(0.0).to_numpy()


# --- serving: the API's conditions, levels and request adapters ---

_RAIN = "mm at the cell's nearest city weather station"
SERVING_CONDITIONS = (
    Condition("rain_1h", "mm", f"rain in the last hour, {_RAIN}", 35.0, 0.0, 300.0),
    Condition("rain_3h", "mm", f"rain in the last 3 hours, {_RAIN}", 70.0, 0.0, 500.0),
    Condition("rain_6h", "mm", f"rain in the last 6 hours, {_RAIN}", 90.0, 0.0, 700.0),
    Condition("rain_24h", "mm", f"rain in the last 24 hours, {_RAIN}", 150.0, 0.0, 1000.0),
    Condition("rain_fcst_1h", "mm", "rain forecast for the next hour (KMA nowcast at the station)", 30.0, 0.0, 300.0),
    Condition("rain_fcst_3h", "mm", "rain forecast for the next 3 hours (KMA nowcast at the station)", 60.0, 0.0, 500.0),
    Condition("tide_cm", "cm", "observed tide now, on the Incheon tide datum (alert steps 886/906/953/1000)",
              850.0, -100.0, 1200.0),
    Condition("tide_pred_max_3h_cm", "cm", "highest predicted tide in the next 3 hours, same datum", 900.0,
              -100.0, 1200.0),
)
_CHAINS = (("rain_1h", "rain_3h", "rain_6h", "rain_24h"), ("rain_fcst_1h", "rain_fcst_3h"))


def serving_requests(src, cells: pd.DataFrame, at, conditions: dict | None = None) -> pd.DataFrame:
    """One request per cell at ``at`` floored to the hour.

    Given conditions are constants; the others are the observations at that hour (as in training).
    When a rain window is given, the longer windows are raised to at least it (60 mm in the last hour
    means at least 60 mm in the last 3 h), so a partial what-if stays physically consistent. The city's
    first tide alert step rides along for :func:`serving_combine`'s cause.
    """
    conds = sa.given(conditions, CONDITIONS)
    time = pd.Timestamp(at).floor("h")
    columns: dict[str, object] = {"time": time}
    notes: list[np.ndarray] = []
    if len(conds) < len(CONDITIONS):
        pos = ts.cell_positions(src, cells["cell_id"].to_numpy())
        observed = _observed(src, pos, np.full(len(cells), ts.time_ns([time])[0]), notes)
    for chain in _CHAINS:
        values = [np.full(len(cells), sa.as_float(conds[c])) if c in conds else observed[c] for c in chain]
        if any(c in conds for c in chain):
            values = list(np.fmax.accumulate(np.vstack(values), axis=0))
        columns.update(zip(chain, values, strict=True))
    for c in ("tide_cm", "tide_pred_max_3h_cm"):
        columns[c] = sa.as_float(conds[c]) if c in conds else observed[c]
    columns["tide_alert_cm"] = float(src.city.tide.alert_cm[0])
    columns["notes"] = sa.join_notes(notes, len(cells))
    return sa.cell_requests(cells, columns)


def serving_combine(rows: pd.DataFrame, pred) -> pd.DataFrame:
    """Probability of a flood onset in the next 3 h per cell, its likely cause and the conditions used."""
    alert = float(rows["tide_alert_cm"].iloc[0]) if "tide_alert_cm" in rows and len(rows) else 886.0
    used = sa.records({c: rows[c].to_numpy() for c in CONDITIONS}, digits=1)
    return sa.per_cell(rows, np.clip(np.asarray(pred, dtype=float), 0, 1), cause(rows, alert), used,
                       rows.get("notes"))


def serving_now(src) -> pd.Timestamp:
    """The last hour with observed rain at a city station, a nowcast issued and an observed tide."""
    def latest() -> pd.Timestamp:
        s = station_series(src)
        rain = s.rain[1].index[s.rain[1].notna().any(axis=1).to_numpy()]
        tide = s.tide.index[s.tide.notna().to_numpy()]
        if not len(rain) or not len(tide):
            raise DataError("flood: no rain or tide observations to serve from")
        return min(rain.max(), sa.last_time(src["nowcast"], "issued", ["rain_mm"]).floor("h"), tide.max())
    return ts.memo(src, "flood.now", latest)


def serving_first(src) -> pd.Timestamp:
    """The first hour with observed rain at a city station and a tide (observed or predicted)."""
    def earliest() -> pd.Timestamp:
        s = station_series(src)
        rain = s.rain[1].index[s.rain[1].notna().any(axis=1).to_numpy()]
        tide = s.tide.index[(s.tide.notna() | s.tide_pred.reindex(s.tide.index).notna()).to_numpy()]
        if not len(rain) or not len(tide):
            raise DataError("flood: no rain or tide observations to serve from")
        return max(rain.min(), tide.min())
    return ts.memo(src, "flood.first", earliest)


SERVING = Serving(
    conditions=SERVING_CONDITIONS,
    levels=Levels((1e-4, 0.005, 0.03, 0.15, 0.6), log=True),
    value="probability that the cell starts to flood in the next 3 hours",
    unit="probability",
    requests=serving_requests,
    combine=serving_combine,
    now=serving_now,
    first=serving_first,
    scenarios=(("60 mm/h at high tide", {"rain_1h": 60, "rain_3h": 90, "rain_fcst_1h": 60, "rain_fcst_3h": 120,
                                          "tide_cm": 930, "tide_pred_max_3h_cm": 950}),),
)


SPEC = register(DomainSpec(
    name="flood",
    title="Flooding in the next 3 hours",
    task="binary",
    target="flooded",
    keys=("cell_id",),
    time="time",
    horizon=HORIZON,
    features=FEATURES,
    conditions=CONDITIONS,
    sources=("asos", "aws", "nowcast", "tide", "flood_traces", "static"),
    feature_set_version="flood-v2",
    build_table=build_table,
    build_rows=build_rows,
    metrics=(PR_AUC, ROC_AUC, BRIER),
    primary_metric="pr_auc",
    baseline=baseline,
    oracle=oracle,
    serving=SERVING,
    # More rain (observed or forecast), a higher tide and their ratios to the drains never lower the risk.
    monotone={**dict.fromkeys((*CONDITIONS, *DERIVED[:4], "tide_excess_cm", "stream_rain_24h"), 1)},
    essential=CONDITIONS,
    extra={"cause": cause, "units": UNITS},
))

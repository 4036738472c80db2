"""Flood: the feature rows, one code path for the training table and for a request."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from features import timeseries as ts
from features.errors import DataError

log = logging.getLogger(__name__)

LEADS = (1, 3, 6)  # lead times (h) a request may ask for; each has its nowcast window below
DEFAULT_LEAD = 3
HORIZON = timedelta(hours=max(LEADS))  # the longest label window: what time-ordered splits must embargo
FCST_WINDOWS = LEADS  # nowcast rain summed over leads 1..k, one condition per lead time
TIDE_WINDOWS = (3, 6)  # predicted tide maxima; a lead uses the shortest window that covers it
OBSERVED = ("rain_1h", "rain_3h", "rain_6h", "rain_24h", *(f"rain_fcst_{k}h" for k in FCST_WINDOWS), "tide_cm",
            *(f"tide_pred_max_{k}h_cm" for k in TIDE_WINDOWS))
CONDITIONS = ("lead_hours", *OBSERVED)
STATIC = ("elevation_m", "slope_deg", "dist_coast_m", "dist_stream_m", "impervious_share",
          "drain_capacity_mmh", "manhole_density_km2", "reclaimed")
DERIVED = ("rain_fcst_lead", "rain_1h_over_drain", "rain_3h_over_drain", "rain_fcst_1h_over_drain",
           "rain_fcst_3h_over_drain", "rain_fcst_lead_over_drain", "low_lying", "tide_excess_cm",
           "stream_rain_24h", "past_floods")
FEATURES = (*CONDITIONS, *STATIC, *DERIVED)
#: Read from the tide gauge: not applicable in a city without one (NaN, never essential).
TIDE_FEATURES = ("tide_cm", *(f"tide_pred_max_{k}h_cm" for k in TIDE_WINDOWS), "tide_excess_cm")
_TIDE_UNIT = "cm (the city's tide gauge datum)"
UNITS = {"rain_1h": "mm", "rain_3h": "mm", "rain_6h": "mm", "rain_24h": "mm",
         **{f"rain_fcst_{k}h": "mm" for k in FCST_WINDOWS}, "tide_cm": _TIDE_UNIT,
         **{f"tide_pred_max_{k}h_cm": _TIDE_UNIT for k in TIDE_WINDOWS}}

#: A cell is low-lying when its ground is at most this high (m above mean sea level): the first tide
#: alert step (886 cm on the tide datum) is about 4.2 m above Incheon's mean sea level (~463 cm).
LOW_LYING_M = 4.5
#: Stream flooding fades with distance to the stream on this scale (m).
STREAM_SCALE_M = 500.0
_NO_TIME_NS = ts.time_ns([pd.Timestamp("1900-01-01")])[0]

# Training-row selection, measured on the default data (3 years, 500 m grid, 2,208 cells): 25 mm / 930 cm
# give 752 event hours (3-h and 6-h nowcasts included) plus 116 calm background hours, whose windows hold
# 368 / 394 / 400 of the 404 flood onsets at leads 1 / 3 / 6: 868 hours x 2,208 cells x 3 leads = 5.75M
# rows (15 s, 3.6 GB peak to build on 2 cores). With 3-h windows only (before the leads) it was 1.32M rows.
RAIN_EVENT_MM = 25.0  # observed or forecast 3-h rain at any city station
# Predicted high tide of an event hour: the city's ``tide.event_level_cm`` (Incheon: 930 cm, between the 2nd
# and 3rd alert steps, 906 / 953 cm).
BACKGROUND = 0.005  # share of the other hours kept, by a hash of the hour
# Beyond this many rows (hours x cells x leads) calm cell-hours are sampled, weighted (a fine grid: at 100 m
# the 868 hours x 55,200 cells x 3 leads would be 144M rows; 8M keeps the table the size of the 500 m one).
MAX_ROWS = 8_000_000


@dataclass(frozen=True)
class StationSeries:
    """Hourly wide frames (index: hour, columns: station_id) behind the conditions."""

    stations: pd.DataFrame  # the city's non-upwind ASOS and AWS stations
    cell_station: pd.Series  # nearest station per cell_id
    rain: dict[int, pd.DataFrame]  # k -> observed rain over (t - k h, t]
    # k -> nowcast issued at t summed over leads 1..k, (t, t + k h], at the station's forecast grid point
    fcst: dict[int, pd.DataFrame]
    fcst_late: pd.DataFrame  # 1 where the hour's issue is not held and the previous one stands in
    tide: pd.Series  # observed tide at t
    tide_pred: pd.Series  # predicted (astronomical) tide at t
    tide_pred_max: dict[int, pd.Series]  # k -> max predicted tide over (t, t + k h]


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
    nc = nc.loc[lead.between(1, max(FCST_WINDOWS))].assign(lead=lead)
    nc = nc.merge(stations[["station_id", "nx", "ny"]], on=["nx", "ny"])
    # One hourly wide frame per lead (index: issue hour): the windows are sums of them.
    by_lead = {k: ts.hourly_wide(nc.loc[nc["lead"] == k], "rain_mm", time="issued", keys=stations["station_id"])
               for k in range(1, max(FCST_WINDOWS) + 1)}
    index = by_lead[1].index.union(by_lead[1].index + ts.HOUR)  # an hour past the newest issue: the fallback
    by_lead = {k: w.reindex(index) for k, w in by_lead.items()}
    fcst, late = {}, None
    for k in FCST_WINDOWS:
        own = sum(by_lead[j].fillna(0) for j in range(1, k + 1)).where(
            pd.concat([by_lead[j].notna() for j in range(1, k + 1)]).groupby(level=0).any())
        # This hour's issue not held (late, or lost): the previous issue an hour on stands in, its leads
        # 2..k+1, the hour past its sixth lead taken as its sixth (the forecast's last hour persisted).
        last = max(FCST_WINDOWS)
        prev = sum(by_lead[min(j, last)] for j in range(2, k + 2)).shift(1, freq="h").reindex(index)
        fcst[k] = own.combine_first(prev)
        late = own.isna() & prev.notna()  # the longest window's, after the loop
    if src.city.lacks("tide"):  # not applicable: NaN at every hour, never a made-up tide
        pred = pd.DataFrame({0: np.nan}, index=rain[1].index)
        obs = pred[0].copy()
    else:
        tide = src["tide"]
        obs = ts.hourly_wide(tide.assign(k=0), "tide_cm", key="k")[0]
        pred = ts.hourly_wide(tide.assign(k=0), "tide_pred_cm", key="k")
    return StationSeries(stations, ts.cell_stations(src, stations), rain, fcst, late.astype(float), obs, pred[0],
                         {k: ts.leading_agg(pred, k, "max")[0] for k in TIDE_WINDOWS})


def tide_alert_cm(city) -> float:
    """The city's first tide alert step (cm), NaN without a tide gauge (tide features are then NaN)."""
    return float(city.tide.alert_cm[0]) if city.tide is not None else np.nan


@dataclass(frozen=True)
class _Lookups:
    """The station series as plain arrays, and the located traces sorted for counting (once per Sources)."""

    choice: ts.StationChoice  # by cell position: columns of the stations that may stand for it in ``rain`` etc.
    rain: dict[int, ts.HourlyArray]
    fcst: dict[int, ts.HourlyArray]
    fcst_late: ts.HourlyArray
    tide: ts.HourlyArray  # one column
    tide_pred: ts.HourlyArray
    tide_pred_max: dict[int, ts.HourlyArray]
    known_floods: ts.EventIndex  # located traces by cell position and ``known_at``


def _lookups(src) -> _Lookups:
    def build() -> _Lookups:
        s = station_series(src)
        rain = {k: ts.HourlyArray(w) for k, w in s.rain.items()}
        fcst = {k: ts.HourlyArray(w) for k, w in s.fcst.items()}
        # Every frame has the city stations as columns, in the same order.
        assert all(list(a.columns) == list(rain[1].columns) for a in (*rain.values(), *fcst.values()))
        choice = ts.station_choice(src, s.stations, rain[1].columns)
        tr = located_traces(src)
        return _Lookups(choice, rain, fcst, ts.HourlyArray(s.fcst_late), ts.HourlyArray(s.tide.to_frame()),
                        ts.HourlyArray(s.tide_pred.to_frame()),
                        {k: ts.HourlyArray(v.to_frame()) for k, v in s.tide_pred_max.items()},
                        ts.EventIndex(tr["cell_pos"], tr["known_at"]))
    return ts.memo(src, "flood.lookups", build)


def read_observed(src, pos: np.ndarray, times, notes: list | None = None) -> dict[str, np.ndarray]:
    """:func:`observed_conditions` by cell position (-1: unknown cell, NaN rain); with ``notes`` (a list),
    appends one array per fallback used: a sentence per row that used it, else None."""
    look = _lookups(src)
    hours = ts.floor_hours_ns(times)
    candidates = look.choice.columns[pos]
    # One station for every rain window (the first with this hour's rain), one for every nowcast window
    # (the first with a forecast over the longest one).
    rain_1h, used = look.rain[1].first_at(hours, candidates)
    out = {"rain_1h": rain_1h, **{f"rain_{k}h": look.rain[k].at(hours, ts.chosen(candidates, used))
                                  for k in (3, 6, 24)}}
    longest = max(FCST_WINDOWS)
    out[f"rain_fcst_{longest}h"], fused = look.fcst[longest].first_at(hours, candidates)
    for k in FCST_WINDOWS[:-1]:
        out[f"rain_fcst_{k}h"] = look.fcst[k].at(hours, ts.chosen(candidates, fused))
    tide, predicted = look.tide.at(hours, 0), look.tide_pred.at(hours, 0)
    gauge_down = np.isnan(tide) & ~np.isnan(predicted)
    out["tide_cm"] = np.where(gauge_down, predicted, tide)  # the astronomical prediction stands in
    for k in TIDE_WINDOWS:
        out[f"tide_pred_max_{k}h_cm"] = look.tide_pred_max[k].at(hours, 0)
    if notes is not None:
        notes.append(ts.fallback_notes(look.choice, pos, used, "rain"))
        notes.append(ts.fallback_notes(look.choice, pos, fused, "rain nowcast"))
        late = look.fcst_late.at(hours, ts.chosen(candidates, fused)) == 1
        notes.append(np.where(late, "rain nowcast: this hour's issue is not held; the previous hour's issue is "
                              "used one hour on (its last hour persisted for the 6 h window)", None))
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
    observed = read_observed(src, ts.cell_positions(src, cell_ids), times)
    return pd.DataFrame({c: observed[c] for c in OBSERVED})


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


def lead_hours(requests: pd.DataFrame) -> np.ndarray:
    """The requests' lead times (h) as floats: :data:`DEFAULT_LEAD` without a ``lead_hours`` column; a
    value other than one of :data:`LEADS` is a :class:`DataError` (NaN stays unknown)."""
    if "lead_hours" not in requests:
        return np.full(len(requests), float(DEFAULT_LEAD))
    lead = requests["lead_hours"].to_numpy(dtype=float)
    bad = ~np.isnan(lead) & ~np.isin(lead, LEADS)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"lead_hours {lead[row]:g} is not one of {', '.join(map(str, LEADS))}", row=row,
                        column="lead_hours")
    return lead


def build_rows(src, requests: pd.DataFrame) -> pd.DataFrame:
    """Feature rows for requests (``cell_id``, ``time`` and any of the condition columns).

    Condition columns the request lacks are read from the observations at ``time`` with the same code
    that builds the training table (``lead_hours`` defaults to :data:`DEFAULT_LEAD`); given ones are used
    as they are (NaN stays unknown). Other request columns pass through, before the features.
    """
    for col in ("cell_id", "time"):
        if col not in requests:
            raise DataError(f"flood requests need a {col!r} column", column=col)
    time = requests["time"] if requests["time"].dtype.kind == "M" else pd.to_datetime(requests["time"])
    pos = _cell_positions(src, requests["cell_id"].to_numpy())
    t_ns = ts.time_ns(time)
    f: dict[str, np.ndarray] = {"lead_hours": lead_hours(requests)}
    observed = read_observed(src, pos, t_ns) if any(c not in requests for c in OBSERVED) else {}
    for col in OBSERVED:
        f[col] = requests[col].to_numpy(dtype=float) if col in requests else observed[col]
    cells = ts.cell_arrays(src)
    for col in STATIC:
        f[col] = cells[col][pos]
    f.update(physics_features(f, tide_alert_cm(src.city)))
    f["past_floods"] = _lookups(src).known_floods.count(pos, np.full(len(pos), _NO_TIME_NS), t_ns, closed="left")
    out = {c: (time.array if c == "time" else requests[c].array) for c in requests.columns if c not in FEATURES}
    out.update({c: f[c].astype(np.float32) for c in FEATURES})
    return pd.DataFrame(out, index=requests.index)


def _col(rows, name: str) -> np.ndarray:
    return np.asarray(rows[name], dtype=float)


def _lead(rows) -> np.ndarray:
    return _col(rows, "lead_hours") if "lead_hours" in rows else np.full(len(_col(rows, "rain_1h")), DEFAULT_LEAD,
                                                                          dtype=float)


def _by_lead(rows, lead: np.ndarray, windows, name: str) -> np.ndarray:
    """Per row, the column ``name.format(k)`` of the shortest window ``k`` that covers the row's lead
    (NaN for an unknown lead)."""
    out, shorter = np.full(len(lead), np.nan), 0
    for k in sorted(windows):
        covered = (lead > shorter) & (lead <= k)
        if covered.any():  # a column no row needs may be absent
            out = np.where(covered, _col(rows, name.format(k)), out)
        shorter = k
    return out


def lead_window(rows) -> dict[str, np.ndarray]:
    """The rain forecast over the lead's window ``(t, t + lead]`` and the predicted tide maximum over the
    shortest tide window covering it (3 h for leads 1 and 3: the tide at hand is not discounted)."""
    lead = _lead(rows)
    return {"rain_fcst_lead": _by_lead(rows, lead, FCST_WINDOWS, "rain_fcst_{}h"),
            "tide_pred_max_lead_cm": _by_lead(rows, lead, TIDE_WINDOWS, "tide_pred_max_{}h_cm")}


def physics_features(rows, tide_alert_cm: float) -> dict[str, np.ndarray]:
    """The lead's forecast rain and ratios a hydrologist would look at first, from condition and static
    columns (a DataFrame or a dict of arrays; without ``lead_hours``, the default lead)."""
    drain = _col(rows, "drain_capacity_mmh")
    drain = np.where(drain > 0, drain, np.nan)  # a cell without drains: ratio unknown, not infinite
    low = (_col(rows, "elevation_m") <= LOW_LYING_M).astype(float)
    window = lead_window(rows)
    tide_top = np.fmax(window["tide_pred_max_lead_cm"], _col(rows, "tide_cm"))
    return {
        "rain_fcst_lead": window["rain_fcst_lead"],
        "rain_1h_over_drain": _col(rows, "rain_1h") / drain,
        "rain_3h_over_drain": _col(rows, "rain_3h") / (3 * drain),
        "rain_fcst_1h_over_drain": _col(rows, "rain_fcst_1h") / drain,
        "rain_fcst_3h_over_drain": _col(rows, "rain_fcst_3h") / (3 * drain),
        # Hours of drain capacity the lead's forecast fills: a total, not a rate, so that it (like every
        # feature that moves with the lead) never falls as the lead grows and the risk is monotone in it.
        "rain_fcst_lead_over_drain": window["rain_fcst_lead"] / drain,
        "low_lying": low,
        "tide_excess_cm": np.clip(tide_top - tide_alert_cm, 0, None) * low,
        "stream_rain_24h": _col(rows, "rain_24h")
        * np.exp(-_col(rows, "dist_stream_m") / STREAM_SCALE_M),
    }


def cause(rows: pd.DataFrame, tide_alert_cm: float = 886.0, floor: float = 0.1) -> np.ndarray:
    """The dominant flood driver per row: ``rain_over_drain``, ``tide``, ``stream`` or ``none``.

    Each driver gets a score that is 1 at its "trouble" level, and the largest wins:
    - rain over drain: the heaviest hourly rate of the last 3 h, the last hour and the forecast over the
      lead's window, over the drains' capacity;
    - tide: on low-lying cells only, ``(max tide - (alert - 50 cm)) / 50 cm`` (the highest of now and the
      prediction over the lead's tide window), so 1 at the first alert step (886 cm) and 0 fifty
      centimetres below it;
    - stream: 24-h rain over 100 mm, damped by ``exp(-distance to stream / 500 m)``.
    ``none`` when every score is below ``floor`` (a dry, calm hour). ``rows`` holds the condition and
    static columns (a :func:`build_rows` output will do; without ``lead_hours``, the default lead).
    """
    f = physics_features(rows, tide_alert_cm)
    window = lead_window(rows)
    rate = np.fmax(np.fmax(_col(rows, "rain_3h") / 3, window["rain_fcst_lead"] / _lead(rows)),
                   _col(rows, "rain_1h"))
    drain = _col(rows, "drain_capacity_mmh")
    tide_top = np.fmax(window["tide_pred_max_lead_cm"], _col(rows, "tide_cm"))
    scores = np.column_stack([
        rate / np.where(drain > 0, drain, np.nan),
        np.clip(tide_top - (tide_alert_cm - 50), 0, None) / 50 * f["low_lying"],
        f["stream_rain_24h"] / 100.0,
    ])
    scores = np.nan_to_num(scores, nan=0.0)
    names = np.array(["rain_over_drain", "tide", "stream"], dtype=object)
    return np.where(scores.max(axis=1) >= floor, names[scores.argmax(axis=1)], "none")


def event_hours(src, rain_mm: float = RAIN_EVENT_MM, fcst_mm: float = RAIN_EVENT_MM,
                tide_cm: float | None = None, background: float = BACKGROUND) -> pd.DatetimeIndex:
    """Issue times for the training table: event hours plus a hash-sampled ``background`` share of the rest.

    Event hour: any city station with observed 3-h rain >= ``rain_mm`` or a nowcast over the 3 h or the
    longest lead's window >= ``fcst_mm``, or a predicted tide within the longest lead >= ``tide_cm`` (default
    the city's ``tide.event_level_cm``; no tide gauge, no tide events).
    """
    if tide_cm is None:
        tide_cm = src.city.tide.event_level_cm if src.city.tide is not None else np.inf
    series = station_series(src)
    hours = series.rain[3].index
    rainy = (series.rain[3] >= rain_mm).any(axis=1).to_numpy()
    # 3 h keeps the short leads' events; the longest window adds those whose rain comes later.
    forecast = np.zeros(len(hours), dtype=bool)
    for k in sorted({3, max(FCST_WINDOWS)}):
        forecast |= (series.fcst[k].reindex(hours) >= fcst_mm).any(axis=1).to_numpy()
    tide = (series.tide_pred_max[max(TIDE_WINDOWS)].reindex(hours) >= tide_cm).to_numpy()
    event = rainy | forecast | tide
    sampled = ts.stable_uniform(hours.to_numpy(), seed=1) < background
    log.info("flood event hours: %d rain, %d forecast, %d tide, %d in all; %d background of %d hours",
             rainy.sum(), forecast.sum(), tide.sum(), event.sum(), (sampled & ~event).sum(), len(hours))
    return hours[event | sampled]


def build_table(src, rain_mm: float = RAIN_EVENT_MM, fcst_mm: float = RAIN_EVENT_MM,
                tide_cm: float | None = None, background: float = BACKGROUND) -> pd.DataFrame:
    """The flood training table: (event hours + background hours) x every cell x every lead, with the label
    (:func:`table_parts` in one frame)."""
    return pd.concat(list(table_parts(src, None, rain_mm, fcst_mm, tide_cm, background)), ignore_index=True)


def table_parts(src, rows_per_part: int | None = None, rain_mm: float = RAIN_EVENT_MM,
                fcst_mm: float = RAIN_EVENT_MM, tide_cm: float | None = None,
                background: float = BACKGROUND, max_rows: int = MAX_ROWS) -> Iterator[pd.DataFrame]:
    """The training table in parts of whole hours (about ``rows_per_part`` rows each; None: one part).

    The observations are read once per (cell, hour); each lead is then a request of its own through
    :func:`build_rows`, the path the service takes. When the selected hours x cells x leads exceed
    ``max_rows`` (a fine grid: 55,200 cells at 100 m), every (cell, hour) with a flood onset within the
    longest lead is kept and the others are kept with probability ``max_rows / candidates`` (a hash of cell
    and hour), weighted by its inverse (``weight``), so sums and rates stay unbiased.
    """
    hours = event_hours(src, rain_mm, fcst_mm, tide_cm, background)
    cells = src.grid.cells["cell_id"].to_numpy()
    rate = min(1.0, max_rows / max(len(hours) * len(cells) * len(LEADS), 1))
    chunk_rows = len(cells) * len(LEADS) * rate
    step = len(hours) if rows_per_part is None else max(1, int(rows_per_part // max(chunk_rows, 1)))
    traces = located_traces(src)
    cell_code = pd.util.hash_array(cells.astype(object))  # what stable_uniform hashes a cell_id to
    by_lead: dict[float, int] = {}
    rows = 0
    for lo in range(0, len(hours), step):
        chunk = hours[lo:lo + step]
        pos = np.tile(np.arange(len(cells)), len(chunk))
        time = np.repeat(chunk.to_numpy(), len(cells))
        weight = np.ones(len(pos), dtype=np.float32)
        if rate < 1:
            onset = ts.count_in_window(traces["cell_pos"], traces["onset"], pos, time, time + np.timedelta64(HORIZON),
                                       closed="right") > 0
            kept = onset | (ts.stable_uniform(cell_code[pos], time, seed=3) < rate)
            pos, time, weight = pos[kept], time[kept], np.where(onset[kept], 1.0, 1.0 / rate).astype(np.float32)
        requests = pd.DataFrame({"cell_id": cells[pos], "time": time})
        conditions = observed_conditions(src, requests["cell_id"].to_numpy(), requests["time"])
        requests = pd.concat([requests, conditions[list(OBSERVED)]], axis=1)
        n = len(requests)
        requests = requests.take(np.tile(np.arange(n), len(LEADS))).reset_index(drop=True)
        requests.insert(2, "lead_hours", np.repeat(np.asarray(LEADS, dtype=np.float32), n))
        table = build_rows(src, requests)
        table["flooded"] = label(src, table)
        table["weight"] = np.tile(weight, len(LEADS))
        for lead, hits in table.groupby("lead_hours")["flooded"].sum().items():
            by_lead[lead] = by_lead.get(lead, 0) + int(hits)
        rows += len(table)
        yield table
    windows = pd.DatetimeIndex(np.concatenate([hours + k * ts.HOUR for k in range(1, max(LEADS) + 1)])).unique()
    covered = traces["onset"].isin(windows)
    log.info("flood table: %d rows (calm cell-hours kept at rate %.3f), positives by lead %s; %d of %d located "
             "traces fall in a selected window", rows, rate, by_lead, int(covered.sum()), len(covered))


def label(src, rows: pd.DataFrame) -> np.ndarray:
    """1 when a flood trace's onset at the row's cell lies in ``(time, time + lead]`` (``lead_hours``;
    the default lead without that column)."""
    tr = located_traces(src)
    pos = _cell_positions(src, rows["cell_id"])
    t = pd.to_datetime(rows["time"]).to_numpy()
    lead = pd.to_timedelta(lead_hours(rows), unit="h").to_numpy()
    hits = ts.count_in_window(tr["cell_pos"], tr["onset"], pos, t, t + lead, closed="right")
    return (hits > 0).astype(np.int8)

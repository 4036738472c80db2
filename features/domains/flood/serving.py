"""Flood: the API's conditions, levels and request adapters."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import serving_adapters as sa
from features import timeseries as ts
from features.domains.flood.features import (
    CONDITIONS,
    DEFAULT_LEAD,
    FCST_WINDOWS,
    LEADS,
    OBSERVED,
    TIDE_WINDOWS,
    cause,
    read_observed,
    station_series,
    tide_alert_cm,
)
from features.errors import DataError
from features.registry import Condition, Levels, Serving
from features.sources.limits import LIMITS

_RAIN = "mm at the cell's nearest city weather station"
# An hour's rain and a tide level are bounded as the loaders bound them (the limits table); the longer rain
# windows are sums, not an element of the table.
_HOURLY_RAIN, _TIDE = LIMITS["rain_mm"].bounds, LIMITS["tide_cm"].bounds
SERVING_CONDITIONS = (
    Condition("lead_hours", "h", f"lead time: flooding within the next 1, 3 or 6 hours (default {DEFAULT_LEAD})",
              DEFAULT_LEAD, 1, max(LEADS), kind="int", choices=LEADS),
    Condition("rain_1h", "mm", f"rain in the last hour, {_RAIN}", 35.0, *_HOURLY_RAIN),
    Condition("rain_3h", "mm", f"rain in the last 3 hours, {_RAIN}", 70.0, 0.0, 500.0),
    Condition("rain_6h", "mm", f"rain in the last 6 hours, {_RAIN}", 90.0, 0.0, 700.0),
    Condition("rain_24h", "mm", f"rain in the last 24 hours, {_RAIN}", 150.0, 0.0, 1000.0),
    Condition("rain_fcst_1h", "mm", "rain forecast for the next hour (KMA nowcast at the station)", 30.0,
              *_HOURLY_RAIN),
    Condition("rain_fcst_3h", "mm", "rain forecast for the next 3 hours (KMA nowcast at the station)", 60.0, 0.0, 500.0),
    Condition("rain_fcst_6h", "mm", "rain forecast for the next 6 hours (KMA nowcast at the station)", 80.0, 0.0, 800.0),
    Condition("tide_cm", "cm", "observed tide now, on the datum of the city's tide gauge (Incheon's alert steps: "
              "886/906/953/1000); not applicable in a city without a gauge", 850.0, *_TIDE),
    Condition("tide_pred_max_3h_cm", "cm", "highest predicted tide in the next 3 hours, same datum", 900.0,
              *_TIDE),
    Condition("tide_pred_max_6h_cm", "cm", "highest predicted tide in the next 6 hours, same datum", 920.0,
              *_TIDE),
)
# Windows of one quantity, shortest first: a given window raises the longer ones to at least its value.
_CHAINS = (("rain_1h", "rain_3h", "rain_6h", "rain_24h"), tuple(f"rain_fcst_{k}h" for k in FCST_WINDOWS),
           tuple(f"tide_pred_max_{k}h_cm" for k in TIDE_WINDOWS))


def serving_requests(src, cells: pd.DataFrame, at, conditions: dict | None = None) -> pd.DataFrame:
    """One request per cell at ``at`` floored to the hour, for the lead time ``lead_hours`` (default 3).

    Given conditions are constants; the others are the observations at that hour (as in training).
    When a rain or tide window is given, the longer windows are raised to at least it (60 mm in the last
    hour means at least 60 mm in the last 3 h), so a partial what-if stays physically consistent. The
    city's first tide alert step rides along for :func:`serving_combine`'s cause.
    """
    conds = sa.given(conditions, CONDITIONS)
    time = pd.Timestamp(at).floor("h")
    columns: dict[str, object] = {"time": time, "lead_hours": float(conds.get("lead_hours", DEFAULT_LEAD))}
    notes: list[np.ndarray] = []
    if any(c not in conds for c in OBSERVED):
        pos = ts.cell_positions(src, cells["cell_id"].to_numpy())
        observed = read_observed(src, pos, np.full(len(cells), ts.time_ns([time])[0]), notes)
    for chain in _CHAINS:
        values = [np.full(len(cells), sa.as_float(conds[c])) if c in conds else observed[c] for c in chain]
        if any(c in conds for c in chain):
            values = list(np.fmax.accumulate(np.vstack(values), axis=0))
        columns.update(zip(chain, values, strict=True))
    columns["tide_cm"] = sa.as_float(conds["tide_cm"]) if "tide_cm" in conds else observed["tide_cm"]
    columns["tide_alert_cm"] = tide_alert_cm(src.city)
    columns["notes"] = sa.join_notes(notes, len(cells))
    return sa.cell_requests(cells, columns)


def serving_combine(rows: pd.DataFrame, pred) -> pd.DataFrame:
    """Probability of a flood onset within the lead time per cell, its likely cause and the conditions used
    (``lead_hours`` first, as an integer)."""
    alert = float(rows["tide_alert_cm"].iloc[0]) if "tide_alert_cm" in rows and len(rows) else 886.0
    used = sa.records({c: rows[c].to_numpy() for c in CONDITIONS}, digits=1)
    for record in used:
        record["lead_hours"] = None if record["lead_hours"] is None else int(record["lead_hours"])
    return sa.per_cell(rows, np.clip(np.asarray(pred, dtype=float), 0, 1), cause(rows, alert), used,
                       rows.get("notes"))


def _tide_hours(src, s, rain: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Hours with a tide (observed or predicted); every rain hour in a city without a tide gauge."""
    if src.city.lacks("tide"):
        return rain
    return s.tide.index[(s.tide.notna() | s.tide_pred.reindex(s.tide.index).notna()).to_numpy()]


def serving_now(src) -> pd.Timestamp:
    """The last hour with observed rain at a city station, a nowcast issued for it (or the hour before: see
    :func:`station_series`) and a tide (observed, or the prediction the gauge file carries ahead)."""
    def latest() -> pd.Timestamp:
        s = station_series(src)
        rain = s.rain[1].index[s.rain[1].notna().any(axis=1).to_numpy()]
        tide = _tide_hours(src, s, rain)
        if not len(rain) or not len(tide):
            raise DataError("flood: no rain or tide observations to serve from")
        forecast = s.fcst[max(FCST_WINDOWS)]  # every window of an issue (or its stand-in) held
        forecast = forecast.index[forecast.notna().any(axis=1).to_numpy()]
        if not len(forecast):
            raise DataError("flood: no rain nowcast to serve from")
        return min(rain.max(), forecast.max(), tide.max())
    return ts.memo(src, "flood.now", latest)


def serving_first(src) -> pd.Timestamp:
    """The first hour with observed rain at a city station and a tide (observed or predicted)."""
    def earliest() -> pd.Timestamp:
        s = station_series(src)
        rain = s.rain[1].index[s.rain[1].notna().any(axis=1).to_numpy()]
        tide = _tide_hours(src, s, rain)
        if not len(rain) or not len(tide):
            raise DataError("flood: no rain or tide observations to serve from")
        return max(rain.min(), tide.min())
    return ts.memo(src, "flood.first", earliest)


SERVING = Serving(
    conditions=SERVING_CONDITIONS,
    levels=Levels((1e-4, 0.005, 0.03, 0.15, 0.6), log=True),
    value="probability that the cell starts to flood within the lead time (conditions.lead_hours: 1, 3 or 6 h; "
          f"default {DEFAULT_LEAD})",
    unit="probability",
    requests=serving_requests,
    combine=serving_combine,
    now=serving_now,
    first=serving_first,
    scenarios=(("60 mm/h at high tide", {"rain_1h": 60, "rain_3h": 90, "rain_fcst_1h": 60, "rain_fcst_3h": 120,
                                          "rain_fcst_6h": 150, "tide_cm": 930, "tide_pred_max_3h_cm": 950,
                                          "tide_pred_max_6h_cm": 950}),
               ("the same, 6 hours ahead", {"lead_hours": 6, "rain_1h": 60, "rain_3h": 90, "rain_fcst_1h": 60,
                                            "rain_fcst_3h": 120, "rain_fcst_6h": 150, "tide_cm": 930,
                                            "tide_pred_max_3h_cm": 950, "tide_pred_max_6h_cm": 950})),
)

"""Traffic: the API's conditions, levels and request adapters."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import serving_adapters as sa
from features import timeseries as ts
from features.domains.traffic.features import CONDITIONS, SLOT, read_observed, weather
from features.errors import DataError
from features.registry import Condition, Levels, Serving
from features.sources.limits import LIMITS

# Snow depth and temperature are bounded as the loaders bound them (the limits table).
SERVING_CONDITIONS = (
    Condition("hour", "h", "hour of day (KST) of the slot asked about, floored to its 3-h slot (0, 3, ..., 21); "
              "moves the slot to that hour of `at`'s day. Omitted: the slot holding `at`", 18, 0, 23, "int"),
    Condition("weekday", "day", "0 = Monday ... 6 = Sunday. Omitted: the slot's weekday", 4, 0, 6, "int"),
    Condition("holiday", "", "a Korean public holiday. Omitted: the slot's day looked up", False, kind="bool"),
    Condition("rain_3h_mm", "mm", "rain in the 3 h before the slot. Omitted: observed at the cell's nearest "
              "station", 12.0, 0.0, 300.0),
    Condition("snow_cm", "cm", "snow depth on the ground. Omitted: observed at the nearest ASOS station",
              0.0, *LIMITS["snow_cm"].bounds),
    Condition("temp_c", "degrees C", "air temperature at the slot start. Omitted: observed", 2.0, *LIMITS["temp_c"].bounds),
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
        observed = read_observed(src, pos, np.full(len(cells), ts.time_ns([min(slot, at)])[0]), notes)
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
    align=lambda hour: pd.Timestamp(hour).floor("3h"),
    scenarios=(("Friday evening rain", {"weekday": 4, "hour": 18, "rain_3h_mm": 15, "temp_c": 14, "holiday": False,
                                         "freezing": False}),),
)

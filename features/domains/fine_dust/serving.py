"""Fine dust's serving adapters: the API's conditions, requests per cell, and answers with hourly values.

An answer per cell: the grade index of the target day (value), the pollutant deciding it (cause) and in
``details`` both daily means, the grade, the station, the forecast weather used, and ``hourly``: every hour
from the issue time to the end of the target day with PM10, PM2.5, the grade of the hour's levels and the
probability of each advisory (:mod:`features.domains.fine_dust.hourly`). Without a weather forecast in the request the
answer's ``notes`` and ``details.basis`` say it is persistence-grade.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import serving_adapters as sa
from features import spatial
from features import timeseries as ts
from features.domains.fine_dust import forecast as fc
from features.domains.fine_dust import hourly
from features.domains.fine_dust.grades import ISSUE_HOUR, POLLUTANTS, grade, grade_index, grade_name
from features.errors import DataError
from features.registry import Condition, Levels, Serving

MAX_HOURLY_H = 48  # hourly values are given when the target day ends within this many hours of the issue

SERVING_CONDITIONS = (
    Condition("target_date", "date (KST)", "the forecast day. Omitted: the day after `at`. The forecast uses "
              "observations up to 17:00 the day before (or up to `at` when that is earlier, e.g. for days "
              "further ahead)", "2024-01-01", kind="date"),
    *(Condition(name, unit, f"{text}, " + ("(details.forecast.upwind.grid). Omitted: persistence of the last 24 h "
                "of observed wind there" if name in fc.UPWIND else "at the station's forecast grid point "
                "(details.forecast.grid). Omitted: persistence of the last 24 h of observed weather")
                + " (a persistence-grade answer)", example, low, high, text=fc.pcp_mm if name == "fcst_pcp" else None)
      for (name, (_, unit, text, low, high)), example in zip(fc.FIELDS.items(), (3.5, 270.0, 0.0, 60.0, 12.0, 6.0, 280.0),
                                                               strict=True)),
)
_CONDITION_NAMES = tuple(c.name for c in SERVING_CONDITIONS)


def _city_stations(src) -> pd.DataFrame:
    def build() -> pd.DataFrame:
        rows = [(s.code, s.name, s.lat, s.lon) for s in src.city.air_stations if not s.background]
        frame = pd.DataFrame(rows, columns=["station_code", "name", "lat", "lon"])
        frame["nx"], frame["ny"] = fc.grid_point(frame["lat"].to_numpy(float), frame["lon"].to_numpy(float))
        return frame
    return ts.memo(src, "fine_dust.city_stations", build)


def _upwind_grid(src) -> dict | None:
    """The upwind weather station (name) and its KMA short-range forecast grid point, None if the city has none."""
    station = next((s for s in src.city.weather_stations if s.upwind), None)
    if station is None:
        return None
    nx, ny = fc.grid_point(station.lat, station.lon)
    return {"station": station.name, "grid": {"nx": int(nx), "ny": int(ny)}}


def _stats(src) -> dict:
    return ts.memo(src, "fine_dust.hourly_stats", lambda: hourly.station_stats(src["airkorea"]))


def serving_requests(src, cells: pd.DataFrame, at, conditions: dict | None = None) -> pd.DataFrame:
    """Two requests per cell (PM10, PM2.5) at the cell's nearest city air station (never the background
    one), for ``target_date`` (default: the day after ``at``), issued at 17:00 the day before it or at
    ``at`` if that is earlier, with the forecast conditions given (NaN: persistence) and the station's
    hourly statistics for the answer's hours."""
    conds = sa.given(conditions, _CONDITION_NAMES)
    at = pd.Timestamp(at)
    target = pd.Timestamp(conds["target_date"]).normalize() if "target_date" in conds else \
        at.normalize() + pd.Timedelta(days=1)
    issue = min(target - pd.Timedelta(days=1) + pd.Timedelta(hours=ISSUE_HOUR), at)
    stations = _city_stations(src)
    if stations.empty:
        raise DataError(f"{src.city.name} has no (non-background) air station to forecast for")
    nearest = spatial.nearest(cells["lat"].to_numpy(float), cells["lon"].to_numpy(float),
                              stations["lat"].to_numpy(), stations["lon"].to_numpy())
    n = len(cells)
    codes = np.repeat(stations["station_code"].to_numpy()[nearest], 2)
    pollutant = np.tile(np.arange(len(POLLUTANTS), dtype=np.int64), n)
    stats = _stats(src)
    given = [name for name in fc.NAMES if name in conds]
    out = pd.DataFrame({
        "station_code": codes, "pollutant": pollutant,
        "time": np.full(2 * n, issue.as_unit("ns").to_datetime64()),
        "target_date": np.full(2 * n, target.as_unit("ns").to_datetime64()),
        **{name: np.full(2 * n, float(conds[name]) if name in conds else np.nan) for name in fc.NAMES},
        "cell_id": np.repeat(cells["cell_id"].to_numpy(), 2),
        "station_name": np.repeat(stations["name"].to_numpy()[nearest], 2),
        "grid_nx": np.repeat(stations["nx"].to_numpy()[nearest], 2),
        "grid_ny": np.repeat(stations["ny"].to_numpy()[nearest], 2),
        "forecast_given": np.full(2 * n, ",".join(given), dtype=object),
    })
    out["upwind_grid"] = sa.objects([_upwind_grid(src)] * len(out))
    out["hourly_stats"] = sa.objects([stats.get((int(c), int(p)), hourly.Stats.neutral())
                                      for c, p in zip(codes, pollutant, strict=True)])
    return out


def _hours(rows: pd.DataFrame, pm: np.ndarray, first: np.ndarray) -> list[dict | None]:
    """Hourly values and advisory probabilities of each cell's station (computed once per station)."""
    issue = pd.Timestamp(rows["time"].iloc[0])
    target = pd.Timestamp(rows["target_date"].iloc[0])
    if target + pd.Timedelta(days=1) - issue > pd.Timedelta(hours=MAX_HOURLY_H) or target <= issue.normalize():
        return [None] * len(first)
    skill = hourly.SKILL["forecast" if rows["forecast_given"].iloc[0] else "persistence"]
    by_station: dict[int, dict | None] = {}
    out = []
    for cell, r in enumerate(first):
        code = int(rows["station_code"].iloc[r])
        if code not in by_station:
            frames = {}
            for k, p in enumerate(POLLUTANTS):
                i = r + k  # the cell's rows are PM10 then PM2.5
                daily = pm[cell, k]
                if not np.isfinite(daily):
                    continue
                frames[p] = hourly.forecast(issue, target, daily, float(rows["own_today_mean"].iloc[i]),
                                            float(rows["own_last_hour"].iloc[i]), rows["hourly_stats"].iloc[i],
                                            skill, seed=code * 2 + k)
            by_station[code] = _hour_records(frames) if frames else None
        out.append(by_station[code])
    return out


def _hour_records(frames: dict[str, pd.DataFrame]) -> dict:
    base = next(iter(frames.values()))
    values = {p: frames[p]["value"].to_numpy() if p in frames else np.full(len(base), np.nan) for p in POLLUTANTS}
    probs = hourly.advisory_probabilities(frames)
    grades = grade_name(grade(values["pm10"], values["pm25"])).tolist()
    hours = [{"time": t.isoformat(), "lead_h": int(lead), **pms, "grade": g, "advisory_probability": pr,
              "advisory": hourly.likely_advisory(pr)}
             for t, lead, pms, g, pr in zip(base["time"], base["lead_h"], sa.records(values, digits=1), grades,
                                            probs, strict=True)]
    target_hours = hours[-24:]
    day_max = {name: max((h["advisory_probability"][name] or 0.0) for h in target_hours)
               for name, _, _ in hourly.ADVISORIES}
    return {"hours": hours, "target_day_advisory_probability": day_max}


def _notes(given: str) -> list[str] | None:
    if len(given.split(",")) == len(fc.NAMES):
        return None
    if not given:
        return ["persistence-grade: no forecast of the target day's weather was given, so the last 24 h of "
                f"observed weather stand in for it (give {', '.join(fc.LOCAL)} from KMA's short-range forecast "
                f"at the grid point in details.forecast.grid, and {', '.join(fc.UPWIND)} at the upwind "
                "station's grid point in details.forecast.upwind.grid)"]
    missing = [n for n in fc.NAMES if n not in given.split(",")]
    return [f"partly persistence-grade: {', '.join(missing)} not given, the last 24 h of observed weather "
            "stand in for them"]


def serving_combine(rows: pd.DataFrame, pred) -> pd.DataFrame:
    """Per cell: the grade index of the predicted PM10 and PM2.5 (value), the pollutant deciding the
    grade (cause), and details: both daily means, the grade, station, forecast weather and hours."""
    codes, cell_ids = pd.factorize(rows["cell_id"])
    pm = np.full((len(cell_ids), len(POLLUTANTS)), np.nan)
    pm[codes, rows["pollutant"].to_numpy(dtype=np.int64)] = np.clip(np.asarray(pred, dtype=float), 0, None)
    pm10, pm25 = pm[:, 0], pm[:, 1]
    value = grade_index(pm10, pm25)
    deciding = np.where(np.nan_to_num(grade_index(np.nan, pm25), nan=-1) > np.nan_to_num(
        grade_index(pm10, np.nan), nan=-1), "pm25", "pm10")
    grades = grade(pm10, pm25)
    first = np.full(len(cell_ids), 0)
    first[codes[::-1]] = np.arange(len(codes))[::-1]  # each cell's first row
    head = rows.iloc[first]
    given = head["forecast_given"].tolist() if "forecast_given" in rows else [""] * len(first)
    hours = _hours(rows, pm, first) if "hourly_stats" in rows else [None] * len(first)
    weather = sa.records({"wsd": head["fc_wind_speed_ms"].to_numpy(float),
                          "vec": fc.direction_of(head["fc_wind_u_ms"], head["fc_wind_v_ms"]),
                          "pcp": head["fc_rain_mm"].to_numpy(float), "reh": head["fc_humidity_pct"].to_numpy(float),
                          "tmp": head["fc_temp_c"].to_numpy(float)}, digits=1)
    up_u, up_v = head["fc_upwind_wind_u_ms"].to_numpy(float), head["fc_upwind_wind_v_ms"].to_numpy(float)
    upwind = sa.records({"wsd": np.hypot(up_u, up_v), "vec": fc.direction_of(up_u, up_v)}, digits=1)
    days = pd.DatetimeIndex(head["target_date"].to_numpy()).strftime("%Y-%m-%d").tolist()
    details = []
    up_grid = head["upwind_grid"].iloc[0] if "upwind_grid" in head else None
    for i, (pms, ko, en, wx, up, day, g, h) in enumerate(zip(
            sa.records({"pm10": pm10, "pm25": pm25}, digits=1), grade_name(grades).tolist(),
            grade_name(grades, korean=False).tolist(), weather, upwind, days, given, hours, strict=True)):
        grid = {"nx": int(head["grid_nx"].iloc[i]), "ny": int(head["grid_ny"].iloc[i])} if "grid_nx" in head else None
        details.append({
            **pms, "grade": ko, "grade_en": en,
            "station": head["station_name"].iloc[i] if "station_name" in head else None,
            "station_code": int(head["station_code"].iloc[i]), "target_date": day,
            "basis": "forecast" if len(g.split(",")) == len(fc.NAMES) else "persistence" if not g else "partial",
            "forecast": {**wx, "given": [n for n in g.split(",") if n], "grid": grid,
                         "upwind": {**up, **(up_grid or {"station": None, "grid": None})}},
            "hourly": h["hours"] if h else None,
            "advisory_probability": h["target_day_advisory_probability"] if h else None,
        })
    return sa.per_cell(pd.DataFrame({"cell_id": np.asarray(cell_ids)}), value, deciding.astype(object), details,
                       [_notes(g) for g in given])


def serving_now(src) -> pd.Timestamp:
    """17:00 of the last day whose air quality and weather reach 17:00 (the national forecast's hour)."""
    def latest() -> pd.Timestamp:
        last = min(sa.last_time(src["airkorea"], "time", POLLUTANTS), sa.last_time(src["asos"]))
        return issue_time(last)
    return ts.memo(src, "fine_dust.now", latest)


def issue_time(hour: pd.Timestamp) -> pd.Timestamp:
    """The last 17:00 issue at or before ``hour`` (the national forecast's hour)."""
    return (pd.Timestamp(hour) - pd.Timedelta(hours=ISSUE_HOUR)).normalize() + pd.Timedelta(hours=ISSUE_HOUR)


def serving_first(src) -> pd.Timestamp:
    """The first time both air quality and weather were observed (nothing to forecast from before)."""
    def earliest() -> pd.Timestamp:
        air, wx = src["airkorea"], src["asos"]
        firsts = [pd.to_datetime(air.loc[air[list(POLLUTANTS)].notna().any(axis=1), "time"]).min(),
                  pd.to_datetime(wx["time"]).min()]
        if any(pd.isna(t) for t in firsts):
            raise DataError("fine_dust: no air-quality or weather observations to serve from")
        return pd.Timestamp(max(firsts))
    return ts.memo(src, "fine_dust.first", earliest)


SERVING = Serving(
    conditions=SERVING_CONDITIONS,
    levels=Levels((0.0, 25.0, 50.0, 75.0, 100.0)),
    value="fine-dust grade index for the target day: the worse of the predicted daily PM10 and PM2.5 "
          "placed on one scale where 25/50/75 are the Korean grade bounds (보통 PM10 31/PM2.5 16, "
          "나쁨 81/36, 매우나쁨 151/76 ug/m3) and 100 the warning level (300/150); the concentrations "
          "(ug/m3), the grade, the hourly values and advisory probabilities are in details",
    unit="grade index (0-100)",
    requests=serving_requests,
    combine=serving_combine,
    now=serving_now,
    first=serving_first,
    align=issue_time,
    scenarios=(("Yellow-dust day", {"target_date": "2023-04-12"}),
               ("Calm, dry day after a hazy one (forecast given)",
                {"fcst_wsd": 1.5, "fcst_vec": 270.0, "fcst_pcp": 0.0, "fcst_reh": 75.0, "fcst_tmp": 8.0,
                 "fcst_upwind_wsd": 6.0, "fcst_upwind_vec": 280.0})),
)

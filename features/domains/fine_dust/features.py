"""Fine dust: the feature rows, one code path for the training table and for a request."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from features import timeseries as ts
from features.domains.fine_dust import forecast as fc
from features.domains.fine_dust.grades import ISSUE_HOUR, POLLUTANTS
from features.domains.fine_dust.windows import Windows as _Windows
from features.timeseries import HOUR, hourly_wide

MIN_HOURS = 18  # valid hours for a daily mean to count (AirKorea's 75% rule)
_DAY_NS = 24 * ts.HOUR_NS
CITY_KEY = 0  # pseudo station holding the hourly mean over the city's (non-background) stations

STATION_WINDOWS = tuple(f"{p}_{w}" for w in ("today_mean", "yesterday_mean", "mean_72h", "last_hour") for p in POLLUTANTS)
BACKGROUND_WINDOWS = tuple(f"bg_{p}_{w}" for w in ("today_mean", "yesterday_mean") for p in POLLUTANTS)
#: Target-day weather from the forecast conditions (persistence of the last 24 h where not given).
FORECAST = ("fc_wind_speed_ms", "fc_wind_u_ms", "fc_wind_v_ms", "fc_rain_mm", "fc_humidity_pct", "fc_temp_c",
            "fc_upwind_wind_u_ms", "fc_upwind_wind_v_ms", "fc_westerly_transport")
_WEATHER = ("wx_wind_u_ms", "wx_wind_v_ms", "wx_wind_speed_ms", "wx_humidity_pct", "wx_rain_mm",
            "upwind_wind_u_ms", "upwind_wind_v_ms")
# Observation features: a what-if request may override any of them (e.g. today's observed means).
OBSERVED = (*STATION_WINDOWS, "pm10_today_max", *BACKGROUND_WINDOWS, "city_pm10_today_mean", "city_pm25_today_mean",
            *_WEATHER)
FEATURES = ("pollutant", "own_today_mean", "own_yesterday_mean", "own_mean_72h", "own_last_hour", *OBSERVED,
            "westerly_transport", *FORECAST, "doy_sin", "doy_cos")
CONDITIONS = ("target_date", *fc.NAMES)

UNITS = {"target_date": "date (KST) of the forecast day", "pm_next": "ug/m3", "pm10": "ug/m3",
         "pm25": "ug/m3", "pollutant": "0 = PM10, 1 = PM2.5", **{k: v[1] for k, v in fc.FIELDS.items()}}

def _air_windows(air: pd.DataFrame, background: list[int]) -> dict[str, _Windows]:
    """Day-aligned hourly windows of PM10 and PM2.5 per station, plus the city pseudo-station."""
    air = air[["station_code", "time", *POLLUTANTS]].copy()
    air["time"] = pd.to_datetime(air["time"])
    city = air[~air["station_code"].isin(background)].groupby("time", as_index=False)[list(POLLUTANTS)].mean()
    air = pd.concat([air, city.assign(station_code=CITY_KEY)], ignore_index=True)
    first = (air["time"].min() - HOUR).normalize()
    last = (air["time"].max() - HOUR).normalize()
    return {p: _Windows(hourly_wide(air, p, key="station_code", start=first + HOUR, end=last + timedelta(days=1)))
            for p in POLLUTANTS}


def _weather_windows(asos: pd.DataFrame) -> dict[str, _Windows]:
    """Hourly windows of wind components, speed, humidity, rain and temperature per ASOS station."""
    w = asos[["station_id", "time", "wind_ms", "wind_dir_deg", "humidity_pct", "rain_mm", "temp_c"]].copy()
    rad = np.radians(w["wind_dir_deg"].to_numpy(dtype=float))
    speed = w["wind_ms"].to_numpy(dtype=float)
    # Meteorological direction is where the wind comes FROM; u > 0 blows eastward (a westerly).
    w["u"] = np.where(speed == 0, 0.0, -speed * np.sin(rad))
    w["v"] = np.where(speed == 0, 0.0, -speed * np.cos(rad))
    return {c: _Windows(hourly_wide(w, c, key="station_id"))
            for c in ("u", "v", "wind_ms", "humidity_pct", "rain_mm", "temp_c")}


def _stations(city) -> tuple[list[int], int | None, int | None]:
    """Background air stations, the city's ASOS station and the upwind ASOS station."""
    background = [s.code for s in city.air_stations if s.background]
    asos = [s for s in city.weather_stations if s.kind == "asos"]
    local = next((s.id for s in asos if not s.upwind), None)
    upwind = next((s.id for s in asos if s.upwind), None)
    return background, local, upwind


def _request_times(req: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(issue time, target date) as int64 ns. The issue time defaults to 17:00 the day before the target
    date; a request with only a time targets the next day. A given time is kept: it is the data cut-off."""
    given = ts.time_ns(req["time"]) if "time" in req.columns else None
    target = _normalize(ts.time_ns(req["target_date"]) if "target_date" in req.columns else given)
    if "target_date" not in req.columns:
        target = np.where(target == ts.NAT_NS, ts.NAT_NS, target + _DAY_NS)
    issue = np.where(target == ts.NAT_NS, ts.NAT_NS, target - _DAY_NS + ISSUE_HOUR * ts.HOUR_NS)
    if given is not None:
        issue = np.where(given != ts.NAT_NS, given, issue)
    return issue, target


def _normalize(t_ns: np.ndarray) -> np.ndarray:
    """Midnight of each time (int64 ns; NaT stays NaT)."""
    return np.where(t_ns == ts.NAT_NS, ts.NAT_NS, t_ns - t_ns % _DAY_NS)


def _windows(src) -> tuple[dict[str, _Windows], dict[str, _Windows]]:
    """Air and weather windows of the held observations (built once per Sources)."""
    def build():
        background, _, _ = _stations(src.city)
        return _air_windows(src["airkorea"], background), _weather_windows(src["asos"])
    return ts.memo(src, "fine_dust.windows", build)


def build_rows(src, requests: pd.DataFrame) -> pd.DataFrame:
    """Features for (station_code, pollutant, target_date[, time]) requests.

    The issue time defaults to 17:00 the day before ``target_date``; observations after it are never
    read. Columns named like an observation feature (see :data:`OBSERVED`) override the observed value.
    The target day's forecast weather comes from the request's ``fcst_*`` columns (KMA units, see
    :data:`features.domains.fine_dust.forecast.FIELDS`); a column absent or NaN is forecast by persistence, the mean (rain:
    the total) of the 24 observed hours before the issue time. Other request columns pass through, after
    the keys and times.
    """
    req = requests
    issue_ns, target_ns = _request_times(req)
    issue, target = (pd.DatetimeIndex(t.view("datetime64[ns]")) for t in (issue_ns, target_ns))
    background, local, upwind = _stations(src.city)
    air, wx = _windows(src)

    today = _normalize(issue_ns)
    yesterday = np.where(issue_ns == ts.NAT_NS, ts.NAT_NS, today - _DAY_NS)
    before_72h = np.where(issue_ns == ts.NAT_NS, ts.NAT_NS, issue_ns - 72 * ts.HOUR_NS)
    before_1h = np.where(issue_ns == ts.NAT_NS, ts.NAT_NS, issue_ns - ts.HOUR_NS)
    station = req["station_code"].to_numpy(dtype=np.int64)
    n = len(req)
    f: dict[str, np.ndarray] = {}
    for p, win in air.items():
        own, bg, city = win.col(station), win.col(background[0] if background else -1), win.col(CITY_KEY)
        f[f"{p}_today_mean"] = win.mean(own, today, issue_ns)
        f[f"{p}_yesterday_mean"] = win.mean(own, yesterday, today)
        f[f"{p}_mean_72h"] = win.mean(own, before_72h, issue_ns)
        f[f"{p}_last_hour"] = win.mean(own, before_1h, issue_ns)
        f[f"bg_{p}_today_mean"] = win.mean(bg, today, issue_ns)
        f[f"bg_{p}_yesterday_mean"] = win.mean(bg, yesterday, today)
        f[f"city_{p}_today_mean"] = win.mean(city, today, issue_ns)
    f["pm10_today_max"] = air["pm10"].max_today(air["pm10"].col(station), issue_ns)
    at_local, at_upwind = wx["u"].col(local if local else -1), wx["u"].col(upwind if upwind else -1)
    f["wx_wind_u_ms"] = wx["u"].mean(at_local, today, issue_ns)
    f["wx_wind_v_ms"] = wx["v"].mean(at_local, today, issue_ns)
    f["wx_wind_speed_ms"] = wx["wind_ms"].mean(at_local, today, issue_ns)
    f["wx_humidity_pct"] = wx["humidity_pct"].mean(at_local, today, issue_ns)
    f["wx_rain_mm"] = wx["rain_mm"].total(at_local, today, issue_ns)
    f["upwind_wind_u_ms"] = wx["u"].mean(at_upwind, today, issue_ns)
    f["upwind_wind_v_ms"] = wx["v"].mean(at_upwind, today, issue_ns)
    for c in OBSERVED:
        f[c] = np.broadcast_to(f[c], (n,)).astype(float)
        if c in req.columns:  # what-if overrides
            given = pd.to_numeric(req[c], errors="coerce").to_numpy(dtype=float)
            f[c] = np.where(np.isnan(given), f[c], given)

    pollutant = req["pollutant"].to_numpy(dtype=np.int64)
    is_pm10 = pollutant == POLLUTANTS.index("pm10")
    for w in ("today_mean", "yesterday_mean", "mean_72h", "last_hour"):
        f[f"own_{w}"] = np.where(is_pm10, f[f"pm10_{w}"], f[f"pm25_{w}"])
    # Dust reaching Baengnyeong-do arrives in Incheon roughly a day later on westerly winds.
    f["westerly_transport"] = f["bg_pm10_today_mean"] * np.maximum(0.0, f["upwind_wind_u_ms"])
    f.update(_forecast_features(req, wx, at_local, at_upwind, issue_ns, f["bg_pm10_today_mean"]))
    angle = 2 * np.pi * target.day_of_year.to_numpy() / 365.25
    f["doy_sin"], f["doy_cos"] = np.sin(angle), np.cos(angle)

    out = {"station_code": station, "pollutant": pollutant, "time": issue, "target_date": target}
    out.update({c: req[c].array for c in req.columns if c not in out and c not in FEATURES})
    out.update({c: f[c] for c in FEATURES if c != "pollutant"})
    return pd.DataFrame(out, index=pd.RangeIndex(n))


def _forecast_features(req: pd.DataFrame, wx: dict[str, _Windows], col, upwind_col, issue_ns, bg_pm10) -> dict:
    """The ``fc_*`` features from the request's forecast (KMA units), persistence where not given."""
    lo = np.where(issue_ns == ts.NAT_NS, ts.NAT_NS, issue_ns - 24 * ts.HOUR_NS)
    persisted = {**_day_weather(wx, col, lo, issue_ns),
                 **_day_weather(wx, upwind_col, lo, issue_ns, names=fc.UPWIND)}
    n = len(req)
    got = {}
    for name in fc.NAMES:
        given = pd.to_numeric(req[name], errors="coerce").to_numpy(float) if name in req.columns else np.full(n, np.nan)
        got[name] = np.where(np.isnan(given), np.broadcast_to(persisted[name], (n,)), given)
    fu, fv = fc.wind_components(got["fcst_wsd"], got["fcst_vec"])
    up_u, up_v = fc.wind_components(got["fcst_upwind_wsd"], got["fcst_upwind_vec"])
    return {"fc_wind_speed_ms": got["fcst_wsd"], "fc_wind_u_ms": fu, "fc_wind_v_ms": fv,
            "fc_rain_mm": got["fcst_pcp"], "fc_humidity_pct": got["fcst_reh"], "fc_temp_c": got["fcst_tmp"],
            "fc_upwind_wind_u_ms": up_u, "fc_upwind_wind_v_ms": up_v,
            # Upwind dust of today reaches the city tomorrow on tomorrow's westerly flow there: a flux.
            "fc_westerly_transport": bg_pm10 * np.maximum(0.0, up_u)}


def _day_weather(wx: dict[str, _Windows], col, lo, hi, names=fc.LOCAL) -> dict[str, np.ndarray]:
    """Weather over ``(lo, hi]`` at column ``col`` in forecast terms (KMA units) under ``names``: mean wind
    speed, vector-mean direction, total rain, mean humidity and temperature (the first two for the upwind
    names)."""
    u, v = wx["u"].mean(col, lo, hi), wx["v"].mean(col, lo, hi)
    values = (wx["wind_ms"].mean(col, lo, hi), fc.direction_of(u, v), wx["rain_mm"].total(col, lo, hi),
              wx["humidity_pct"].mean(col, lo, hi), wx["temp_c"].mean(col, lo, hi))
    return dict(zip(names, values[:len(names)], strict=True))


def observed_weather(src, target_ns: np.ndarray) -> pd.DataFrame:
    """The target days' observed weather at the city's ASOS station (and the wind at the upwind one) in
    forecast terms (KMA units): what a perfect short-range forecast would have said. Training only: it
    reads the future it stands in for."""
    _, local, upwind = _stations(src.city)
    _, wx = _windows(src)
    lo, hi = target_ns, np.where(target_ns == ts.NAT_NS, ts.NAT_NS, target_ns + _DAY_NS)
    return pd.DataFrame({**_day_weather(wx, wx["u"].col(local if local else -1), lo, hi),
                         **_day_weather(wx, wx["u"].col(upwind if upwind else -1), lo, hi, names=fc.UPWIND)})


def daily_means(air: pd.DataFrame) -> pd.DataFrame:
    """Daily mean per station, day and pollutant (NaN with fewer than 18 valid hours); long format."""
    a = air[["station_code", "time", *POLLUTANTS]].copy()
    a["date"] = (pd.to_datetime(a["time"]) - HOUR).dt.normalize()  # hour 24 closes the day
    g = a.groupby(["station_code", "date"])
    means = g[list(POLLUTANTS)].mean().where(g[list(POLLUTANTS)].count() >= MIN_HOURS)
    long = means.rename(columns={p: i for i, p in enumerate(POLLUTANTS)}).stack(future_stack=True)
    return long.rename("value").rename_axis(["station_code", "date", "pollutant"]).reset_index()


def build_table(src) -> pd.DataFrame:
    """One row per (non-background) station x pollutant x issue day with a valid next-day mean; the target
    day's forecast is its observed weather with a forecast error drawn per day (:func:`fc.degrade`)."""
    background, _, _ = _stations(src.city)
    daily = daily_means(src["airkorea"])
    # Skip the first day: its issue day lies before the data, so it would have no features at all.
    daily = daily[~daily["station_code"].isin(background) & daily["value"].notna()
                  & (daily["date"] > daily["date"].min())]
    requests = pd.DataFrame({"station_code": daily["station_code"].to_numpy(),
                             "pollutant": daily["pollutant"].to_numpy(dtype=np.int64),
                             "target_date": daily["date"].to_numpy()})
    target_ns = ts.time_ns(requests["target_date"])
    forecast = fc.degrade(observed_weather(src, target_ns), target_ns)
    requests = pd.concat([requests, forecast.round(1)], axis=1)
    table = build_rows(src, requests)
    table["pm_next"] = daily["value"].to_numpy(dtype=float)
    return table.sort_values(["time", "station_code", "pollutant"], ignore_index=True)

"""Fine dust domain: tomorrow's daily mean PM10 and PM2.5 at each station, with the Korean grades.

Long format: one row per station x pollutant (0 = PM10, 1 = PM2.5) x issue day, so one model serves
both pollutants. The issue time is 17:00 KST of day d, the national forecast's issue hour; the target is
the daily mean of day d+1 (needs >= 18 valid hours). Features use observations stamped <= the issue time
only: the station's own levels, the upwind background station (백령도), the city mean and the weather.
The background station is a feature, never a target row.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from features.metrics import MAE, RMSE, Metric
from features.registry import DomainSpec, register
from features.timeseries import HOUR, hourly_wide

POLLUTANTS = ("pm10", "pm25")  # the int feature ``pollutant`` indexes this
ISSUE_HOUR = 17
MIN_HOURS = 18  # valid hours for a daily mean to count (AirKorea's 75% rule)
CITY_KEY = 0  # pseudo station holding the hourly mean over the city's (non-background) stations

_STATION = tuple(f"{p}_{w}" for w in ("today_mean", "yesterday_mean", "mean_72h") for p in POLLUTANTS)
_BACKGROUND = tuple(f"bg_{p}_{w}" for w in ("today_mean", "yesterday_mean") for p in POLLUTANTS)
_WEATHER = ("wx_wind_u_ms", "wx_wind_v_ms", "wx_wind_speed_ms", "wx_humidity_pct", "wx_rain_mm",
            "upwind_wind_u_ms", "upwind_wind_v_ms")
# Observation features: a what-if request may override any of them (e.g. today's observed means).
OBSERVED = (*_STATION, "pm10_today_max", *_BACKGROUND, "city_pm10_today_mean", "city_pm25_today_mean",
            *_WEATHER)
FEATURES = ("pollutant", "own_today_mean", "own_yesterday_mean", "own_mean_72h", *OBSERVED,
            "westerly_transport", "doy_sin", "doy_cos")
CONDITIONS = ("target_date",)

# --- Korean grades (DESIGN.md section 2) ---------------------------------------------------------

GRADES = ("good", "moderate", "bad", "very_bad")
GRADE_NAMES_KO = ("좋음", "보통", "나쁨", "매우나쁨")
UPPER_BOUNDS = {"pm10": (30, 80, 150), "pm25": (15, 35, 75)}  # top of good, moderate, bad (ug/m3)
UNITS = {"target_date": "date (KST) of the forecast day", "pm_next": "ug/m3", "pm10": "ug/m3",
         "pm25": "ug/m3", "pollutant": "0 = PM10, 1 = PM2.5"}


def pollutant_grade(values, pollutant: str) -> np.ndarray:
    """Grade index 0-3 of daily means of one pollutant, -1 where unknown.

    Means are rounded to whole ug/m3 first, as published, so PM10 30.4 is good and 30.6 is moderate.
    """
    v = np.floor(np.asarray(values, dtype=float) + 0.5)
    out = np.searchsorted(np.asarray(UPPER_BOUNDS[pollutant]), v, side="left")
    return np.where(np.isnan(v), -1, out)


def grade(pm10, pm25) -> np.ndarray:
    """The reported grade (0 good .. 3 very bad): the worse of the PM10 and PM2.5 grades; -1 if both unknown."""
    return np.maximum(pollutant_grade(pm10, "pm10"), pollutant_grade(pm25, "pm25"))


def grade_name(grades, korean: bool = True) -> np.ndarray:
    """Names of grade indices (좋음/보통/나쁨/매우나쁨 or good/...); None for -1."""
    names = np.array([*(GRADE_NAMES_KO if korean else GRADES), None], dtype=object)
    return names[np.asarray(grades, dtype=int)]  # -1 picks the trailing None


# --- Hourly windows ------------------------------------------------------------------------------


class _Windows:
    """Prefix sums over a dense hourly wide frame: mean or sum over any ``(start, end]`` in O(1).

    ``day_max`` is the running maximum within each day (hours stamped 01:00 .. 24:00), available when
    the frame starts at 01:00 and holds whole days.
    """

    def __init__(self, wide: pd.DataFrame):
        self.index, self.columns = wide.index, wide.columns
        values = wide.to_numpy(dtype=float)
        zero = np.zeros((1, values.shape[1]))
        self.sum = np.vstack([zero, np.nancumsum(values, axis=0)])
        self.count = np.vstack([zero, np.cumsum(~np.isnan(values), axis=0)])
        if len(values) and len(values) % 24 == 0 and self.index[0].hour == 1:
            days = values.reshape(-1, 24, values.shape[1])
            self.day_max = np.fmax.accumulate(days, axis=1).reshape(values.shape)
        else:
            self.day_max = np.full(values.shape, np.nan)

    def _rows(self, times) -> np.ndarray:
        """Number of hourly rows stamped at or before each time."""
        return self.index.searchsorted(pd.DatetimeIndex(times).as_unit(self.index.unit), side="right")

    def _stat(self, keys, start, end, how: str) -> np.ndarray:
        col = self.columns.get_indexer(np.asarray(keys))
        c = np.clip(col, 0, None)
        lo, hi = self._rows(start), self._rows(end)
        total = self.sum[hi, c] - self.sum[lo, c]
        count = self.count[hi, c] - self.count[lo, c]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = total / count if how == "mean" else total
        return np.where((col >= 0) & (count > 0), out, np.nan)

    def mean(self, keys, start, end) -> np.ndarray:
        return self._stat(keys, start, end, "mean")

    def total(self, keys, start, end) -> np.ndarray:
        return self._stat(keys, start, end, "sum")

    def max_today(self, keys, t) -> np.ndarray:
        """Maximum hourly value over ``(midnight, t]`` of t's day."""
        col = self.columns.get_indexer(np.asarray(keys))
        row = self._rows(t) - 1
        t = pd.DatetimeIndex(t)
        same_day = (row >= 0) & ((self.index[np.clip(row, 0, None)] - HOUR).normalize() == t.normalize())
        out = self.day_max[np.clip(row, 0, None), np.clip(col, 0, None)]
        return np.where(same_day & (col >= 0) & (t > t.normalize()), out, np.nan)


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
    """Hourly windows of wind components, speed, humidity and rain per ASOS station."""
    w = asos[["station_id", "time", "wind_ms", "wind_dir_deg", "humidity_pct", "rain_mm"]].copy()
    rad = np.radians(w["wind_dir_deg"].to_numpy(dtype=float))
    speed = w["wind_ms"].to_numpy(dtype=float)
    # Meteorological direction is where the wind comes FROM; u > 0 blows eastward (a westerly).
    w["u"] = np.where(speed == 0, 0.0, -speed * np.sin(rad))
    w["v"] = np.where(speed == 0, 0.0, -speed * np.cos(rad))
    return {c: _Windows(hourly_wide(w, c, key="station_id"))
            for c in ("u", "v", "wind_ms", "humidity_pct", "rain_mm")}


def _stations(city) -> tuple[list[int], int | None, int | None]:
    """Background air stations, the city's ASOS station and the upwind ASOS station."""
    background = [s.code for s in city.air_stations if s.background]
    asos = [s for s in city.weather_stations if s.kind == "asos"]
    local = next((s.id for s in asos if not s.upwind), None)
    upwind = next((s.id for s in asos if s.upwind), None)
    return background, local, upwind


def _request_times(req: pd.DataFrame) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    """(issue time, target date). The issue time defaults to 17:00 the day before the target date; a
    request with only a time targets the next day. A given time is kept: it is the data cut-off."""
    day = pd.Timedelta(days=1)
    given = pd.DatetimeIndex(pd.to_datetime(req["time"])) if "time" in req.columns else None
    if "target_date" in req.columns:
        target = pd.DatetimeIndex(pd.to_datetime(req["target_date"])).normalize()
    else:
        target = given.normalize() + day
    issue = target - day + pd.Timedelta(hours=ISSUE_HOUR)
    if given is not None:
        issue = given.where(given.notna(), issue)
    return issue, target


def build_rows(src, requests: pd.DataFrame) -> pd.DataFrame:
    """Features for (station_code, pollutant, target_date[, time]) requests.

    The issue time defaults to 17:00 the day before ``target_date``; observations after it are never
    read. Columns named like an observation feature (see :data:`OBSERVED`) override the observed value.
    """
    req = requests.reset_index(drop=True)
    issue, target = _request_times(req)
    background, local, upwind = _stations(src.city)
    air = _air_windows(src["airkorea"], background)
    wx = _weather_windows(src["asos"])

    today, yesterday = issue.normalize(), issue.normalize() - pd.Timedelta(days=1)
    station = req["station_code"].to_numpy(dtype=np.int64)
    n = len(req)
    bg = np.full(n, background[0] if background else -1)
    f: dict[str, np.ndarray] = {}
    for p, win in air.items():
        f[f"{p}_today_mean"] = win.mean(station, today, issue)
        f[f"{p}_yesterday_mean"] = win.mean(station, yesterday, today)
        f[f"{p}_mean_72h"] = win.mean(station, issue - pd.Timedelta(hours=72), issue)
        f[f"bg_{p}_today_mean"] = win.mean(bg, today, issue)
        f[f"bg_{p}_yesterday_mean"] = win.mean(bg, yesterday, today)
        f[f"city_{p}_today_mean"] = win.mean(np.full(n, CITY_KEY), today, issue)
    f["pm10_today_max"] = air["pm10"].max_today(station, issue)
    at_local, at_upwind = np.full(n, local if local else -1), np.full(n, upwind if upwind else -1)
    f["wx_wind_u_ms"] = wx["u"].mean(at_local, today, issue)
    f["wx_wind_v_ms"] = wx["v"].mean(at_local, today, issue)
    f["wx_wind_speed_ms"] = wx["wind_ms"].mean(at_local, today, issue)
    f["wx_humidity_pct"] = wx["humidity_pct"].mean(at_local, today, issue)
    f["wx_rain_mm"] = wx["rain_mm"].total(at_local, today, issue)
    f["upwind_wind_u_ms"] = wx["u"].mean(at_upwind, today, issue)
    f["upwind_wind_v_ms"] = wx["v"].mean(at_upwind, today, issue)

    feats = pd.DataFrame({c: f[c] for c in OBSERVED})
    for c in OBSERVED:  # what-if overrides
        if c in req.columns:
            given = pd.to_numeric(req[c], errors="coerce").to_numpy(dtype=float)
            feats[c] = np.where(np.isnan(given), feats[c].to_numpy(), given)

    pollutant = req["pollutant"].to_numpy(dtype=np.int64)
    is_pm10 = pollutant == POLLUTANTS.index("pm10")
    for w in ("today_mean", "yesterday_mean", "mean_72h"):
        feats[f"own_{w}"] = np.where(is_pm10, feats[f"pm10_{w}"], feats[f"pm25_{w}"])
    # Dust reaching Baengnyeong-do arrives in Incheon roughly a day later on westerly winds.
    feats["westerly_transport"] = feats["bg_pm10_today_mean"] * np.maximum(0.0, feats["upwind_wind_u_ms"])
    angle = 2 * np.pi * target.day_of_year.to_numpy() / 365.25
    feats["doy_sin"], feats["doy_cos"] = np.sin(angle), np.cos(angle)
    feats["pollutant"] = pollutant

    head = pd.DataFrame({"station_code": station, "pollutant": pollutant, "time": issue, "target_date": target})
    rest = req[[c for c in req.columns if c not in (*head.columns, *FEATURES)]]
    return pd.concat([head, rest, feats[[c for c in FEATURES if c != "pollutant"]]], axis=1)


def daily_means(air: pd.DataFrame) -> pd.DataFrame:
    """Daily mean per station, day and pollutant (NaN with fewer than 18 valid hours); long format."""
    a = air[["station_code", "time", *POLLUTANTS]].copy()
    a["date"] = (pd.to_datetime(a["time"]) - HOUR).dt.normalize()  # hour 24 closes the day
    g = a.groupby(["station_code", "date"])
    means = g[list(POLLUTANTS)].mean().where(g[list(POLLUTANTS)].count() >= MIN_HOURS)
    long = means.rename(columns={p: i for i, p in enumerate(POLLUTANTS)}).stack(future_stack=True)
    return long.rename("value").rename_axis(["station_code", "date", "pollutant"]).reset_index()


def build_table(src) -> pd.DataFrame:
    """One row per (non-background) station x pollutant x issue day with a valid next-day mean."""
    background, _, _ = _stations(src.city)
    daily = daily_means(src["airkorea"])
    # Skip the first day: its issue day lies before the data, so it would have no features at all.
    daily = daily[~daily["station_code"].isin(background) & daily["value"].notna()
                  & (daily["date"] > daily["date"].min())]
    requests = pd.DataFrame({"station_code": daily["station_code"].to_numpy(),
                             "pollutant": daily["pollutant"].to_numpy(dtype=np.int64),
                             "target_date": daily["date"].to_numpy()})
    table = build_rows(src, requests)
    table["pm_next"] = daily["value"].to_numpy(dtype=float)
    return table.sort_values(["time", "station_code", "pollutant"], ignore_index=True)


# --- evaluation (holdout only; the truth is never a feature) ---

def _station_day_grades(y, pred, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Observed and predicted reported grade (worse of PM10 and PM2.5) per station-day."""
    frame = pd.DataFrame({"station": rows["station_code"].to_numpy(), "time": rows["time"].to_numpy(),
                          "pollutant": rows["pollutant"].to_numpy(), "y": y, "p": pred})
    wide = frame.pivot_table(index=["station", "time"], columns="pollutant", values=["y", "p"]).dropna()
    return grade(wide[("y", 0)], wide[("y", 1)]), grade(wide[("p", 0)], wide[("p", 1)])


def _grade_accuracy(y, pred, w, rows):
    observed, predicted = _station_day_grades(y, pred, rows)
    return float(np.mean(observed == predicted))


def _pod_bad(y, pred, w, rows):
    """Probability of detection of 'bad' or worse days."""
    observed, predicted = _station_day_grades(y, pred, rows)
    events = observed >= 2
    return float(np.mean(predicted[events] >= 2)) if events.any() else float("nan")


def _far_bad(y, pred, w, rows):
    """False-alarm ratio of 'bad' or worse forecasts."""
    observed, predicted = _station_day_grades(y, pred, rows)
    alarms = predicted >= 2
    return float(np.mean(observed[alarms] < 2)) if alarms.any() else float("nan")


GRADE_ACCURACY = Metric("grade_accuracy", _grade_accuracy, True)
POD_BAD = Metric("pod_bad", _pod_bad, True)
FAR_BAD = Metric("far_bad", _far_bad, False)


def baseline(rows: pd.DataFrame, history: pd.DataFrame) -> np.ndarray:
    """Persistence: today's mean so far, else yesterday's, else the pollutant's historical mean."""
    fallback = rows["pollutant"].map(history.groupby("pollutant")["pm_next"].mean())
    return rows["own_today_mean"].fillna(rows["own_yesterday_mean"]).fillna(fallback).to_numpy(float)


def oracle(rows: pd.DataFrame, truth_dir) -> np.ndarray:
    """The generator's noise-free daily mean of the target day, for the row's pollutant."""
    truth = pd.read_parquet(Path(truth_dir) / "fine_dust_truth.parquet")
    truth = truth.assign(date=pd.to_datetime(truth["date"]).dt.normalize())
    keys = pd.DataFrame({"station_code": rows["station_code"].to_numpy(),
                         "date": pd.to_datetime(rows["target_date"]).dt.normalize().to_numpy()})
    joined = keys.merge(truth, on=["station_code", "date"], how="left")
    return np.where(rows["pollutant"].to_numpy() == 0, joined["pm10"], joined["pm25"])


SPEC = register(DomainSpec(
    name="fine_dust",
    title="Fine dust (PM10, PM2.5) tomorrow",
    task="regression",
    target="pm_next",
    keys=("station_code", "pollutant"),
    time="time",
    horizon=timedelta(hours=24 + 24 - ISSUE_HOUR),  # 17:00 on day d to midnight closing day d+1
    features=FEATURES,
    conditions=CONDITIONS,
    sources=("airkorea", "asos"),
    feature_set_version="fine_dust-v1",
    build_table=build_table,
    build_rows=build_rows,
    metrics=(RMSE, MAE, GRADE_ACCURACY, POD_BAD, FAR_BAD),
    primary_metric="rmse",
    baseline=baseline,
    oracle=oracle,
    extra={"grades": grade, "grade_names": grade_name, "units": UNITS, "overridable": OBSERVED},
))

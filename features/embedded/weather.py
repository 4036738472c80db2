"""Hourly weather at every station: regional rain storms with convective spread, temperature, wind.

Rain is the driver of floods, accidents and nowcasts, so it is built from events: Poisson storm
arrivals (far more and wetter in the Jun-Sep monsoon, plus typhoons), each with a heavy-tailed depth
spread over its hours, and a per-event, per-station lognormal factor standing for convective cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.embedded.noise import ar1, daily_to_hourly
from features.embedded.period import Period

# Per month: storm arrivals per day, mean storm depth (mm); about 1,200 mm a year, 60% in Jun-Sep.
RATE = np.array([0.16, 0.16, 0.20, 0.24, 0.24, 0.26, 0.38, 0.36, 0.24, 0.18, 0.22, 0.20])
DEPTH = np.array([4.0, 4.5, 6.5, 9.5, 12.0, 15.5, 24.0, 26.0, 19.0, 9.0, 7.5, 4.0])
UPWIND_LEAD_H = 3  # storms reach the upwind island a few hours before the city


@dataclass(frozen=True)
class Weather:
    """True hourly weather, arrays (hours, stations) in ``station_ids`` order."""

    station_ids: np.ndarray
    temp: np.ndarray
    rain: np.ndarray
    wind: np.ndarray
    wind_dir: np.ndarray
    humidity: np.ndarray
    slp: np.ndarray
    pressure: np.ndarray
    snow: np.ndarray  # snow depth, cm
    events: pd.DataFrame  # start (hour index), hours, kind, depth_mm, surge_cm

    def col(self, station_id: int) -> int:
        return int(np.flatnonzero(self.station_ids == station_id)[0])


def _events(period: Period, rng: np.random.Generator) -> pd.DataFrame:
    """Storm events: start hour, duration, kind and regional depth."""
    days = period.days
    month = days.month.to_numpy() - 1
    counts = rng.poisson(RATE[month])
    day = np.repeat(np.arange(len(days)), counts)
    m = month[day]
    summer = (m >= 5) & (m <= 8)
    kind = np.where(summer & (rng.random(len(day)) < 0.7), "convective", "frontal").astype(object)
    depth = DEPTH[m] * rng.lognormal(-0.36, 0.85, len(day))
    hours = np.clip(rng.lognormal(np.log(np.where(summer, 9, 7)), 0.6), 1, 60).round()
    # Typhoons: about one every two years, late July to September, long, wet, windy, with a surge.
    season_days = (days.day_of_year >= 200) & (days.day_of_year <= 273)
    t_day = []
    for year in sorted(set(days.year)):
        pool = np.flatnonzero(season_days & (days.year == year))
        if len(pool):
            t_day.extend(rng.choice(pool, size=rng.poisson(0.55)))
    t_day = np.asarray(t_day, dtype=np.int64)
    nt = len(t_day)
    frame = pd.DataFrame({
        "start": np.concatenate([day * 24 + rng.integers(0, 24, len(day)), t_day * 24 + rng.integers(0, 24, nt)]),
        "hours": np.concatenate([hours, rng.uniform(14, 26, nt).round()]).astype(np.int64),
        "kind": np.concatenate([kind, np.full(nt, "typhoon", dtype=object)]),
        "depth_mm": np.concatenate([depth, 140 * rng.lognormal(-0.1, 0.45, nt)]),
        "surge_cm": np.concatenate([np.zeros(len(day)), rng.uniform(25, 60, nt)]),
    })
    # Strong storms also push water into the bay, a little.
    big = frame["kind"] != "typhoon"
    frame.loc[big, "surge_cm"] = np.clip(frame.loc[big, "depth_mm"] / 6 - 3, 0, 20) * rng.random(big.sum())
    return frame.sort_values("start", kind="stable").reset_index(drop=True)


def _rain(period: Period, events: pd.DataFrame, upwind: np.ndarray, rng) -> tuple[np.ndarray, ...]:
    """Station rain (hours, stations) and 0-1 storm and typhoon strength series for wind and pressure."""
    n, s = period.n, len(upwind)
    rain = np.zeros((n + 80, s))
    storm = np.zeros(n + 80)
    typhoon = np.zeros(n + 80)
    for ev in events.itertuples():
        h = int(ev.hours)
        shape = np.sin(np.pi * (np.arange(h) + 0.5) / h) ** 0.7
        conv = ev.kind == "convective"
        w = shape * rng.lognormal(0, 0.7 if conv else 0.5, h) * (rng.random(h) > 0.12)
        w = w / w.sum() if w.sum() > 0 else shape / shape.sum()
        sigma = 0.75 if conv else (0.35 if ev.kind == "typhoon" else 0.45)
        factor = rng.lognormal(-sigma * sigma / 2, sigma, s)
        factor[upwind] = rng.lognormal(-0.5, 1.0, upwind.sum()) * (rng.random(upwind.sum()) > 0.25)
        hourly = ev.depth_mm * w[:, None] * factor[None, :] * rng.lognormal(-0.06, 0.35, (h, s))
        start = int(ev.start)
        rain[start:start + h, ~upwind] += hourly[:, ~upwind]
        lead = max(start - UPWIND_LEAD_H, 0)
        rain[lead:lead + h, upwind] += hourly[: len(rain[lead:lead + h]), upwind]
        peak = shape / shape.max()
        storm[start:start + h] = np.maximum(storm[start:start + h], peak)
        if ev.kind == "typhoon":
            typhoon[start:start + h] = np.maximum(typhoon[start:start + h], peak)
    rain = rain[:n]
    # Cloudbursts saturate: hourly totals beyond ~60 mm grow slowly (Korean records are ~150 mm/h).
    rain = np.where(rain > 60, 60 + 50 * np.tanh((rain - 60) / 50), rain)
    rain = np.floor(rain * 10) / 10  # gauges resolve 0.1 mm
    return rain, storm[:n], typhoon[:n]


def simulate_weather(city, period: Period, rng: np.random.Generator) -> Weather:
    """Simulate true hourly weather for all of the city's weather stations."""
    stations = city.weather_stations
    ids = np.array([st.id for st in stations])
    upwind = np.array([st.upwind for st in stations])
    n, s = period.n, len(stations)
    events = _events(period, rng)
    rain, storm, typhoon = _rain(period, events, upwind, rng)

    season = period.season[:, None]
    hour = period.hour[:, None]
    day, nd = period.day, len(period.days)
    winter = np.cos(2 * np.pi * (season - 28 / 365.25))  # +1 late January, -1 late July
    # Temperature: seasonal + diurnal cycle + synoptic swings shared by the region + local noise.
    amp = 3.6 + 0.6 * np.sin(2 * np.pi * (season - 0.2)) + 0.6 * (~upwind)[None, :]
    clim = 12.3 - 13.8 * winter + amp * np.cos(2 * np.pi * (hour - 14.5) / 24)
    synoptic = daily_to_hourly(ar1(rng, nd, 0.75, 2.6), day, period.hour)[:, None]
    local = ar1(rng, n, 0.9, 0.7, s)
    maritime = np.where(upwind, 1.2, 0.0)[None, :] * winter - 0.3 * upwind[None, :]
    wet = rain > 0
    temp = clim + synoptic * (1 + 0.2 * winter) + local + maritime - 1.5 * wet

    # Humidity: moist summers, dry winter afternoons, near saturation in rain.
    rh = 70 - 10 * winter - 2.2 * (temp - (12.3 - 13.8 * winter)) + ar1(rng, n, 0.85, 7, s)
    rh = np.clip(np.where(wet, np.maximum(rh, 88) + rng.uniform(0, 10, (n, s)), rh), 12, 100)

    # Wind: NW monsoon in winter, S-SW in summer; windy storms and typhoons.
    prevailing = 265 + 50 * winter
    turn = daily_to_hourly(ar1(rng, nd, 0.6, 55), day, period.hour)[:, None]
    wind_dir = (prevailing + turn + rng.normal(0, 20, (n, s))) % 360
    daily_speed = daily_to_hourly(np.exp(ar1(rng, nd, 0.5, 0.3)), day, period.hour)[:, None]
    diurnal = 1 + 0.25 * np.cos(2 * np.pi * (hour - 15) / 24)
    speed = 2.8 * (1 + 0.1 * winter) * daily_speed * diurnal * rng.lognormal(0, 0.22, (n, s))
    speed = speed * np.where(upwind, 1.5, 1.0)[None, :]
    speed = np.clip(speed + 2.5 * storm[:, None] + typhoon[:, None] * rng.uniform(8, 14, (1, s)), 0, 40)

    # Pressure: high in winter, lows with storms.
    slp = (1016 + 7.5 * winter + daily_to_hourly(ar1(rng, nd, 0.7, 5.0), day, period.hour)[:, None]
           - 6 * storm[:, None] - 20 * typhoon[:, None] ** 2 + rng.normal(0, 0.3, (n, s)))
    heights = np.array([st.elevation_m for st in stations])  # station-level pressure
    pressure = slp - heights[None, :] * 0.12 * (1 + 0.002 * (15 - temp))

    snow = _snow_depth(temp, rain)
    return Weather(ids, temp, rain, speed, wind_dir, rh, slp, pressure, snow, events)


def _snow_depth(temp: np.ndarray, precip: np.ndarray) -> np.ndarray:
    """Snow depth (cm): cold precipitation piles up about 1 cm per mm and melts above freezing."""
    depth = np.zeros_like(temp)
    cur = np.zeros(temp.shape[1])
    snowing = (temp <= 0.5) * precip * 0.8
    melt = np.clip(temp, 0, None) * 0.3 + 0.02
    for i in range(len(temp)):
        cur = np.maximum(cur + snowing[i] - melt[i], 0)
        depth[i] = cur
    return depth

"""Hourly air quality at AirKorea stations, built from daily means that carry the physics.

PM10 at Incheon on day d = local part (seasonal regional background, worse in stagnant air) + a
transboundary part (alpha x the upwind island's PM10 of day d-1, only when day d-1 blew from the west)
+ yellow dust that reaches the island a day before the city; rain washes out, humidity raises the
PM2.5 share. Hours = daily mean x diurnal profile x correlated noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.embedded.noise import ar1
from features.embedded.period import Period
from features.spatial import nearest

ALPHA = 0.6  # share of yesterday's upwind PM10 arriving under westerly wind
PM_DIURNAL = 1 + 0.10 * np.cos(2 * np.pi * (np.arange(24) - 10) / 24) + 0.06 * np.cos(4 * np.pi * (np.arange(24) - 9) / 24)
PM_DIURNAL = PM_DIURNAL / PM_DIURNAL.mean()


def daily_weather(period: Period, values: np.ndarray, how: str) -> np.ndarray:
    """Daily aggregate (per AirKorea day: hours 01..24) of an hourly (hours, stations) array."""
    nd = len(period.days)
    out = np.zeros((nd, values.shape[1]))
    np.add.at(out, period.day, values)
    return out if how == "sum" else out / np.bincount(period.day, minlength=nd)[:, None]


def westerly(period: Period, speed: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Per day and station: the mean wind vector blows from between SW and NW (202.5-337.5 deg)."""
    rad = np.radians(direction)
    x = daily_weather(period, speed * np.sin(rad), "mean")
    y = daily_weather(period, speed * np.cos(rad), "mean")
    mean_dir = np.degrees(np.arctan2(x, y)) % 360
    return (mean_dir >= 202.5) & (mean_dir <= 337.5)


def _dust(period: Period, rng) -> np.ndarray:
    """Yellow dust PM10 at the upwind island per day: a few 1-3 day episodes each March-May."""
    days = period.days
    dust = np.zeros(len(days))
    for year in sorted(set(days.year)):
        pool = np.flatnonzero((days.year == year) & (days.month >= 3) & (days.month <= 5))
        for d in rng.choice(pool, size=min(rng.poisson(3), len(pool)), replace=False) if len(pool) else []:
            span = int(rng.integers(1, 4))
            dust[d:d + span] += 250 * rng.lognormal(0, 0.4, len(dust[d:d + span]))
    return dust


def daily_pm(period, stations, wx: dict, offsets: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free daily PM10 and PM2.5 (days, stations). ``wx`` holds daily weather per air station."""
    nd = len(period.days)
    doy = period.days.day_of_year.to_numpy()
    mu = np.log(42) + 0.42 * np.cos(2 * np.pi * (doy - 55) / 365.25)
    bg = np.array([st.background for st in stations])
    dust = _dust(period, rng)
    wash = np.clip(np.exp(-0.03 * wx["rain"]), 0.35, 1.0)
    stag = np.clip(np.exp(-0.15 * (wx["wind"] - 3)), 0.6, 1.8)
    ratio = np.clip(0.55 + 0.006 * (wx["rh"] - 70), 0.4, 0.68)
    upwind = np.exp(mu + ar1(rng, nd, 0.6, 0.35))
    regional = np.exp(mu + ar1(rng, nd, 0.55, 0.3))
    b = int(np.flatnonzero(bg)[0])
    island = upwind * wash[:, b] * stag[:, b] ** 0.5 + dust
    prev = np.concatenate([[island[0]], island[:-1]])  # yesterday at the island
    west = np.concatenate([[False], wx["west_upwind"][:-1]])  # yesterday's wind there
    dust_prev = np.concatenate([[0.0], dust[:-1]])
    pm10 = np.empty((nd, len(stations)))
    dust_part = np.empty_like(pm10)
    for j in range(len(stations)):
        if bg[j]:
            pm10[:, j], dust_part[:, j] = island, dust
            continue
        arrived = (ALPHA * west * (prev - dust_prev) + 0.6 * dust_prev) * wash[:, j]
        dust_part[:, j] = 0.6 * dust_prev * wash[:, j] * offsets[j]
        pm10[:, j] = offsets[j] * (0.55 * regional * stag[:, j] * wash[:, j] + arrived)
    pm25 = ratio * (pm10 - dust_part) + 0.3 * dust_part
    return pm10, pm25


def air_frame(period: Period, stations, pm10: np.ndarray, pm25: np.ndarray, wx_hourly: dict,
              offsets: np.ndarray, rng) -> pd.DataFrame:
    """AirKorea rows (station-major, hourly) with gases, noise and missing hours."""
    n, hour = period.n, period.hour
    winter = np.cos(2 * np.pi * (period.season - 20 / 365.25))
    begins = period.begins
    when = np.char.add(np.asarray(begins.strftime("%Y%m%d"), dtype=str), np.char.zfill((hour + 1).astype(str), 2))
    frames = []
    for j, st in enumerate(stations):
        eps = ar1(rng, n, 0.85, 0.22)
        noise = np.exp(eps - 0.22 ** 2 / 2)
        p10 = pm10[period.day, j] * PM_DIURNAL[hour] * noise
        p25 = pm25[period.day, j] * PM_DIURNAL[hour] * noise * rng.lognormal(-0.005, 0.1, n)
        stag = np.clip(np.exp(-0.15 * (wx_hourly["wind"][:, j] - 3)), 0.6, 1.8)
        scale = 0.3 if st.background else offsets[j]
        rush = 1 + 0.35 * (np.exp(-((hour - 8) ** 2) / 4) + np.exp(-((hour - 19) ** 2) / 6))
        no2 = 0.022 * scale * (1 + 0.3 * winter) * stag * rush * rng.lognormal(0, 0.25, n)
        co = (0.25 if st.background else 0.45) * (1 + 0.3 * winter) * stag * rng.lognormal(0, 0.2, n)
        so2 = 0.0035 * (0.45 if st.background else offsets[j] ** 2) * rng.lognormal(0, 0.3, n)
        o3 = ((0.03 + 0.012 * np.sin(2 * np.pi * (period.season - 0.17))) * (1.3 if st.background else 1.0)
              * (1 + 0.55 * np.cos(2 * np.pi * (hour - 15) / 24)) * np.clip(1.4 - 15 * no2, 0.3, 1.4)
              * rng.lognormal(0, 0.2, n))
        gone = rng.random(n) < 0.01
        for s in rng.integers(0, n, max(1, n // 8760)):  # about one long outage a year
            gone[s:s + rng.integers(6, 31)] = True
        pm_gone = gone | (rng.random(n) < 0.005)
        frames.append(pd.DataFrame({
            "지역": st.region, "측정소코드": st.code, "측정소명": st.name, "측정일시": when,
            "SO2": _blank(so2, gone, 3), "CO": _blank(co, gone, 1), "O3": _blank(o3, gone, 3),
            "NO2": _blank(no2, gone, 3), "PM10": _blank(p10, pm_gone, 0), "PM25": _blank(p25, pm_gone, 0),
            "주소": f"인천광역시 {st.region.split(' ', 1)[-1]} {st.name} 측정소", "year": period.year,
        }))
    return pd.concat(frames, ignore_index=True)


def _blank(values: np.ndarray, missing: np.ndarray, decimals: int):
    out = np.round(values, decimals)
    out[missing] = np.nan
    return pd.array(out, dtype="Int64") if decimals == 0 else out


def simulate_air(grid, static: pd.DataFrame, weather, period: Period, rng) -> tuple[pd.DataFrame, pd.DataFrame]:
    """AirKorea rows and the daily truth for every air station of the city."""
    city = grid.city
    stations = city.air_stations
    wst = city.weather_stations
    up = int(np.flatnonzero([s.upwind for s in wst])[0])
    local = np.flatnonzero([not s.upwind for s in wst])
    lat, lon = np.array([s.lat for s in stations]), np.array([s.lon for s in stations])
    near = local[nearest(lat, lon, [wst[k].lat for k in local], [wst[k].lon for k in local])]
    col = np.where([s.background for s in stations], up, near)
    # Busy, built-up station surroundings add local emissions.
    pos = grid.locate(lat, lon)
    traffic = np.log(static["traffic_volume"].to_numpy())
    z = np.where(pos >= 0, (traffic[np.clip(pos, 0, None)] - traffic.mean()) / traffic.std(), 0.0)
    offsets = np.exp(0.08 * z + rng.normal(0, 0.06, len(stations)))
    wx = {"rain": daily_weather(period, weather.rain[:, col], "sum"),
          "wind": daily_weather(period, weather.wind[:, col], "mean"),
          "rh": daily_weather(period, weather.humidity[:, col], "mean"),
          "west_upwind": westerly(period, weather.wind[:, [up]], weather.wind_dir[:, [up]])[:, 0]}
    pm10, pm25 = daily_pm(period, stations, wx, offsets, rng)
    frame = air_frame(period, stations, pm10, pm25, {"wind": weather.wind[:, col]}, offsets, rng)
    nd = len(period.days)
    truth = pd.DataFrame({
        "station_code": np.repeat([s.code for s in stations], nd),
        "date": np.tile(period.days.to_numpy(), len(stations)),
        "pm10": pm10.T.ravel(), "pm25": pm25.T.ravel(),
    })
    return frame, truth

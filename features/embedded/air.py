"""Hourly air quality at AirKorea stations, built from daily means that carry the physics.

PM10 in the city on day d = a local part + a transboundary part, both driven by day d's own weather:

- local: a daily box model. The air keeps a share of yesterday's load that falls with day d's wind
  (ventilation) and relaxes towards an equilibrium set by the season and day d's stagnation, times a
  partly persistent synoptic factor the weather does not explain;
- transboundary (when the city config has an upwind background station: Incheon's and the other built-in
  cities' is the island of Baengnyeong-do): the background station's PM10 of day d-1 arrives in proportion to day d's
  westerly flow there (about 170 km at 5 m/s is 9-10 h), and yellow dust that reached the island on
  day d-1 arrives mostly with westerly to north-westerly flow;
- rain on day d washes both out (and the washed load is not carried to day d+1); humidity raises the
  PM2.5 share (secondary aerosol). Hours = daily mean x diurnal profile x correlated noise.

The truth written for evaluation is the noise-free daily mean (never a feature).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.embedded.noise import ar1
from features.embedded.period import Period
from features.spatial import nearest

ALPHA = 0.6  # share of yesterday's upwind PM10 arriving under a full westerly (u >= WEST_FULL_MS)
WEST_FULL_MS = 4.0  # daily mean eastward wind (m/s) at the island at which transport is full
PM_DIURNAL = 1 + 0.10 * np.cos(2 * np.pi * (np.arange(24) - 10) / 24) + 0.06 * np.cos(4 * np.pi * (np.arange(24) - 9) / 24)
PM_DIURNAL = PM_DIURNAL / PM_DIURNAL.mean()


def daily_weather(period: Period, values: np.ndarray, how: str) -> np.ndarray:
    """Daily aggregate (per AirKorea day: hours 01..24) of an hourly (hours, stations) array."""
    nd = len(period.days)
    out = np.zeros((nd, values.shape[1]))
    np.add.at(out, period.day, values)
    return out if how == "sum" else out / np.bincount(period.day, minlength=nd)[:, None]


def eastward(period: Period, speed: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Daily mean eastward wind component (m/s; > 0 blows from the west) of one station's hourly wind."""
    u = -speed * np.sin(np.radians(direction))  # meteorological direction: where the wind comes from
    return daily_weather(period, u[:, None], "mean")[:, 0]


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


def _box(eq: np.ndarray, retain: np.ndarray, wash: np.ndarray) -> np.ndarray:
    """Daily box model (days, stations): load_d = (retain_d x load_{d-1} + (1 - retain_d) x eq_d) x wash_d."""
    out = np.empty_like(eq)
    load = eq[0] * wash[0]
    for d in range(len(eq)):
        load = (retain[d] * load + (1 - retain[d]) * eq[d]) * wash[d] if d else load
        out[d] = load
    return out


def daily_pm(period, stations, wx: dict, offsets: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free daily PM10 and PM2.5 (days, stations). ``wx`` holds daily weather per air station
    (rain mm, wind m/s, rh %) and ``west_upwind`` (days,), the eastward wind (m/s) at the island."""
    nd = len(period.days)
    doy = period.days.day_of_year.to_numpy()
    mu = np.log(42) + 0.42 * np.cos(2 * np.pi * (doy - 55) / 365.25)
    bg = np.array([st.background for st in stations])
    dust = _dust(period, rng)
    wash = np.clip(np.exp(-0.04 * wx["rain"]), 0.3, 1.0)
    stag = np.clip(np.exp(-0.18 * (wx["wind"] - 3)), 0.5, 2.0)
    retain = np.clip(0.75 * np.exp(-wx["wind"] / 5), 0.1, 0.7)  # calm days keep yesterday's air
    ratio = np.clip(0.55 + 0.006 * (wx["rh"] - 70), 0.4, 0.68)
    upwind = np.exp(mu + ar1(rng, nd, 0.6, 0.35))
    synoptic = np.exp(mu + ar1(rng, nd, 0.45, 0.16))  # what the weather does not explain
    if not bg.any():  # no upwind background station: no transboundary part
        west_upwind, dust = np.zeros(nd), np.zeros(nd)
        island = np.zeros(nd)
    else:
        west_upwind = wx["west_upwind"]
        b = int(np.flatnonzero(bg)[0])
        island = upwind * wash[:, b] * stag[:, b] ** 0.5 + dust
    prev = np.concatenate([[island[0]], island[:-1]])  # yesterday at the island
    west = np.clip(west_upwind / WEST_FULL_MS, 0, 1)  # today's westerly there
    dust_prev = np.concatenate([[0.0], dust[:-1]])
    local = _box(0.62 * synoptic[:, None] * stag, retain, wash)
    pm10 = np.empty((nd, len(stations)))
    dust_part = np.empty_like(pm10)
    for j in range(len(stations)):
        if bg[j]:
            pm10[:, j], dust_part[:, j] = island, dust
            continue
        dust_part[:, j] = 0.7 * dust_prev * (0.3 + 0.7 * west) * wash[:, j] * offsets[j]
        arrived = ALPHA * west * (prev - dust_prev) * wash[:, j]
        pm10[:, j] = offsets[j] * (local[:, j] + arrived) + dust_part[:, j]
    pm25 = ratio * (pm10 - dust_part) + 0.3 * dust_part
    return pm10, pm25


def air_frame(period: Period, stations, pm10: np.ndarray, pm25: np.ndarray, wx_hourly: dict,
              offsets: np.ndarray, rng, province: str = "") -> pd.DataFrame:
    """AirKorea rows (station-major, hourly) with gases, noise and missing hours; ``주소`` starts with
    ``province`` (the city config's ``geography.province``)."""
    n, hour = period.n, period.hour
    winter = np.cos(2 * np.pi * (period.season - 20 / 365.25))
    begins = period.begins
    when = np.char.add(np.asarray(begins.strftime("%Y%m%d"), dtype=str), np.char.zfill((hour + 1).astype(str), 2))
    frames = []
    for j, st in enumerate(stations):
        eps = ar1(rng, n, 0.75, 0.2)  # plumes and local sources within the day (a few hours' memory)
        noise = np.exp(eps - 0.2 ** 2 / 2)
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
            "주소": _address(province, st), "year": period.year,
        }))
    return pd.concat(frames, ignore_index=True)


def _address(province: str, station) -> str:
    """The station's own ``address``, else '<province> <district> <name> 측정소': the region's words after its
    시도, less those in ``province``."""
    if station.address:
        return station.address
    words = [w for w in station.region.split()[1:] if w not in province.split()]
    return " ".join([*province.split(), *words, station.name, "측정소"])


def _blank(values: np.ndarray, missing: np.ndarray, decimals: int):
    out = np.round(values, decimals)
    out[missing] = np.nan
    return pd.array(out, dtype="Int64") if decimals == 0 else out


def simulate_air(grid, static: pd.DataFrame, weather, period: Period, rng) -> tuple[pd.DataFrame, pd.DataFrame]:
    """AirKorea rows and the daily truth for every air station of the city."""
    city = grid.city
    stations = city.air_stations
    wst = city.weather_stations
    upwind = np.flatnonzero([s.upwind for s in wst])
    local = np.flatnonzero([not s.upwind for s in wst])
    # The background air station reads the upwind weather station's weather (none: the nearest city one's).
    up = int(upwind[0]) if len(upwind) else int(local[0])
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
          "west_upwind": eastward(period, weather.wind[:, up], weather.wind_dir[:, up])}
    pm10, pm25 = daily_pm(period, stations, wx, offsets, rng)
    frame = air_frame(period, stations, pm10, pm25, {"wind": weather.wind[:, col]}, offsets, rng,
                      city.geography.province)
    nd = len(period.days)
    truth = pd.DataFrame({
        "station_code": np.repeat([s.code for s in stations], nd),
        "date": np.tile(period.days.to_numpy(), len(stations)),
        "pm10": pm10.T.ravel(), "pm25": pm25.T.ravel(),
    })
    return frame, truth

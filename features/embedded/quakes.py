"""Earthquakes: a KMA-style catalogue of small events, damaging scenarios drawn from it, ground motion.

The catalogue (ML 2.0-4.9, Gutenberg-Richter) clusters around the source zones of the city config's
``[seismic_region]`` (Incheon's: the Yellow Sea and Gyeonggi), with the real events it lists (e.g. Pohang's
2017 M5.4) written in as KMA lists them. Damaging scenarios follow the catalogue's rates (its own b-value, truncated to ML 4.5-7.0; 12% of
them within 30 km of the city), but are *drawn* from a proposal that over-represents large and near
events, so that shaking above 0.3 g is not a handful of rows; each scenario carries the importance
weight rate / proposal, so a weighted loss is the loss under the catalogue's rates. Ground motion is
:func:`features.domains.earthquake.seismic.ground_motion` (BSSA14), the physics the features and the baseline use.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.domains.earthquake import seismic
from features.spatial import haversine_km

DIRECTIONS = np.array(["북", "북동", "동", "남동", "남", "남서", "서", "북서"], dtype=object)
ROMAN = np.array(["-", "Ⅰ", "Ⅱ", "Ⅲ", "Ⅳ", "Ⅴ", "Ⅵ"], dtype=object)
KM_PER_DEG = 111.2
# Scenario magnitudes (ML) and how many fall near the city, under the catalogue's rates ("target") and
# as drawn ("proposal": half the draws uniform in magnitude, and a third of them near the city).
SCENARIO_ML = (4.5, 7.0)
NEAR_KM, NEAR_SHARE, NEAR_PROPOSAL = 30.0, 0.12, 1 / 3
UNIFORM_SHARE = 0.5


def _gr(rng, n, b, lo, hi) -> np.ndarray:
    """Magnitudes from a Gutenberg-Richter law truncated to [lo, hi]."""
    u = rng.random(n)
    return lo - np.log10(1 - u * (1 - 10 ** (-b * (hi - lo)))) / b


def _jitter(rng, lat, lon, km) -> tuple[np.ndarray, np.ndarray]:
    lat = lat + rng.normal(0, 1, len(lat)) * km / KM_PER_DEG
    lon = lon + rng.normal(0, 1, len(lon)) * km / (KM_PER_DEG * np.cos(np.radians(lat)))
    return lat, lon


def _zones(region) -> list[tuple[float, float, float, float]]:
    """(lat, lon, weight, spread km) of the region's source zones: its own, else one at its centre."""
    if region.zones:
        return [(z.lat, z.lon, z.weight, z.spread_km) for z in region.zones]
    return [(sum(region.lat) / 2, sum(region.lon) / 2, 1.0, 50.0)]


def _places(city) -> list[tuple[str, float, float]]:
    """Reference places: the region's own, else each district (a point inside it) as "<province> <district>"."""
    region = city.seismic_region
    if region.places:
        return [(p.name, p.lat, p.lon) for p in region.places]
    points = [(d.name, d.geometry.representative_point()) for d in city.places().districts]
    return [(f"{city.geography.province} {name}".strip(), pt.y, pt.x) for name, pt in points]


def _offshore(region, lat, lon) -> np.ndarray:
    out = np.zeros(np.shape(lon), dtype=bool)
    if region.offshore_south_of is not None:
        out |= lat < region.offshore_south_of
    if region.offshore_west_of is not None:
        out |= lon < region.offshore_west_of
    if region.offshore_east_of is not None:
        out |= lon > region.offshore_east_of
    return out


def _location(city, lat, lon) -> np.ndarray:
    """'<place> <direction>쪽 <km>km 해역|지역' from the nearest reference place."""
    places = _places(city)
    plat = np.array([p[1] for p in places])
    plon = np.array([p[2] for p in places])
    d = haversine_km(lat[:, None], lon[:, None], plat[None, :], plon[None, :])
    k = d.argmin(axis=1)
    km = d[np.arange(len(lat)), k]
    bearing = np.degrees(np.arctan2((lon - plon[k]) * np.cos(np.radians(lat)), lat - plat[k])) % 360
    sector = DIRECTIONS[np.round(bearing / 45).astype(int) % 8]
    where = np.where(_offshore(city.seismic_region, lat, lon), "해역", "지역")
    names = np.array([p[0] for p in places], dtype=object)[k]
    return np.array([f"{n} {s}쪽 {int(round(x))}km {w}" for n, s, x, w in zip(names, sector, km, where, strict=True)],
                    dtype=object)


def catalogue(city, end: pd.Timestamp, city_lat: float, city_lon: float, rng) -> pd.DataFrame:
    """The KMA earthquake list from 1978 to ``end``, newest first, plus hidden float columns (_lat, _lon).

    Generated events scatter around the city's ``seismic_region`` zones; its ``historical`` events up to
    ``end`` are added as listed (magnitude, depth, intensity, place) and numbered in time order with the rest.
    """
    region = city.seismic_region
    zones = _zones(region)
    n = int(rng.integers(150, 251))
    begin = pd.Timestamp("1978-01-01")
    span = (end - begin).total_seconds()
    # Detection improved over time: more small events in recent decades.
    when = begin + pd.to_timedelta(np.sort(rng.random(n) ** 0.75) * span, unit="s")
    when = when.floor("s")
    weights = np.array([z[2] for z in zones])
    zone = rng.choice(len(zones), size=n, p=weights / weights.sum())
    zlat, zlon, spread = (np.array([zones[z][i] for z in zone]) for i in (0, 1, 3))
    lat, lon = _jitter(rng, zlat, zlon, spread)
    lat, lon = np.clip(lat, *region.lat), np.clip(lon, *region.lon)
    mag = np.round(_gr(rng, n, 1.0, 2.0, 4.9), 1)
    depth = np.clip(rng.normal(12, 6, n), 2, 30).round(0)
    no_depth = rng.random(n) < np.where(when.year < 2000, 0.3, 0.05)
    r = haversine_km(lat, lon, city_lat, city_lon)
    intensity = np.clip(np.round(1.2 * mag - 2.5 * np.log10(r + 5) + 1.5), 0, 6).astype(int)
    label = ROMAN[intensity]
    near = (intensity > 0) & (r < 80) & (rng.random(n) < 0.5)
    if region.felt_label:
        label = np.where(near, np.char.add(label.astype(str), f"({region.felt_label})"), label).astype(object)
    frame = pd.DataFrame({
        "번호": np.arange(1, n + 1), "발생시각": when.strftime("%Y-%m-%d %H:%M:%S"), "규모": mag,
        "깊이(km)": np.where(no_depth, "-", depth.astype(int).astype(str)).astype(object), "최대진도": label,
        "위도": [f"{x:.2f} N" for x in lat], "경도": [f"{x:.2f} E" for x in lon], "위치": _location(city, lat, lon),
        "_lat": lat, "_lon": lon,
    })
    known = [q for q in region.historical if pd.Timestamp(q.time) <= end]
    if known:
        listed = pd.DataFrame({
            "번호": 0, "발생시각": [q.time for q in known], "규모": [q.magnitude for q in known],
            "깊이(km)": ["-" if q.depth_km is None else f"{q.depth_km:g}" for q in known],
            "최대진도": [q.intensity for q in known], "위도": [f"{q.lat:.2f} N" for q in known],
            "경도": [f"{q.lon:.2f} E" for q in known], "위치": [q.location for q in known],
            "_lat": [q.lat for q in known], "_lon": [q.lon for q in known],
        })
        frame = pd.concat([frame, listed], ignore_index=True).sort_values("발생시각", kind="stable")
        frame["번호"] = np.arange(1, len(frame) + 1)
    return frame.iloc[::-1].reset_index(drop=True)


def b_value(mag: np.ndarray, m_min: float = 2.0, step: float = 0.1) -> float:
    """Aki's maximum-likelihood b-value of binned magnitudes above ``m_min``."""
    return float(np.log10(np.e) / (np.mean(mag) - (m_min - step / 2)))


def _gr_density(mag, b, lo, hi) -> np.ndarray:
    """Density of the Gutenberg-Richter law truncated to [lo, hi] (per magnitude unit)."""
    beta = b * np.log(10)
    return beta * np.exp(-beta * (mag - lo)) / (1 - np.exp(-beta * (hi - lo)))


def scenarios(cat: pd.DataFrame, count: int, start: pd.Timestamp, end: pd.Timestamp,
              city_lat: float, city_lon: float, rng) -> pd.DataFrame:
    """Damaging scenarios near catalogue epicentres (or close to the city), dated in the period.

    Magnitudes are drawn from a mixture of the catalogue's truncated Gutenberg-Richter law and a uniform
    law over ML 4.5-7.0; a scenario is placed within 30 km of the city with probability 1/3 instead of
    the catalogue's 12%. ``weight`` = target density / proposal density of the draw (magnitude times
    place), normalised to mean 1, so weighted sums estimate catalogue-rate sums without bias.
    """
    lo, hi = SCENARIO_ML
    b = b_value(cat["규모"].to_numpy())
    uniform = rng.random(count) < UNIFORM_SHARE
    mag = np.where(uniform, rng.uniform(lo, hi, count), _gr(rng, count, b, lo, hi))
    mag = np.round(np.clip(mag, lo, hi), 1)
    pick = rng.integers(0, len(cat), count)
    lat, lon = _jitter(rng, cat["_lat"].to_numpy()[pick], cat["_lon"].to_numpy()[pick], 20)
    close = rng.random(count) < NEAR_PROPOSAL
    r = NEAR_KM * np.sqrt(rng.random(count))
    az = rng.uniform(0, 2 * np.pi, count)
    lat = np.where(close, city_lat + r * np.cos(az) / KM_PER_DEG, lat)
    lon = np.where(close, city_lon + r * np.sin(az) / (KM_PER_DEG * np.cos(np.radians(city_lat))), lon)
    target = _gr_density(mag, b, lo, hi) * np.where(close, NEAR_SHARE, 1 - NEAR_SHARE)
    proposal = ((1 - UNIFORM_SHARE) * _gr_density(mag, b, lo, hi) + UNIFORM_SHARE / (hi - lo)) * \
        np.where(close, NEAR_PROPOSAL, 1 - NEAR_PROPOSAL)
    weight = target / proposal
    when = start + pd.to_timedelta(np.sort(rng.random(count)) * (end - start).total_seconds(), unit="s")
    return pd.DataFrame({
        "scenario_id": [f"S{i + 1:04d}" for i in range(count)], "time": when.floor("s"), "magnitude": mag,
        "depth_km": rng.uniform(5, 25, count).round(1), "lat": lat.round(4), "lon": lon.round(4),
        "weight": (weight / weight.mean()).round(6),
    })


def pga(scen: pd.DataFrame, cell_lat, cell_lon, vs30, rng) -> np.ndarray:
    """Peak ground acceleration (g), scenarios x cells: BSSA14's median times its residuals.

    One between-event residual per scenario (BSSA14's tau) and one within-event residual per cell
    (sqrt(sigma² - tau²)), drawn independently: the features' expected share integrates the same
    scatter (:func:`features.domains.earthquake.seismic.fragility_share`).
    """
    gm = seismic.ground_motion(scen["magnitude"].to_numpy()[:, None], scen["lat"].to_numpy()[:, None],
                               scen["lon"].to_numpy()[:, None], scen["depth_km"].to_numpy()[:, None],
                               np.asarray(cell_lat)[None, :], np.asarray(cell_lon)[None, :],
                               np.asarray(vs30)[None, :])
    tau = seismic.bssa14_tau(gm["mw"][:, :1])
    phi = np.sqrt(np.maximum(gm["sigma"] ** 2 - tau**2, 0.0))
    ln = gm["ln_pga"] + tau * rng.normal(0, 1, tau.shape) + phi * rng.normal(0, 1, phi.shape)
    return np.minimum(np.exp(ln), 2.0).astype(np.float32)

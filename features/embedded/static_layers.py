"""Static layers per cell: terrain, drainage, roads, people and soil, all tied to one urbanisation field.

The geography (coast, hills, reclaimed land, streams, town centres, special zones) comes from the city
config's ``[geography]``; a real import brings its own ``grid_layers.csv``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.embedded.geo import coast_distance_m, gaussian_bumps, polyline_distance_m
from features.grid import Grid
from features.sources.formats import STATIC


def _in_boxes(lat, lon, zones) -> np.ndarray:
    out = np.zeros(np.shape(lat), dtype=bool)
    for z in zones:
        out |= (lat >= z.lat[0]) & (lat <= z.lat[1]) & (lon >= z.lon[0]) & (lon <= z.lon[1])
    return out


def _hills(grid: Grid) -> list[tuple[float, float, float, float]]:
    return [(h.lat, h.lon, h.height_m, h.sigma_km) for h in grid.city.geography.hills]


def _terrain(grid: Grid, lat, lon, rng_bumps) -> np.ndarray:
    """Smooth elevation (m) anywhere: low at the coast, hills on top, flat reclaimed land."""
    coast = coast_distance_m(grid, lat, lon)
    elev = 4 + 26 * (1 - np.exp(-coast / 2500)) + gaussian_bumps(grid, lat, lon, _hills(grid))
    elev += gaussian_bumps(grid, lat, lon, rng_bumps)
    flat = _in_boxes(lat, lon, grid.city.geography.reclaimed)
    return np.where(flat, 3.5 + 0.1 * (elev - 4) / 26, np.maximum(elev, 1.0))


def _relief_box(grid: Grid) -> tuple[tuple[float, float], tuple[float, float]]:
    geo = grid.city.geography
    lon_min, lat_min, lon_max, lat_max = grid.city.places().outline.bounds
    lat = geo.relief_lat or (lat_min, lat_max)
    lon = geo.relief_lon or (lon_min, lon_max)
    return lat, lon


def _old_downtown(grid: Grid) -> np.ndarray:
    cells = grid.cells
    district = cells["district"].to_numpy()
    out = np.zeros(len(cells), dtype=bool)
    dong = cells["dong"].to_numpy() if "dong" in cells else None
    for town in grid.city.geography.old_downtown:
        here = district == town.district
        out |= here & np.isin(dong, town.dong) if town.dong and dong is not None else here
    return out


def build_static(grid: Grid, rng: np.random.Generator) -> pd.DataFrame:
    """All static layers per cell, in ``grid.cells`` order.

    Returns the ``grid_layers.csv`` columns plus internal columns used by the other generators
    (``urban``, ``era`` = typical construction year, ``old_downtown``, ``airport``, ``area_km2``).
    """
    cells = grid.cells
    n = len(cells)
    lat, lon = cells["lat"].to_numpy(), cells["lon"].to_numpy()
    area = (grid.size_m / 1000) ** 2
    # Random low bumps give the lowlands some relief; drawn first so the terrain is stable.
    geo = grid.city.geography
    box_lat, box_lon = _relief_box(grid)
    bumps = [(la, lo, h, s) for la, lo, h, s in zip(
        rng.uniform(*box_lat, 40), rng.uniform(*box_lon, 40), rng.normal(0, 7, 40),
        rng.uniform(0.8, 2.0, 40), strict=True)]

    # Slope comes from the terrain on the full raster (sea included), so edge cells have neighbours.
    rr, cc = np.meshgrid(np.arange(grid.n_rows), np.arange(grid.n_cols), indexing="ij")
    rlat, rlon = grid.to_latlon((cc + 0.5) * grid.size_m, (rr + 0.5) * grid.size_m)
    raster = _terrain(grid, rlat, rlon, bumps)
    gy, gx = np.gradient(raster, grid.size_m)
    slope_r = np.degrees(np.arctan(np.hypot(gx, gy)))
    rows, cols = cells["row"].to_numpy(), cells["col"].to_numpy()
    reclaimed = _in_boxes(lat, lon, geo.reclaimed)
    elev = raster[rows, cols] + rng.normal(0, 1.0, n) * np.where(reclaimed, 0.4, 1.5)
    elev = np.clip(np.where(reclaimed, np.clip(elev, 0.3, 6.0), elev), 0.3, None)
    slope = np.clip(slope_r[rows, cols] * rng.lognormal(0, 0.25, n) + 0.1, 0.05, 45)

    # No coast (an inland city) or no stream: an infinite distance, written as blank (not applicable).
    coast = coast_distance_m(grid, lat, lon)
    stream = polyline_distance_m(grid, lat, lon, [st.line for st in geo.streams])
    mainland = cells["land"].to_numpy() == "mainland"
    old = _old_downtown(grid)
    airport = _in_boxes(lat, lon, geo.special_zones)

    # Urbanisation: overlapping town centres, thinned on hillsides.
    cover = np.ones(n)
    for c in geo.centres:
        cover *= 1 - gaussian_bumps(grid, lat, lon, [(c.lat, c.lon, c.strength, c.sigma_km)])
    urban = (1 - cover) + 0.15 * old + rng.normal(0, 0.06, n)
    urban *= np.exp(-np.clip(elev - 60, 0, None) / 80)
    urban = np.clip(np.where(airport, 0.3 + 0.1 * rng.random(n), urban), 0.02, 1.0)

    # Typical construction year: old downtown 1980s, reclaimed new towns after 2003.
    era = np.where(old, 1984.0, np.where(reclaimed | ~mainland, 2010.0, 1996.0)) + rng.normal(0, 4, n)
    impervious = np.clip(0.12 + 0.68 * urban + 0.12 * old + rng.normal(0, 0.05, n), 0.03, 0.95)
    impervious = np.where(airport, np.maximum(impervious, 0.55), impervious)
    drain = np.clip(35 + (era - 1980) / 30 * 50 + rng.normal(0, 6, n), 30, 100)
    manholes = np.clip((15 + 110 * urban * (0.7 + 0.3 * (era - 1980) / 30)) * rng.lognormal(0, 0.2, n),
                       3, 200)

    arterial = (0.3 + 2.5 * urban ** 1.2) * rng.lognormal(0, 0.35, n) * area
    collector = (0.5 + 4.0 * urban) * rng.lognormal(0, 0.3, n) * area
    local = (1.0 + 14.0 * urban ** 0.8) * rng.lognormal(0, 0.25, n) * area
    intersections = rng.poisson(2.0 * (arterial + collector) + 1.2 * local)
    volume = np.clip((3000 + 20000 * arterial / area + 10000 * urban) * rng.lognormal(0, 0.4, n), 500, 150_000)
    commercial = np.clip(0.03 + 0.5 * urban ** 2 * rng.lognormal(0, 0.4, n) + 0.1 * old * urban, 0, 0.9)
    pop_night = area * 34000 * urban ** 1.5 * rng.lognormal(0, 0.3, n) * (1 - 0.6 * commercial)
    pop_night = np.where(airport, pop_night * 0.1, pop_night)
    pop_day = pop_night * (0.7 + 1.8 * commercial) + np.where(airport, area * 6000, 0)
    pop_night, pop_day = _to_totals(grid.city.totals, pop_night, pop_day)
    bus_stops = rng.poisson(area * (2 + 25 * urban ** 1.5))
    schools = rng.poisson(pop_night / 4500)
    vs30 = np.where(reclaimed, rng.uniform(170, 260, n),
                    np.clip(330 + 2.2 * elev + rng.normal(0, 35, n), 280, 800))
    vs30 = np.where(elev > 120, np.clip(vs30, 550, 800), vs30)

    frame = pd.DataFrame({
        "cell_id": cells["cell_id"].to_numpy(),
        "elevation_m": elev.round(1), "slope_deg": slope.round(2), "dist_coast_m": _finite(coast).round(0),
        "dist_stream_m": _finite(stream).round(0), "impervious_share": impervious.round(3),
        "drain_capacity_mmh": drain.round(1), "manhole_density_km2": manholes.round(1),
        "reclaimed": reclaimed.astype(int), "road_km_arterial": arterial.round(3),
        "road_km_collector": collector.round(3), "road_km_local": local.round(3),
        "intersections": intersections, "traffic_volume": volume.round(0),
        "bus_stops": bus_stops, "schools": schools, "commercial_share": commercial.round(3),
        "pop_day": pop_day.round(0), "pop_night": pop_night.round(0), "vs30_mps": vs30.round(0),
    })
    assert tuple(frame.columns) == STATIC.columns
    return frame.assign(urban=urban, era=era, old_downtown=old, airport=airport, area_km2=area)


def _to_totals(totals, pop_night: np.ndarray, pop_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The density pattern scaled to the city's stated residents and daytime population (``[totals]``); the
    pattern's own totals without them (a test city)."""
    if totals is None:
        return pop_night, pop_day
    day = totals.residents * totals.daytime_ratio
    return pop_night * totals.residents / pop_night.sum(), pop_day * day / pop_day.sum()


def _finite(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), values, np.nan)

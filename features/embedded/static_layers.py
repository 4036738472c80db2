"""Static layers per cell: terrain, drainage, roads, people and soil, all tied to one urbanisation field.

The Incheon geography below (hills, reclaimed land, streams, town centres) is the embedded data set's
own: a real import brings its own ``grid_layers.csv``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.embedded.geo import coast_lines, gaussian_bumps, polyline_distance_m
from features.grid import Grid
from features.sources.formats import STATIC

HILLS = [  # lat, lon, height m, sigma km
    (37.545, 126.710, 370, 1.1),  # Gyeyangsan
    (37.440, 126.670, 190, 0.7),  # Munhaksan
    (37.490, 126.740, 255, 1.0),  # Cheonmasan
    (37.475, 126.705, 140, 0.8),  # Wonjeoksan
    (37.487, 126.548, 240, 0.9),  # Baegunsan (Yeongjong)
]
RECLAIMED = [  # lat_min, lat_max, lon_min, lon_max
    (37.355, 37.410, 126.600, 126.680),  # Songdo
    (37.525, 37.560, 126.610, 126.660),  # Cheongna
    (37.400, 37.520, 126.390, 126.500),  # Yeongjong airport
    (37.395, 37.415, 126.690, 126.730),  # Namdong industrial complex
    (37.440, 37.470, 126.590, 126.615),  # Incheon port
]
STREAMS = [
    [(126.720, 37.480), (126.725, 37.510), (126.735, 37.540), (126.740, 37.570)],  # Gulpocheon
    [(126.710, 37.460), (126.695, 37.445), (126.680, 37.430)],  # Seunggicheon
    [(126.700, 37.555), (126.675, 37.560), (126.650, 37.570)],  # Gongchoncheon
]
CENTRES = [  # lat, lon, strength, sigma km: town centres of the urbanisation field
    (37.474, 126.635, 1.00, 1.8), (37.455, 126.665, 0.95, 2.0), (37.495, 126.722, 1.00, 2.0),
    (37.448, 126.725, 0.90, 1.8), (37.540, 126.728, 0.80, 1.6), (37.392, 126.645, 0.85, 1.8),
    (37.535, 126.645, 0.75, 1.3), (37.595, 126.675, 0.70, 1.5), (37.415, 126.680, 0.80, 1.5),
    (37.490, 126.675, 0.80, 1.5), (37.495, 126.495, 0.55, 1.2), (37.490, 126.530, 0.50, 1.2),
]
OLD_DOWNTOWN = {"동구", "미추홀구", "부평구"}  # plus mainland Jung-gu
AIRPORT = (37.420, 37.500, 126.400, 126.480)


def _in_boxes(lat, lon, boxes) -> np.ndarray:
    out = np.zeros(np.shape(lat), dtype=bool)
    for la0, la1, lo0, lo1 in boxes:
        out |= (lat >= la0) & (lat <= la1) & (lon >= lo0) & (lon <= lo1)
    return out


def _terrain(grid: Grid, lat, lon, rng_bumps) -> np.ndarray:
    """Smooth elevation (m) anywhere: low at the coast, hills on top, flat reclaimed land."""
    coast = polyline_distance_m(grid, lat, lon, coast_lines(grid))
    elev = 4 + 26 * (1 - np.exp(-coast / 2500)) + gaussian_bumps(grid, lat, lon, HILLS)
    elev += gaussian_bumps(grid, lat, lon, rng_bumps)
    flat = _in_boxes(lat, lon, RECLAIMED)
    return np.where(flat, 3.5 + 0.1 * (elev - 4) / 26, np.maximum(elev, 1.0))


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
    bumps = [(la, lo, h, s) for la, lo, h, s in zip(
        rng.uniform(37.35, 37.64, 40), rng.uniform(126.39, 126.80, 40), rng.normal(0, 7, 40),
        rng.uniform(0.8, 2.0, 40), strict=True)]

    # Slope comes from the terrain on the full raster (sea included), so edge cells have neighbours.
    rr, cc = np.meshgrid(np.arange(grid.n_rows), np.arange(grid.n_cols), indexing="ij")
    rlat, rlon = grid.to_latlon((cc + 0.5) * grid.size_m, (rr + 0.5) * grid.size_m)
    raster = _terrain(grid, rlat, rlon, bumps)
    gy, gx = np.gradient(raster, grid.size_m)
    slope_r = np.degrees(np.arctan(np.hypot(gx, gy)))
    rows, cols = cells["row"].to_numpy(), cells["col"].to_numpy()
    reclaimed = _in_boxes(lat, lon, RECLAIMED)
    elev = raster[rows, cols] + rng.normal(0, 1.0, n) * np.where(reclaimed, 0.4, 1.5)
    elev = np.clip(np.where(reclaimed, np.clip(elev, 0.3, 6.0), elev), 0.3, None)
    slope = np.clip(slope_r[rows, cols] * rng.lognormal(0, 0.25, n) + 0.1, 0.05, 45)

    coast = polyline_distance_m(grid, lat, lon, coast_lines(grid))
    stream = polyline_distance_m(grid, lat, lon, STREAMS)
    district = cells["district"].to_numpy()
    mainland = cells["land"].to_numpy() == "mainland"
    old = np.isin(district, list(OLD_DOWNTOWN)) | ((district == "중구") & mainland)
    airport = _in_boxes(lat, lon, [AIRPORT])

    # Urbanisation: overlapping town centres, thinned on hillsides.
    cover = np.ones(n)
    for c in CENTRES:
        cover *= 1 - gaussian_bumps(grid, lat, lon, [c])
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
    bus_stops = rng.poisson(area * (2 + 25 * urban ** 1.5))
    schools = rng.poisson(pop_night / 4500)
    vs30 = np.where(reclaimed, rng.uniform(170, 260, n),
                    np.clip(330 + 2.2 * elev + rng.normal(0, 35, n), 280, 800))
    vs30 = np.where(elev > 120, np.clip(vs30, 550, 800), vs30)

    frame = pd.DataFrame({
        "cell_id": cells["cell_id"].to_numpy(),
        "elevation_m": elev.round(1), "slope_deg": slope.round(2), "dist_coast_m": coast.round(0),
        "dist_stream_m": stream.round(0), "impervious_share": impervious.round(3),
        "drain_capacity_mmh": drain.round(1), "manhole_density_km2": manholes.round(1),
        "reclaimed": reclaimed.astype(int), "road_km_arterial": arterial.round(3),
        "road_km_collector": collector.round(3), "road_km_local": local.round(3),
        "intersections": intersections, "traffic_volume": volume.round(0),
        "bus_stops": bus_stops, "schools": schools, "commercial_share": commercial.round(3),
        "pop_day": pop_day.round(0), "pop_night": pop_night.round(0), "vs30_mps": vs30.round(0),
    })
    assert tuple(frame.columns) == STATIC.columns
    return frame.assign(urban=urban, era=era, old_downtown=old, airport=airport, area_km2=area)

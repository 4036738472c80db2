"""Geometry helpers on the grid's local metric plane."""

from __future__ import annotations

import numpy as np

from features.grid import Grid


def polyline_distance_m(grid: Grid, lat, lon, lines: list[list[tuple[float, float]]]) -> np.ndarray:
    """Distance in metres from each point to the nearest segment of any polyline of (lon, lat) vertices."""
    px, py = grid.to_xy(lat, lon)
    best = np.full(np.shape(px), np.inf)
    for line in lines:
        v = np.asarray(line, dtype=float)
        vx, vy = grid.to_xy(v[:, 1], v[:, 0])
        for ax, ay, bx, by in zip(vx[:-1], vy[:-1], vx[1:], vy[1:], strict=True):
            dx, dy = bx - ax, by - ay
            t = np.clip(((px - ax) * dx + (py - ay) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
            best = np.minimum(best, np.hypot(px - ax - t * dx, py - ay - t * dy))
    return best


def gaussian_bumps(grid: Grid, lat, lon, bumps) -> np.ndarray:
    """Sum of ``height * exp(-d^2 / 2 sigma^2)`` over bumps given as (lat, lon, height, sigma_km)."""
    px, py = grid.to_xy(lat, lon)
    out = np.zeros(np.shape(px))
    for blat, blon, height, sigma_km in bumps:
        bx, by = grid.to_xy(blat, blon)
        out += height * np.exp(-((px - bx) ** 2 + (py - by) ** 2) / (2 * (sigma_km * 1000) ** 2))
    return out


def random_points(grid: Grid, pos: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A uniform random point inside each given cell (positions into ``grid.cells``); returns lat, lon."""
    cells = grid.cells
    size = grid.size_m
    x = cells["x_m"].to_numpy()[pos] + (rng.random(len(pos)) - 0.5) * size
    y = cells["y_m"].to_numpy()[pos] + (rng.random(len(pos)) - 0.5) * size
    return grid.to_latlon(x, y)


def coast_distance_m(grid: Grid, lat, lon) -> np.ndarray:
    """Distance in metres from each point to the city's real coast (the outline's edges away from other
    municipalities' land, :mod:`features.places`); infinite for an inland city (``geography.inland``: the
    boundary data leave gaps of a few hundred metres between some neighbours, which are not sea)."""
    import shapely

    coast = grid.city.places().coast
    if coast.is_empty or grid.city.geography.inland:
        return np.full(np.shape(lat), np.inf)
    local = shapely.transform(coast, lambda xy: np.column_stack(grid.to_xy(xy[:, 1], xy[:, 0])))
    px, py = grid.to_xy(lat, lon)
    return shapely.distance(shapely.points(np.ravel(px), np.ravel(py)), local).reshape(np.shape(px))


def sigungu_codes(grid: Grid) -> np.ndarray:
    """Each cell's real 5-digit 시군구 code, as a register or a flood trace prints it: its 법정동's, which a
    boundary file's own district numbering is not; the district code where no 법정동 is known."""
    import pandas as pd

    cells = grid.cells
    real = pd.to_numeric(cells["dong_code"].str[:5], errors="coerce")
    return real.fillna(cells["district_code"]).to_numpy(dtype=np.int64)

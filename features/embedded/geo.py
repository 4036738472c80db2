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


def coast_lines(grid: Grid) -> list[list[tuple[float, float]]]:
    """Land-polygon edges facing the sea, as (lon, lat) polylines; none for an inland city.

    Every edge of an island, and either the city's explicit ``geography.coast`` lines or the mainland's
    (largest mass's) edges whose outward normal's bearing lies in the ``geography.sea_bearing`` range (e.g. Incheon's 150-340°: the Yellow Sea lies south and
    west, while its northern and eastern edges are land borders). A range may wrap through north (300-60).
    """
    geo = grid.city.geography
    masses = sorted(grid.city.land, key=lambda m: -abs(signed_area(m.polygon)))
    if geo.coast or geo.sea_bearing is None:  # explicit lines (with every island's edges), or inland
        return [list(line) for line in geo.coast] + \
            [list(m.polygon) + [m.polygon[0]] for m in masses[1:]] if geo.coast else []
    low, high = geo.sea_bearing
    lines = []
    cos = np.cos(np.radians(grid.lat0))
    for i, mass in enumerate(masses):
        ring = list(mass.polygon) + [mass.polygon[0]]
        if i > 0:
            lines.append(ring)
            continue
        area2 = signed_area(mass.polygon)  # > 0 counter-clockwise
        for a, b in zip(ring[:-1], ring[1:], strict=True):
            dx, dy = (b[0] - a[0]) * cos, b[1] - a[1]
            nx, ny = (dy, -dx) if area2 > 0 else (-dy, dx)
            bearing = np.degrees(np.arctan2(nx, ny)) % 360
            if (low <= bearing <= high) if low <= high else (bearing >= low or bearing <= high):
                lines.append([a, b])
    return lines


def signed_area(polygon) -> float:
    p = np.asarray(polygon, dtype=float)
    q = np.roll(p, -1, axis=0)
    return float(np.sum(p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]) / 2)

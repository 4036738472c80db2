"""The city grid: square land cells of ``grid_m`` metres with a stable ``cell_id``, centre and district.

Cells are laid on a local equirectangular projection centred on the city's bounding box, which is
accurate to well under a metre per kilometre at city scale and needs no projection library.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from features.city import City

EARTH_M_PER_DEG = 111_320.0


def _inside(lon: np.ndarray, lat: np.ndarray, polygon: list[tuple[float, float]]) -> np.ndarray:
    """Even-odd ray casting, vectorised over points."""
    poly = np.asarray(polygon, dtype=float)
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    inside = np.zeros(lon.shape, dtype=bool)
    for ax, ay, bx, by in zip(x0, y0, x1, y1, strict=True):
        crosses = (ay > lat) != (by > lat)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = ax + (lat - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (lon < x_at)
    return inside


@dataclass(frozen=True)
class Grid:
    """A city's land cells. Build with :func:`build_grid`; ``cells`` is the table every domain joins on."""

    city: City
    lat0: float  # latitude the projection is scaled at (the bounding box's middle)
    lon_min: float
    lat_min: float
    n_rows: int
    n_cols: int
    cells: pd.DataFrame  # cell_id, row, col, lat, lon, x_m, y_m, land, district, district_code

    @property
    def size_m(self) -> int:
        return self.city.grid_m

    @cached_property
    def _m_per_deg_lon(self) -> float:
        return EARTH_M_PER_DEG * np.cos(np.radians(self.lat0))

    def to_xy(self, lat, lon) -> tuple[np.ndarray, np.ndarray]:
        """Metres east and north of the grid's south-west corner."""
        x = (np.asarray(lon, dtype=float) - self.lon_min) * self._m_per_deg_lon
        y = (np.asarray(lat, dtype=float) - self.lat_min) * EARTH_M_PER_DEG
        return x, y

    def to_latlon(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        lat = self.lat_min + np.asarray(y, dtype=float) / EARTH_M_PER_DEG
        lon = self.lon_min + np.asarray(x, dtype=float) / self._m_per_deg_lon
        return lat, lon

    @cached_property
    def _index(self) -> np.ndarray:
        """(n_rows, n_cols) array of positions into ``cells``; -1 where there is no land cell."""
        index = np.full((self.n_rows, self.n_cols), -1, dtype=np.int64)
        index[self.cells["row"].to_numpy(), self.cells["col"].to_numpy()] = np.arange(len(self.cells))
        return index

    def locate(self, lat, lon) -> np.ndarray:
        """Position in ``cells`` of the cell holding each point, or -1 for a point outside every cell."""
        x, y = self.to_xy(np.atleast_1d(lat), np.atleast_1d(lon))
        row = np.floor(y / self.size_m).astype(np.int64)
        col = np.floor(x / self.size_m).astype(np.int64)
        ok = (row >= 0) & (row < self.n_rows) & (col >= 0) & (col < self.n_cols)
        out = np.full(row.shape, -1, dtype=np.int64)
        out[ok] = self._index[row[ok], col[ok]]
        return out

    def cell_ids(self, lat, lon) -> np.ndarray:
        """``cell_id`` of each point, ``None`` outside the city."""
        pos = self.locate(lat, lon)
        ids = self.cells["cell_id"].to_numpy()
        return np.where(pos >= 0, ids[np.clip(pos, 0, None)], None)

    def rings(self) -> np.ndarray:
        """Every cell's square as a closed ring of (lon, lat): shape (cells, 5, 2), in ``cells`` order."""
        x0 = self.cells["col"].to_numpy(dtype=float)[:, None] * self.size_m
        y0 = self.cells["row"].to_numpy(dtype=float)[:, None] * self.size_m
        dx = np.array([0, 1, 1, 0, 0])[None, :] * self.size_m
        dy = np.array([0, 0, 1, 1, 0])[None, :] * self.size_m
        lat, lon = self.to_latlon(x0 + dx, y0 + dy)
        return np.stack([lon, lat], axis=-1)

    def polygon(self, cell_id: str) -> list[tuple[float, float]]:
        """One cell's square as a closed ring of (lon, lat), for GeoJSON."""
        pos = int(np.flatnonzero(self.cells["cell_id"].to_numpy() == cell_id)[0])
        return [tuple(p) for p in self.rings()[pos].round(6).tolist()]


def build_grid(city: City) -> Grid:
    """Lay the square grid over the city's land and give every land cell its district."""
    vertices = np.array([v for land in city.land for v in land.polygon])
    lon_min, lat_min = vertices.min(axis=0)
    lon_max, lat_max = vertices.max(axis=0)
    lat0 = (lat_min + lat_max) / 2
    m_per_deg_lon = EARTH_M_PER_DEG * np.cos(np.radians(lat0))
    size = city.grid_m
    n_cols = int(np.ceil((lon_max - lon_min) * m_per_deg_lon / size))
    n_rows = int(np.ceil((lat_max - lat_min) * EARTH_M_PER_DEG / size))

    rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    x, y = (cols + 0.5) * size, (rows + 0.5) * size
    lat = lat_min + y / EARTH_M_PER_DEG
    lon = lon_min + x / m_per_deg_lon

    land = np.full(rows.shape, None, dtype=object)
    for mass in city.land:
        land[(land == None) & _inside(lon, lat, mass.polygon)] = mass.name  # noqa: E711
    keep = land != None  # noqa: E711
    rows, cols, x, y, lat, lon, land = (a[keep] for a in (rows, cols, x, y, lat, lon, land))

    district_code = np.zeros(len(rows), dtype=np.int64)
    best = np.full(len(rows), np.inf)
    for d in city.districts:
        allowed = np.isin(land, d.land)
        dist = np.hypot((lon - d.seat[0]) * m_per_deg_lon, (lat - d.seat[1]) * EARTH_M_PER_DEG)
        better = allowed & (dist < best)
        best[better], district_code[better] = dist[better], d.code
    names = {d.code: d.name for d in city.districts}

    cells = pd.DataFrame({
        "cell_id": [f"{city.code}-{size}-{r:03d}-{c:03d}" for r, c in zip(rows, cols, strict=True)],
        "row": rows.astype(np.int32), "col": cols.astype(np.int32),
        "lat": lat.round(6), "lon": lon.round(6), "x_m": x, "y_m": y,
        "land": land.astype(str), "district": [names[c] for c in district_code],
        "district_code": district_code,
    })
    return Grid(city=city, lat0=float(lat0), lon_min=float(lon_min),
                lat_min=float(lat_min), n_rows=n_rows, n_cols=n_cols, cells=cells)

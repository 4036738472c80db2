"""The city grid: square land cells of ``grid_m`` metres with a stable ``cell_id``, centre, 구 and 법정동.

Cells are laid on a local equirectangular projection centred on the city's bounding box, which is
accurate to well under a metre per kilometre at city scale and needs no projection library. A cell is land
when its centre lies inside the city's real outline (:mod:`features.places`); its 구 and 법정동 are those
of its centre, resolved once per grid, so a request stays grid arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from features.city import City
from features.errors import DataError

EARTH_M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class Grid:
    """A city's land cells. Build with :func:`build_grid`; ``cells`` is the table every domain joins on."""

    city: City
    lat0: float  # latitude the projection is scaled at (the bounding box's middle)
    lon_min: float
    lat_min: float
    n_rows: int
    n_cols: int
    cells: pd.DataFrame  # cell_id, row, col, lat, lon, x_m, y_m, land, district, district_code, dong, dong_code

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

    def _at(self, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        ok = (row >= 0) & (row < self.n_rows) & (col >= 0) & (col < self.n_cols)
        out = np.full(row.shape, -1, dtype=np.int64)
        out[ok] = self._index[row[ok], col[ok]]
        return out

    def locate(self, lat, lon) -> np.ndarray:
        """Position in ``cells`` of the cell holding each point, or -1 for a point off the city's land.

        A point on land whose own square's centre lies in the sea (a coastal sliver) is given the nearest
        land cell next to it; a point at sea or beyond the outline gets -1."""
        lat, lon = np.atleast_1d(lat), np.atleast_1d(lon)
        x, y = self.to_xy(lat, lon)
        row = np.floor(y / self.size_m).astype(np.int64)
        col = np.floor(x / self.size_m).astype(np.int64)
        out = self._at(row, col)
        miss = np.flatnonzero(out < 0)
        if not len(miss):  # the usual case: grid arithmetic alone
            return out
        miss = miss[self.city.places().contains(lat[miss], lon[miss])]
        best = np.full(len(miss), np.inf)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                pos = self._at(row[miss] + dr, col[miss] + dc)
                d = np.hypot((col[miss] + dc + 0.5) * self.size_m - x[miss], (row[miss] + dr + 0.5) * self.size_m - y[miss])
                better = (pos >= 0) & (d < best)
                best[better] = d[better]
                out[miss[better]] = pos[better]
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


def _id_width(n_rows: int, n_cols: int) -> int:
    """Digits of a cell id's row and column: three, more when a large city (islands on, 100 m) needs them."""
    return max(3, len(str(max(n_rows, n_cols) - 1)))


def build_grid(city: City) -> Grid:
    """Lay the square grid over the city's real outline; every cell whose centre is on land, with its 구 and
    법정동 (today's codes and names). ``land`` is ``mainland`` on the largest land mass, else ``island``."""
    import shapely

    places = city.places()
    lon_min, lat_min, lon_max, lat_max = places.outline.bounds
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
    keep = places.contains(lat, lon)
    if not keep.any():
        raise DataError(f"city {city.name}: its boundary covers no land cell at a {size} m grid "
                        "(every cell's centre falls outside it); choose a smaller grid_m")
    rows, cols, x, y, lat, lon = (a[keep] for a in (rows, cols, x, y, lat, lon))

    parts = sorted(shapely.get_parts(places.outline), key=lambda g: -g.area)
    land = np.where(shapely.contains_xy(parts[0], lon, lat), "mainland", "island")
    names = places.assign(lat, lon)
    # A centre on the outline's edge but in no district polygon (their unions differ by slivers): the
    # district of the nearest cell that has one.
    missing = np.flatnonzero(names["district_code"] == None)  # noqa: E711
    if len(missing):
        have = np.flatnonzero(names["district_code"] != None)  # noqa: E711
        near = have[np.argmin(np.hypot(x[missing, None] - x[None, have], y[missing, None] - y[None, have]), axis=1)]
        for key in names:
            names[key][missing] = np.where(names[key][missing] == None, names[key][near], names[key][missing])  # noqa: E711

    width = _id_width(n_rows, n_cols)
    cells = pd.DataFrame({
        "cell_id": [f"{city.code}-{size}-{r:0{width}d}-{c:0{width}d}" for r, c in zip(rows, cols, strict=True)],
        "row": rows.astype(np.int32), "col": cols.astype(np.int32),
        "lat": lat.round(6), "lon": lon.round(6), "x_m": x, "y_m": y,
        "land": land, "district": names["district"].astype(str),
        "district_code": names["district_code"].astype(np.int64),
        "dong": names["dong"].astype(str), "dong_code": names["dong_code"].astype(str),
    })
    return Grid(city=city, lat0=float(lat0), lon_min=float(lon_min),
                lat_min=float(lat_min), n_rows=n_rows, n_cols=n_cols, cells=cells)

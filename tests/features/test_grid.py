"""The city config and its grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from features.city import load_city
from features.errors import DataError
from features.grid import build_grid

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="module")
def grid():
    return build_grid(load_city("incheon"))


def test_incheon_grid_covers_mainland_and_yeongjong(grid):
    cells = grid.cells
    assert set(cells["land"]) == {"mainland", "yeongjong"}
    assert 1500 < len(cells) < 3000  # ~ 550 km2 of land at 0.25 km2 a cell
    assert cells["cell_id"].is_unique
    assert set(cells.loc[cells["land"] == "yeongjong", "district"]) == {"중구"}
    assert cells["district"].nunique() == 8


def test_cell_ids_are_stable_and_encode_size_row_col(grid):
    again = build_grid(load_city("incheon"))
    assert grid.cells["cell_id"].tolist() == again.cells["cell_id"].tolist()
    first = grid.cells.iloc[0]
    assert first["cell_id"] == f"ICN-500-{first['row']:03d}-{first['col']:03d}"


def test_locate_round_trips_cell_centres_and_rejects_outside_points(grid):
    cells = grid.cells.sample(200, random_state=0)
    pos = grid.locate(cells["lat"].to_numpy(), cells["lon"].to_numpy())
    assert (grid.cells["cell_id"].to_numpy()[pos] == cells["cell_id"].to_numpy()).all()
    # Incheon ASOS station is on land; a point in the Yellow Sea and one in Seoul are not in the city.
    ids = grid.cell_ids([37.4777, 37.3, 37.5665], [126.6249, 126.2, 126.9780])
    assert ids[0] is not None and ids[1] is None and ids[2] is None


def test_cell_polygon_is_a_closed_square_of_grid_size(grid):
    cell = grid.cells.iloc[10]
    ring = grid.polygon(cell["cell_id"])
    assert ring[0] == ring[-1] and len(ring) == 5
    lons, lats = np.array(ring).T
    width_m = (lons.max() - lons.min()) * 111_320 * np.cos(np.radians(cell["lat"]))
    height_m = (lats.max() - lats.min()) * 111_320
    assert width_m == pytest.approx(500, rel=0.01) and height_m == pytest.approx(500, rel=0.01)


def test_grid_size_comes_from_config_and_can_be_overridden():
    coarse = build_grid(load_city("incheon", grid_m=2000))
    assert coarse.size_m == 2000
    assert 80 < len(coarse.cells) < 200


def test_another_city_is_another_file():
    city = load_city(str(FIXTURES / "cities" / "testville.toml"))
    grid = build_grid(city)
    assert city.name == "Testville" and grid.size_m == 1000
    # 0.1 deg lon x 0.05 deg lat at 36 N is about 9.0 km x 5.6 km: 9 x 6 cells, all land.
    assert len(grid.cells) == 54
    assert grid.cells["cell_id"].str.startswith("TST-1000-").all()
    assert set(grid.cells["district"]) == {"서", "동"}


def test_unknown_city_is_a_clear_error():
    with pytest.raises(DataError, match="no such city config.*incheon"):
        load_city("atlantis")

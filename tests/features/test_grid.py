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


def test_incheon_grid_covers_its_real_districts_without_the_islands(grid):
    cells = grid.cells
    assert set(cells["land"]) == {"mainland", "island"}
    # Incheon without 강화군 and 옹진군 is about 470 km² of land: ~1,900 cells of 0.25 km².
    assert 1600 < len(cells) < 2200
    assert cells["cell_id"].is_unique
    assert set(cells["district"]) == {"제물포구", "영종구", "미추홀구", "연수구", "남동구", "부평구", "계양구", "서해구",
                                      "검단구"}
    # 영종도 is the biggest island and all of it is 영종구; no cell of the mainland is
    yeongjong = cells.loc[cells["district"] == "영종구"]
    assert (yeongjong["land"] == "island").all() and yeongjong["lon"].max() < 126.6
    assert cells["dong_code"].str.fullmatch(r"\d{10}").all()
    assert (cells["dong_code"].str[:5] == cells["district_code"].astype(str)).all()


def test_cell_ids_are_stable_and_encode_size_row_col(grid):
    again = build_grid(load_city("incheon"))
    assert grid.cells["cell_id"].tolist() == again.cells["cell_id"].tolist()
    first = grid.cells.iloc[0]
    assert first["cell_id"] == f"ICN-500-{first['row']:03d}-{first['col']:03d}"


def test_locate_round_trips_cell_centres_and_rejects_outside_points(grid):
    cells = grid.cells.sample(200, random_state=0)
    pos = grid.locate(cells["lat"].to_numpy(), cells["lon"].to_numpy())
    assert (grid.cells["cell_id"].to_numpy()[pos] == cells["cell_id"].to_numpy()).all()
    # Incheon ASOS station is on land; a point in the Yellow Sea, one in Seoul and one on 강화도 (off by
    # default) are not in the city.
    ids = grid.cell_ids([37.4777, 37.3, 37.5665, 37.7467], [126.6249, 126.2, 126.9780, 126.4880])
    assert ids[0] is not None and ids[1] is None and ids[2] is None and ids[3] is None


def test_no_cell_lies_in_the_sea(grid):
    """Every cell's centre is on the city's real land (the outline), and the sea off Songdo is not a cell."""
    places = grid.city.places()
    assert places.contains(grid.cells["lat"], grid.cells["lon"]).all()
    assert grid.locate([37.36], [126.55])[0] == -1  # the Yellow Sea west of Songdo


def test_a_point_on_land_in_a_coastal_cell_finds_the_land_cell_next_to_it(grid):
    """A point of the outline whose own square's centre is at sea is given the nearest land cell."""
    places = grid.city.places()
    x, y = np.meshgrid(np.arange(grid.n_cols), np.arange(grid.n_rows))
    lat, lon = grid.to_latlon((x.ravel() + 0.5) * grid.size_m, (y.ravel() + 0.5) * grid.size_m)
    at_sea = ~places.contains(lat, lon)
    # a point 100 m from a sea-centred square's centre towards land, inside the outline
    import shapely

    boundary = shapely.boundary(places.outline)
    near = shapely.distance(shapely.points(lon[at_sea], lat[at_sea]), boundary) < 0.001
    la, lo = lat[at_sea][near], lon[at_sea][near]
    snapped = shapely.get_coordinates(shapely.shortest_line(shapely.points(lo, la), places.outline))[1::2]
    inside = places.contains(snapped[:, 1] + 0, snapped[:, 0])
    pos = grid.locate(snapped[inside, 1], snapped[inside, 0])
    assert len(pos) > 10 and (pos >= 0).mean() > 0.95


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
    # Its boundary file (UTM-K metres): 0.1 deg lon x 0.05 deg lat at 36 N is about 9.0 km x 5.6 km: 9 x 6
    # cells, all land, in the file's two districts, each with the 법정동 of Korea's boundaries it lies in.
    assert len(grid.cells) == 54
    assert grid.cells["cell_id"].str.startswith("TST-1000-").all()
    assert set(grid.cells["district"]) == {"서", "동"}
    assert set(grid.cells["district_code"]) == {1, 2}
    assert (grid.cells.loc[grid.cells["lon"] < 127.05, "district"] == "서").all()
    assert grid.cells["dong"].str.endswith(("동", "면", "읍", "가")).all()


def test_unknown_city_is_a_clear_error():
    with pytest.raises(DataError, match="no such city config.*incheon"):
        load_city("atlantis")

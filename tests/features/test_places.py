"""Real administrative geography: today's codes and names through their history, a city's outline from its
시군구 codes or its own boundary file, and the errors a bad boundary gets."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from features.city import load_city
from features.errors import DataError
from features.grid import build_grid
from features.places import codes

FIXTURES = Path(__file__).parents[1] / "fixtures"
TESTVILLE = (FIXTURES / "cities" / "testville.toml").read_text(encoding="utf-8")


def names(found) -> list[tuple[str, str]]:
    return [(c.code, c.name) for c in found]


def test_a_renamed_district_resolves_to_its_current_code_and_name():
    assert names(codes.current("28170")) == [("28177", "미추홀구")]  # 남구 -> 미추홀구, 2018-07-01
    assert names(codes.current("28170", on=date(2017, 1, 1))) == [("28170", "남구")]
    # its 법정동 follow it under the same last digits: 남구 숭의동 (8 and 10 digits, and a PNU)
    assert names(codes.current("28170101")) == [("28177101", "숭의동")]
    assert names(codes.current("2817010100")) == [("28177101", "숭의동")]
    assert names(codes.current("2817010100100010000")) == [("28177101", "숭의동")]
    assert names(codes.current("47720")) == [("27720", "군위군")]  # to 대구광역시 on 2023-07-01


def test_a_split_district_resolves_by_its_dong():
    """중구 ended on 2026-06-30: its old town went to 제물포구, 영종도 to 영종구; 서구 became 서해구 and 검단구."""
    assert names(codes.current("28110")) == [("28125", "제물포구"), ("28155", "영종구")]
    assert names(codes.current("28110147")) == [("28155103", "운서동")]  # the airport
    assert names(codes.current("28110109")) == [("28125116", "관동1가")]
    assert names(codes.current("28140107")) == [("28125107", "송림동")]  # 동구 -> 제물포구
    assert names(codes.current("28260107")) == [("28275105", "심곡동")]
    assert names(codes.current("28260114")) == [("28290104", "당하동")]
    assert names(codes.current("28110", on=date(2026, 6, 30))) == [("28110", "중구")]
    assert "28125 제물포구, 28155 영종구" in codes.describe_retired("28110")


@pytest.mark.parametrize("bad", ["2811", "28110a", "281101470"])
def test_a_code_of_the_wrong_shape_is_refused(bad):
    with pytest.raises(ValueError, match="administrative code"):
        codes.normalise(bad)


def test_places_resolve_any_name_or_code_a_source_uses_to_the_current_district():
    places = load_city("incheon").places()
    assert places.resolve("남구") == ("28177",) and places.resolve("28170") == ("28177",)
    assert places.resolve("중구") == ("28125", "28155")  # a name alone cannot say which half
    assert places.resolve("2811014700") == ("28155",)  # a flood trace's EMD_CD can
    assert places.resolve("2826011400") == ("28290",)
    assert places.resolve("부산진구") == () and places.resolve("26230") == ()  # not Incheon's


def _city(tmp_path, boundary: str, extra_files: dict[str, bytes] | None = None) -> Path:
    text = TESTVILLE.split("# Its own boundary file")[0] + boundary + "\n[[weather_stations]]" + \
        TESTVILLE.split("[[weather_stations]]", 1)[1]
    for name, data in (extra_files or {}).items():
        (tmp_path / name).write_bytes(data)
    path = tmp_path / "city.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_retired_code_in_a_config_names_what_replaced_it(tmp_path):
    path = _city(tmp_path, "[boundary]\nsigungu = [28110, 28185]\n")
    with pytest.raises(DataError, match=r"28110 중구 ended on 2026-06-30; replaced by 28125 제물포구, 28155 영종구"):
        load_city(str(path))
    with pytest.raises(DataError, match="unknown 시군구 code 99999"):
        load_city(str(_city(tmp_path, "[boundary]\nsigungu = [99999]\n")))


def test_islands_are_a_config_away(tmp_path):
    """옹진군 (with 백령도, 170 km west) on: the grid grows to thousands of columns at 100 m, ids stay unique."""
    path = _city(tmp_path, "[boundary]\nsigungu = [28185, 28720]\n")
    city = load_city(str(path), grid_m=100)
    grid = build_grid(city)
    assert grid.n_cols > 1000 and grid.cells["cell_id"].is_unique
    assert grid.cells["cell_id"].str.fullmatch(r"TST-100-\d{4}-\d{4}").all()
    baengnyeong = grid.locate([37.9666], [124.6633])  # 백령도
    assert baengnyeong[0] >= 0 and grid.cells.iloc[baengnyeong[0]]["district"] == "옹진군"


def _shapefile(tmp_path: Path, crs: str | None, field: str = "GU_NM") -> Path:
    import pyogrio.raw
    import shapely

    square = shapely.box(127.00, 36.00, 127.10, 36.05)
    path = tmp_path / "gu.shp"
    pyogrio.raw.write(str(path), np.array([shapely.to_wkb(square)], dtype=object),
                      field_data=[np.array(["서"], dtype=object)], fields=[field], crs=crs,
                      driver="ESRI Shapefile", geometry_type="Polygon")
    return path


def test_a_boundary_file_without_a_crs_or_the_named_field_is_refused_naming_it(tmp_path):
    _shapefile(tmp_path, crs=None)
    path = _city(tmp_path, '[boundary]\nfile = "gu.shp"\ndistrict_field = "GU_NM"\n')
    with pytest.raises(DataError, match=r"gu\.shp declares no CRS.*boundary\.crs"):
        load_city(str(path))
    # ...and with the CRS given it loads
    path = _city(tmp_path, '[boundary]\nfile = "gu.shp"\ndistrict_field = "GU_NM"\ncrs = "EPSG:4326"\n')
    assert set(build_grid(load_city(str(path))).cells["district"]) == {"서"}
    path = _city(tmp_path, '[boundary]\nfile = "gu.shp"\ndistrict_field = "SGG_NM"\ncrs = "EPSG:4326"\n')
    with pytest.raises(DataError, match=r"gu\.shp has no field 'SGG_NM' \(fields: GU_NM\)"):
        load_city(str(path))
    path = _city(tmp_path, '[boundary]\nfile = "missing.geojson"\ndistrict_field = "GU_NM"\n')
    with pytest.raises(DataError, match=r"boundary file .*missing\.geojson not found"):
        load_city(str(path))


def test_a_boundary_that_covers_no_land_cell_is_refused_naming_the_city(tmp_path):
    tiny = ('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"n":"작은"},"geometry":'
            '{"type":"Polygon","coordinates":[[[127.0001,36.0001],[127.0011,36.0001],[127.0011,36.0011],'
            '[127.0001,36.0011],[127.0001,36.0001]]]}}]}')
    path = _city(tmp_path, '[boundary]\nfile = "tiny.geojson"\ndistrict_field = "n"\n',
                 {"tiny.geojson": tiny.encode()})
    with pytest.raises(DataError, match=r"Testville: its boundary covers no land cell at a 1000 m grid"):
        build_grid(load_city(str(path)))


def test_a_config_gives_either_codes_or_a_file(tmp_path):
    with pytest.raises(DataError, match="either sigungu"):
        load_city(str(_city(tmp_path, "[boundary]\n")))
    with pytest.raises(DataError, match="needs district_field"):
        load_city(str(_city(tmp_path, '[boundary]\nfile = "x.geojson"\n')))


def test_inland_cities_have_no_coast_and_coastal_ones_do():
    assert not load_city("incheon").places().coast.is_empty
    assert not load_city("busan").places().coast.is_empty
    daejeon = build_grid(load_city("daejeon", grid_m=2000))
    from features.embedded.geo import coast_distance_m

    assert np.isinf(coast_distance_m(daejeon, daejeon.cells["lat"], daejeon.cells["lon"])).all()
    incheon = build_grid(load_city("incheon", grid_m=2000))
    coast = coast_distance_m(incheon, incheon.cells["lat"], incheon.cells["lon"])
    # Songdo's sea front is coast, Bupyeong's 부평구청 (5 km inland of any shore) is not
    songdo = incheon.locate([37.382], [126.660])[0]
    bupyeong = incheon.locate([37.507], [126.722])[0]
    assert coast[songdo] < 2500 < 5000 < coast[bupyeong]


def test_an_aws_numbered_as_an_asos_station_is_refused(tmp_path):
    text = TESTVILLE.replace('kind = "asos"', 'kind = "aws"').replace("id = 1\n", "id = 277\n", 1)
    path = tmp_path / "city.toml"
    path.write_text(text.replace('file = "testville_boundary.geojson"',
                                 f'file = "{FIXTURES / "cities" / "testville_boundary.geojson"}"'), encoding="utf-8")
    with pytest.raises(DataError, match=r"id = 277 .* is KMA's ASOS station 영덕"):
        load_city(str(path))


def test_any_address_or_code_a_source_prints_finds_its_current_district_and_dong():
    places = load_city("incheon").places()
    assert places.place_of("인천광역시 중구 운서동 2850") == ("28155", "2815510300")  # TAAS 시군구, old 중구
    assert places.place_of("인천 중구 신흥동3가 7-1") == ("28125", "2812513500")  # AirKorea 주소
    assert places.place_of("인천광역시 남구 주안동") == ("28177", "2817710600")
    assert places.place_of("인천광역시 서구 당하동") == ("28290", "2829010400")
    assert places.place_of("인천광역시 중구") == (None, None)  # which half of the old 중구 cannot be told
    assert places.place_of("인천광역시 부평구") == ("28237", None)
    assert places.place_of("2811014700") == ("28155", "2815510300")  # a flood trace's EMD_CD
    assert places.place_of("2826010700100120003") == ("28275", "2827510500")  # a PNU in old 서구 심곡동
    assert places.place_of("부산광역시 해운대구 우동") == (None, None)


@pytest.mark.parametrize("name", ["incheon", "busan", "daejeon", "pohang", "suwon"])
def test_built_in_stations_are_numbered_as_kma_lists_them(name):
    """Every built-in ASOS station is KMA's station of that number and name; no AWS carries an ASOS number."""
    from features.city import kma_asos_stations

    asos = kma_asos_stations()
    for station in load_city(name).weather_stations:
        if station.kind == "asos":
            assert asos.get(station.id) == station.name, station
        else:
            assert station.id not in asos, station


def test_an_unknown_code_finds_no_place_rather_than_failing():
    places = load_city("incheon").places()
    assert places.place_of("99999999") == (None, None) and places.place_of("9999999999") == (None, None)
    assert places.resolve("99999999") == ()

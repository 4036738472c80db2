"""A city drawn by its own boundary file (GeoJSON in UTM-K metres, districts named in a field): generate its
weather and static layers, check and import a TAAS accident export in the portal's layout, and build the
traffic features from it, through the CLI. Accidents off the city's outline are named and never used; old
district names (남구) are known."""

from __future__ import annotations

import json

import pandas as pd
from pyproj import Transformer
from typer.testing import CliRunner

from features.build import table_path
from features.store import read_table
from urban_safety.cli import app

runner = CliRunner()
CITY = """
name = "Bupyeong-Gyeyang"
code = "BPG"
grid_m = 1000
domains = ["traffic"]

[boundary]
file = "gu.geojson"
district_field = "SGG_NM"
district_code_field = "SGG_CD"

[[weather_stations]]
id = 112
name = "인천"
kind = "asos"
lon = 126.6249
lat = 37.4777
nx = 55
ny = 124

[[air_stations]]
code = 823656
name = "부평"
region = "인천 부평구"
lon = 126.7230
lat = 37.4980

[seismic_region]
lon = [126.0, 128.0]
lat = [36.5, 38.5]
"""
# Two boxes standing in for 부평구 (south) and 계양구 (north), in UTM-K metres (EPSG:5179).
BOXES = {("부평구", "28237"): (126.69, 37.47, 126.76, 37.52), ("계양구", "28245"): (126.69, 37.52, 126.76, 37.56)}


def _boundary() -> str:
    to_utmk = Transformer.from_crs("EPSG:4326", "EPSG:5179", always_xy=True)
    features = []
    for (name, code), (x0, y0, x1, y1) in BOXES.items():
        ring = [to_utmk.transform(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
        features.append({"type": "Feature", "properties": {"SGG_NM": name, "SGG_CD": code},
                         "geometry": {"type": "Polygon", "coordinates": [[[round(x, 1), round(y, 1)] for x, y in ring]]}})
    return json.dumps({"type": "FeatureCollection", "name": "gu",
                       "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::5179"}},
                       "features": features}, ensure_ascii=False)


def _accidents(n_inside: int) -> pd.DataFrame:
    """TAAS rows as the portal prints them: most in the city, two in Seoul (off the outline)."""
    times = pd.date_range("2021-02-01 08:00", periods=n_inside + 2, freq="37h")
    lon = [126.70 + 0.05 * (i % 7) / 6 for i in range(n_inside)] + [126.978, 126.990]
    lat = [37.48 + 0.07 * (i % 5) / 4 for i in range(n_inside)] + [37.566, 37.570]
    sigungu = ["인천광역시 부평구 부평동", "인천광역시 계양구 계산동", "인천광역시 남구 주안동"]
    return pd.DataFrame({
        "사고일시": [f"{t.year}년 {t.month}월 {t.day}일 {t.hour:02d}시" for t in times],
        "요일": "월요일", "기상상태": "맑음",
        "시군구": [sigungu[i % 3] for i in range(n_inside)] + ["서울특별시 중구 태평로1가"] * 2,
        "도로형태": "단일로 - 기타", "노면상태": "건조", "사고유형": "차대차 - 추돌",
        "사망자수": 0, "중상자수": 1, "경상자수": 1, "부상신고자수": 0, "ECLO": 8, "경도": lon, "위도": lat,
    })


def test_a_boundary_file_city_imports_accidents_and_builds_traffic_features(tmp_path):
    (tmp_path / "city.toml").write_text(CITY, encoding="utf-8")
    (tmp_path / "gu.geojson").write_text(_boundary(), encoding="utf-8")
    data = tmp_path / "data"
    env = {"URBAN_SAFETY_CITY": str(tmp_path / "city.toml"), "URBAN_SAFETY_DATA_DIR": str(data),
           "URBAN_SAFETY_YEARS": "1", "URBAN_SAFETY_START": "2021-01-01", "COLUMNS": "300"}
    generated = runner.invoke(app, ["data", "generate"], env=env)
    assert generated.exit_code == 0, generated.output

    n = 40
    export = tmp_path / "TAAS_2021.csv"
    _accidents(n).to_csv(export, index=False, encoding="cp949")
    checked = runner.invoke(app, ["data", "check", "--source", "taas", str(export)], env=env)
    assert checked.exit_code == 0, checked.output
    assert "2 of 42 rows lie outside Bupyeong-Gyeyang's land cells" in " ".join(checked.output.split())

    imported = runner.invoke(app, ["data", "import", "--source", "taas", str(export)], env=env)
    assert imported.exit_code == 0, imported.output
    built = runner.invoke(app, ["features", "build", "--domain", "traffic"], env=env)
    assert built.exit_code == 0, built.output
    table = read_table(table_path(data / "features", "traffic"))
    assert table["accidents"].sum() == n  # every accident on the city's land, none of Seoul's
    assert set(table["cell_id"].str[:8]) == {"BPG-1000"}

    # a file with no row on the city's land: check says so, import refuses it, naming the city
    seoul = tmp_path / "TAAS_seoul.csv"
    _accidents(0).to_csv(seoul, index=False, encoding="cp949")
    said = runner.invoke(app, ["data", "check", "--source", "taas", str(seoul)], env=env)
    assert said.exit_code == 0 and "no row's coordinates lie in Bupyeong-Gyeyang" in " ".join(said.output.split())
    refused = runner.invoke(app, ["data", "import", "--source", "taas", str(seoul)], env=env)
    assert refused.exit_code == 1 and "nothing imported" in refused.output
    assert table_path(data / "features", "traffic").exists()

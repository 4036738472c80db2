"""Files in the layouts the Korean portals deliver (copies of shared/cases/real_formats in
tests/fixtures/real_formats) load with the right values, and so does each kind beyond the exact file:
other containers (XLSX with title rows, HTML saved as .xls, GeoJSON, GeoPackage), other CRSs, other
time layouts and header aliases."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd
import pytest

from features.errors import DataError
from features.sources import load_files
from features.sources.check import check_files
from features.sources.placement import place_buildings

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "real_formats"


def test_airkorea_api_items_by_station_name_with_missing_markers(city):
    frame = load_files("airkorea", [REAL / "airkorea_api_items_no_stationCode.csv"])
    assert frame["station_code"].isna().all()
    assert frame["station_name"].tolist() == ["정릉로", "도봉구", "은평구"]
    assert frame["time"].eq(pd.Timestamp("2024-03-06 12:00")).all()
    assert frame["pm10"].tolist()[::2] == [22.0, 13.0] and np.isnan(frame["pm10"][1])  # "-" / 통신장애
    assert frame["pm25"].tolist()[::2] == [8.0, 10.0] and np.isnan(frame["pm25"][1])
    (report,) = check_files("airkorea", [REAL / "airkorea_api_items_no_stationCode.csv"], city=city)
    assert report.ok and report.unmatched == ["정릉로", "도봉구", "은평구"]
    assert not any("no values" in p or "duplicate" in p for p in report.problems)  # name-only rows are values
    assert any('[[air_stations]] code = <측정소코드' in p and 'name = "정릉로"' in p for p in report.problems)


def test_airkorea_station_matched_by_name_to_the_city(city, tmp_path):
    path = tmp_path / "api.json"
    items = [{"stationName": "구월동", "dataTime": "2024-03-06 24:00", "pm10Value": "41", "pm25Value": "점검및교정"}]
    path.write_text(json.dumps({"response": {"header": {"resultCode": "00"}, "body": {"items": items}}}),
                    encoding="utf-8")
    (report,) = check_files("airkorea", [path], city=city)
    assert report.ok and report.container == "API JSON response" and report.matched == ["구월동 (823655)"]
    frame = load_files("airkorea", [path])
    assert frame["time"][0] == pd.Timestamp("2024-03-07 00:00") and np.isnan(frame["pm25"][0])


def test_api_error_response_is_one_line_naming_it(tmp_path):
    path = tmp_path / "err.json"
    path.write_text('{"response": {"header": {"resultCode": "03", "resultMsg": "NO_DATA"}}}', encoding="utf-8")
    with pytest.raises(DataError, match="API JSON response is an error: resultCode 03 NO_DATA"):
        load_files("nowcast", [path])


def test_aws_export_with_only_the_ticked_elements():
    frame = load_files("aws", [REAL / "aws_rain_only_export.csv"])
    assert frame["station_id"].eq(401).all() and frame["rain_mm"].eq(0.0).all()
    assert frame["temp_c"].isna().all() and frame["wind_ms"].isna().all()
    assert frame["time"].tolist() == list(pd.date_range("2021-08-31 00:00", periods=3, freq="h"))


def test_building_register_bulk_text_without_header():
    frame = load_files("buildings", [REAL / "buildings_mart_djy_03_pipe_noheader_cp949.txt"])
    row = frame.iloc[0]
    assert (row["purpose"], row["structure"], row["floor_area_m2"], row["floors_above"], row["floors_below"]) == \
        ("단독주택", "벽돌구조", 130.01, 2, 0)
    assert row["approval_date"] == pd.Timestamp("1991-01-23") and pd.isna(row["seismic_design"])
    assert row["pnu"] == "2800025000101230000" and np.isnan(row["lat"])
    assert frame.attrs["read"]["layout"].startswith("표제부 bulk text")


def test_building_register_api_fields_placed_by_parcel_or_address():
    frame = load_files("buildings", [REAL / "buildings_api_getBrTitleInfo_no_coordinates.csv"])
    row = frame.iloc[0]
    assert (row["sgg_cd"], row["purpose"], row["structure"], row["floor_area_m2"]) == (11620, "단독주택", "철근콘크리트구조",
                                                                                    299.36)
    assert (row["floors_above"], row["floors_below"], row["height_m"]) == (3, 1, 11.2)
    assert row["approval_date"] == pd.Timestamp("2018-07-27") and bool(row["seismic_design"])
    assert row["pnu"] == "1162010200116330025"  # 11620 + 10200 + 1 (대지) + 1633 + 0025
    _, report = place_buildings(frame, None, None)
    assert report.unplaced == 1 and "no parcel or footprint layer" in " ".join(report.lines())
    parcels = pd.DataFrame({"pnu": ["1162010200116330025"], "lat": [37.47], "lon": [126.95]})
    placed, report = place_buildings(frame, parcels, None)
    assert report.by_pnu == 1 and placed["lat"][0] == 37.47
    addresses = pd.DataFrame({"address": ["서울특별시  관악구 ○○동 0000-00번지"], "lat": [37.48], "lon": [126.94]})
    placed, report = place_buildings(frame, None, addresses)
    assert report.by_address == 1 and placed["lon"][0] == 126.94


@pytest.mark.parametrize(("name", "onset", "emd", "grade"), [
    ("flood_sat_tm_hhmm.csv", [pd.Timestamp("2022-08-08 18:00"), pd.Timestamp("2002-08-31 16:00")], [None, None], [2, 3]),
    ("flood_emd_cd_8_digits.csv", [pd.NaT], [1159010700], [2]),
    ("flood_grade_5.csv", [pd.NaT], [None], [5]),
])
def test_flood_trace_attribute_variants(name, onset, emd, grade):
    frame = load_files("flood_traces", [REAL / name])
    assert frame["onset"].tolist() == onset or all(pd.isna(frame["onset"]))
    assert [None if pd.isna(v) else int(v) for v in frame["emd_cd"]] == emd
    assert frame["grade"].tolist() == grade


def test_flood_sat_tm_2400_is_midnight_ending_the_day(tmp_path):
    text = (REAL / "flood_sat_tm_hhmm.csv").read_text(encoding="utf-8-sig").replace(",1800,", ",2400,").replace(
        ",1600,", ",6,")
    path = tmp_path / "t.csv"
    path.write_text(text, encoding="utf-8")
    frame = load_files("flood_traces", [path])
    assert frame["onset"].tolist() == [pd.Timestamp("2022-08-09 00:00"), pd.Timestamp("2002-08-31 06:00")]


def test_flood_traces_shapefile_in_web_mercator():
    frame = load_files("flood_traces", [REAL / "flood_traces_as_shapefile.shp"])
    assert len(frame) == 10 and frame.attrs["read"]["container"] == "Shapefile"
    first = frame.iloc[0]
    assert (first["depth_m"], first["grade"], first["cause"]) == (1.24, 3, "농경지 침수 및 농작물 피해, 하우스 파손")
    assert first["onset"] == pd.Timestamp("2002-08-31 16:00") and first["emd_cd"] == 4713037000
    assert abs(first["lat"] - 35.98016) < 1e-4 and abs(first["lon"] - 129.28387) < 1e-4  # from EPSG:3857


def test_shapefile_import_brings_its_sidecars(tmp_path):
    from features.city import load_city
    from features.sources import Sources, source_files
    from features.sources.check import import_files

    # the file's traces lie in 동작구 (Seoul) and 경주시: a city of those two 시군구 takes them, Incheon would not
    testville = (Path(__file__).parents[2] / "fixtures" / "cities" / "testville.toml").read_text(encoding="utf-8")
    config = testville.split("# Its own boundary file")[0] + "[boundary]\nsigungu = [11590, 47130]\n\n" + \
        "[[weather_stations]]" + testville.split("[[weather_stations]]", 1)[1]
    (tmp_path / "city.toml").write_text(config, encoding="utf-8")
    city = load_city(str(tmp_path / "city.toml"), grid_m=2000)
    reports = import_files("flood_traces", [REAL / "flood_traces_as_shapefile.shp"], tmp_path / "raw", city=city)
    assert all(r.ok for r in reports), reports
    folder = tmp_path / "raw" / "flood_traces"
    assert sorted(p.suffix for p in folder.iterdir()) == [".dbf", ".prj", ".shp", ".shx"]
    assert [p.name for p in source_files(tmp_path / "raw", "flood_traces")] == [
        "FLUD_TRACE_flood_traces_as_shapefile.shp"]
    assert len(Sources(tmp_path / "raw", city)["flood_traces"]) == 10


@pytest.mark.parametrize(("crs", "driver", "suffix"), [("EPSG:5186", "ESRI Shapefile", ".shp"),
                                                       ("EPSG:5179", "GeoJSON", ".geojson"),
                                                       ("EPSG:4326", "GPKG", ".gpkg"),
                                                       ("EPSG:5186", "GML", ".gml")])
def test_flood_trace_layers_in_any_crs_and_container(tmp_path, crs, driver, suffix):
    import pyogrio
    import shapely
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(126.70, 37.45)
    square = shapely.box(x - 50, y - 50, x + 50, y + 50) if crs != "EPSG:4326" else shapely.Point(x, y)
    path = tmp_path / f"FLUD_TRACE_x{suffix}"
    fields = {"FLUD_SHIM": ["0.5"], "FLUD_GD": ["1"], "FLUD_YEAR": ["2020"], "FLUD_NM2": ["하수 역류"],
              "SAT_DATE": ["20200801"], "END_DATE": ["20200801"], "SAT_TM": ["0930"], "SGG_CD": ["28200"]}
    pyogrio.raw.write(str(path), np.array([shapely.to_wkb(square)], dtype=object),
                      [np.array(v, dtype=object) for v in fields.values()], list(fields), crs=crs, driver=driver,
                      geometry_type="Polygon" if crs != "EPSG:4326" else "Point",
                      **({"encoding": "cp949"} if driver == "ESRI Shapefile" else {}))
    frame = load_files("flood_traces", [path])
    assert abs(frame["lat"][0] - 37.45) < 1e-5 and abs(frame["lon"][0] - 126.70) < 1e-5
    assert frame["cause"][0] == "하수 역류" and frame["onset"][0] == pd.Timestamp("2020-08-01 09:30")


def test_nowcast_api_json_with_rn1_categories():
    frame = load_files("nowcast", [REAL / "nowcast_getUltraSrtFcst_rn1_categories.json"])
    assert frame["rain_mm"].tolist() == [0.0, 0.5, 3.5, 12.0, 40.0, 50.0]  # T1H row dropped
    # Issued at 10:30 for the hours from 11:00: an input from 11:00 on, its first lead the hour ending 12:00.
    assert frame["issued"].eq(pd.Timestamp("2024-07-17 11:00")).all()
    assert frame["valid"].iloc[0] == pd.Timestamp("2024-07-17 12:00")  # end of the 11:00 forecast hour
    assert ((frame["valid"] - frame["issued"]) / pd.Timedelta(hours=1)).iloc[0] == 1


def test_taas_sigungu_in_three_parts_gives_the_gu():
    frame = load_files("taas", [REAL / "taas_sigungu_three_parts.csv"])
    assert frame["district"].tolist() == ["부평구", "남동구", "연수구"]
    assert frame["time"].tolist() == [pd.Timestamp("2016-01-01 01:00"), *[pd.Timestamp("2016-01-01 02:00")] * 2]
    assert frame["eclo"].tolist() == [4.0, 11.0, 3.0]  # from the counts: 3+1, 5+2*3, 3


@pytest.mark.parametrize("name", ["taas_dacon_train_layout.csv", "taas_time_yyyy-mm-dd_hh.csv"])
def test_taas_injury_alias_and_hour_layout(name):
    frame = load_files("taas", [REAL / name])
    assert frame["time"][0] == pd.Timestamp("2019-01-01 00:00") and frame["district"][0] == "중구"
    assert (frame["serious"][0], frame["reported"][0], frame["eclo"][0]) == (1, 0, 5.0)


@pytest.mark.parametrize(("text", "expected"), [
    ("2021년 3월 4일 17시", "2021-03-04 17:00"), ("2021-03-04 17", "2021-03-04 17:00"),
    ("2021-03-04 17:00", "2021-03-04 17:00"), ("2021.03.04 17시", "2021-03-04 17:00"),
])
def test_taas_time_layouts(tmp_path, text, expected):
    path = tmp_path / "t.csv"
    path.write_text(f"사고일시,시군구,사망자수,중상자수,경상자수,부상자수\n{text},경기도 수원시 장안구 파장동,0,0,1,0\n",
                    encoding="cp949")
    frame = load_files("taas", [path])
    assert frame["time"][0] == pd.Timestamp(expected) and frame["district"][0] == "장안구"


def test_tide_portal_minutes_made_hourly():
    frame = load_files("tide", [REAL / "tide_badanuri_csv_layout.csv"])
    assert frame[["station", "time", "tide_cm", "tide_pred_cm"]].values.tolist() == [
        ["인천", pd.Timestamp("2026-03-04 00:00"), 512.0, 508.1]]


def write_xlsx(path: Path, rows: list[list]) -> None:
    """A minimal XLSX workbook (one sheet, inline strings and numbers), as spreadsheet programs save it."""
    def cell(value, ref):
        if isinstance(value, int | float):
            return f'<c r="{ref}"><v>{value}</v></c>'
        return f'<c r="{ref}" t="inlineStr"><is><t>{escape(str(value))}</t></is></c>'

    cols = "ABCDEFGHIJ"
    sheet = "".join(f'<row r="{i + 1}">' + "".join(cell(v, f"{cols[j]}{i + 1}") for j, v in enumerate(r)
                                                    if v is not None) + "</row>" for i, r in enumerate(rows))
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
                   'package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats'
                   '-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override '
                   'PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
                   'spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType='
                   '"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>')
        z.writestr("_rels/.rels", f'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/'
                   f'package/2006/relationships"><Relationship Id="rId1" Type="{rel}/officeDocument" '
                   'Target="xl/workbook.xml"/></Relationships>')
        z.writestr("xl/workbook.xml", f'<?xml version="1.0"?><workbook {ns} xmlns:r="{rel}"><sheets><sheet '
                   'name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.'
                   f'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{rel}/worksheet" '
                   'Target="worksheets/sheet1.xml"/></Relationships>')
        z.writestr("xl/worksheets/sheet1.xml", f'<?xml version="1.0"?><worksheet {ns}><sheetData>{sheet}'
                   "</sheetData></worksheet>")


QUAKE_HEADER = ["번호", "발생시각", "규모", "깊이(km)", "최대진도", "위도", "경도", "위치"]
QUAKE_ROW = [3, "2023-01-09 01:28:13", 3.7, "-", "III", "37.74 N", "126.19 E", "인천 강화군 서쪽 25km 해역"]


def test_quake_list_xlsx_with_title_rows_above_the_header(tmp_path, city):
    path = tmp_path / "quakes.xlsx"
    write_xlsx(path, [["국내지진 목록"], ["조회기간: 2023-01-01 ~ 2023-12-31"], [], QUAKE_HEADER, QUAKE_ROW])
    (report,) = check_files("quakes", [path], city=city)
    assert report.ok and report.container == "XLSX workbook" and report.rows == 1
    frame = load_files("quakes", [path])
    assert frame["time"][0] == pd.Timestamp("2023-01-09 01:28:13")
    assert (frame["magnitude"][0], frame["lat"][0], frame["lon"][0]) == (3.7, 37.74, 126.19)
    assert np.isnan(frame["depth_km"][0])


def test_quake_list_html_table_saved_as_xls(tmp_path):
    cells = "".join(f"<td>{v}</td>" for v in QUAKE_ROW)
    head = "".join(f"<th>{v}</th>" for v in QUAKE_HEADER)
    path = tmp_path / "KMA_EQK_list.xls"
    path.write_bytes(f'<html><head><meta charset="euc-kr"></head><body><table><thead><tr>{head}</tr></thead>'
                     f"<tbody><tr>{cells}</tr></tbody></table></body></html>".encode("cp949"))
    frame = load_files("quakes", [path])
    assert frame["location"][0] == "인천 강화군 서쪽 25km 해역" and frame.attrs["read"]["container"] == "HTML table"
    assert frame.attrs["read"]["encoding"] == "CP949/EUC-KR"


@pytest.mark.parametrize(("data", "container"), [
    (b"%PDF-1.4 ...", "PDF"), (b'<?xml version="1.0"?><response><header>', "XML"),
    (b"PK\x03\x04 not really a workbook", "XLSX workbook"),
])
def test_an_unreadable_container_is_one_line_naming_it(tmp_path, city, data, container):
    path = tmp_path / "download.xls"
    path.write_bytes(data)
    (report,) = check_files("airkorea", [path], city=city)
    assert not report.ok and len(report.problems) == 1 and container in report.problems[0]
    assert "\n" not in report.problems[0]


def test_asos_api_items_by_their_field_names(tmp_path):
    items = [{"stnId": "112", "stnNm": "인천", "tm": "2021-01-01 01:00", "ta": "-3.1", "rn": "", "ws": "2.4",
              "wd": "270", "hm": "55", "ps": "1025.1", "dsnw": ""},
             {"stnId": "112", "stnNm": "인천", "tm": "2021-01-01 02:00", "ta": "-3.4", "rn": "0.5", "ws": "2.0",
              "wd": "290", "hm": "60", "ps": "1025.0", "dsnw": "1.2"}]
    path = tmp_path / "asos.json"
    path.write_text(json.dumps({"response": {"header": {"resultCode": "00"}, "body": {"items": {"item": items}}}}),
                    encoding="utf-8")
    frame = load_files("asos", [path])
    assert frame["temp_c"].tolist() == [-3.1, -3.4] and frame["pressure_hpa"].tolist() == [1025.1, 1025.0]
    assert np.isnan(frame["rain_mm"][0]) and frame["rain_mm"][1] == 0.5 and frame["snow_cm"][1] == 1.2


def test_airkorea_final_data_before_pm25_and_with_pm2_5_header(tmp_path):
    old = tmp_path / "2014.csv"
    old.write_text("지역,측정소코드,측정소명,측정일시,SO2,CO,O3,NO2,PM10,주소\n인천 남동구,823655,구월동,2014010124,0.004,"
                   "0.5,0.01,0.03,61,○○로\n", encoding="cp949")
    frame = load_files("airkorea", [old])
    assert frame["time"][0] == pd.Timestamp("2014-01-02 00:00") and np.isnan(frame["pm25"][0])
    new = tmp_path / "2016.csv"
    new.write_text("측정소코드,측정소명,측정일시,PM10,PM2.5\n823655,구월동,2016010101,44,30\n", encoding="utf-8")
    assert load_files("airkorea", [new])["pm25"][0] == 30.0


def test_airkorea_final_data_as_xlsx_with_numeric_cells(tmp_path, city):
    path = tmp_path / "2023년 1분기.xlsx"
    write_xlsx(path, [["지역", "망", "측정소코드", "측정소명", "측정일시", "SO2", "CO", "O3", "NO2", "PM10"],
                      ["인천 남동구", "도시대기", 823655, "구월동", 2023010124, 0.003, 0.4, 0.02, 0.03, 57],
                      ["인천 남동구", "도시대기", 823655, "구월동", 2023010201, 0.003, 0.4, 0.02, 0.03, 61.5]])
    (report,) = check_files("airkorea", [path], city=city)
    assert report.ok and report.container == "XLSX workbook" and report.matched == ["구월동 (823655)"]
    frame = load_files("airkorea", [path])
    assert frame["station_code"].tolist() == [823655, 823655] and frame["pm10"].tolist() == [57.0, 61.5]
    assert frame["time"].tolist() == [pd.Timestamp("2023-01-02 00:00"), pd.Timestamp("2023-01-02 01:00")]

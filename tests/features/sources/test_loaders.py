"""Every loader: good fixtures load into the canonical frame with the quirks parsed; bad ones raise a
located DataError."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from features.errors import DataError
from features.sources import load_files
from features.sources.canonical import SCHEMAS
from features.sources.formats import FORMATS
from features.sources.loaders.csvfile import header_key
from features.sources.loaders.kma import rain_text
from tests.features.sources.conftest import FIXTURES, fixture

GOOD = sorted((p.parent.name, p.name) for p in FIXTURES.glob("*/good*.csv"))

# (source, file, line, source column) of the first bad cell in each broken fixture; line None = whole file.
BAD = [
    ("asos", "bad_date.csv", 6, "일시"),
    ("asos", "bad_number.csv", 4, "기온(°C)"),
    ("asos", "bad_range.csv", 9, "습도(%)"),
    ("asos", "bad_missing_column.csv", None, "일시"),
    ("aws", "bad_number.csv", 7, "풍속(m/s)"),
    ("aws", "bad_range.csv", 11, "기온(°C)"),
    ("aws", "bad_missing_column.csv", None, "일시"),
    ("airkorea", "bad_hour.csv", 5, "측정일시"),
    ("airkorea", "bad_negative.csv", 7, "PM10"),
    ("airkorea", "bad_missing_column.csv", None, "PM10"),
    ("taas", "bad_date.csv", 4, "사고일시"),
    ("taas", "bad_count.csv", 5, "중상자수"),
    ("taas", "bad_coordinate.csv", 2, "위도"),
    ("taas", "bad_missing_column.csv", None, "시군구"),
    ("quakes", "bad_lat.csv", 4, "위도"),
    ("quakes", "bad_magnitude.csv", 3, "규모"),
    ("quakes", "bad_range.csv", 6, "규모"),
    ("quakes", "bad_missing_column.csv", None, "발생시각"),
    ("quake_stations", "bad_unit_blank.csv", 2, "단위"),
    ("quake_stations", "bad_unit_unknown.csv", 2, "단위"),
    ("quake_stations", "bad_pga_text.csv", 2, "최대지반가속도"),
    ("quake_stations", "bad_missing_column.csv", None, "단위"),
    ("buildings", "bad_flag.csv", 5, "내진설계적용여부"),
    ("buildings", "bad_floors.csv", 3, "지상층수"),
    ("buildings", "bad_date.csv", 6, "사용승인일"),
    ("buildings", "bad_api_area.csv", 4, "totArea"),
    ("buildings", "bad_missing_column.csv", None, "시군구코드"),
    ("flood_traces", "bad_geometry.csv", 3, "geometry"),
    ("flood_traces", "bad_date.csv", 4, "SAT_DATE"),
    ("flood_traces", "bad_grade.csv", 5, "FLUD_GD"),
    ("flood_traces", "bad_missing_column.csv", None, "SGG_CD"),
    ("tide", "bad_time.csv", 8, "관측시간"),
    ("tide", "bad_range.csv", 11, "예측조위(cm)"),
    ("tide", "bad_missing_column.csv", None, "관측시간"),
    ("nowcast", "bad_value.csv", 7, "fcstValue"),
    ("nowcast", "bad_time.csv", 4, "baseTime"),
    ("nowcast", "bad_missing_column.csv", None, "fcstValue"),
    ("static", "bad_share.csv", 4, "impervious_share"),
    ("static", "bad_number.csv", 6, "elevation_m"),
    ("static", "bad_duplicate.csv", 3, "cell_id"),
    ("damage_surveys", "bad_damaged.csv", 5, "중파이상건수"),
    ("damage_surveys", "bad_number.csv", 3, "규모"),
    ("damage_surveys", "bad_missing_column.csv", None, "격자ID"),
    ("parcels", "bad_pnu.csv", 3, "PNU"),
    ("addresses", "bad_missing_column.csv", None, "경도"),
]


def load(source: str, name: str) -> pd.DataFrame:
    return load_files(source, [fixture(source, name)])


def test_every_source_has_good_and_bad_fixtures():
    assert {s for s, _ in GOOD} == set(FORMATS)
    assert {s for s, *_ in BAD} == set(FORMATS)
    for source in ("asos", "aws", "taas", "quakes", "buildings"):
        raw = fixture(source, "good_cp949.csv").read_bytes()
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")  # really CP949 bytes, not UTF-8
        if source != "taas":  # the TAAS CP949 fixture carries UTM-K coordinates instead (tested below)
            pd.testing.assert_frame_equal(load(source, "good_cp949.csv"), load(source, "good_utf8.csv"))


@pytest.mark.parametrize(("source", "name"), GOOD)
def test_good_fixture_loads_as_canonical_frame(source, name):
    frame = load(source, name)
    schema = SCHEMAS[source]
    assert list(frame.columns) == list(schema.columns)
    assert 4 <= len(frame) <= 30
    schema.validate(frame)  # already validated by the loader; must stay valid as returned
    assert isinstance(frame.index, pd.RangeIndex)


@pytest.mark.parametrize(("source", "name", "line", "column"), BAD)
def test_bad_fixture_names_file_line_and_column(source, name, line, column):
    with pytest.raises(DataError) as info:
        load(source, name)
    err = info.value
    assert name in str(err)
    assert err.column == column and repr(column) in str(err)
    assert err.row == line
    if line is not None:
        assert f"row {line}" in str(err)


def test_strong_motion_records_are_read_in_g_whatever_unit_the_row_names():
    frame = load("quake_stations", "good_utf8.csv").set_index("station")
    assert frame.loc["PHA2", "pga_g"] == pytest.approx(0.263)
    assert frame.loc["PHB", "pga_g"] == pytest.approx(112.5 / 980.665)  # gal: cm/s², standard gravity
    assert frame.loc["ULJ", "pga_g"] == pytest.approx(0.012)  # %g
    assert frame["time"].isna().all()  # taken from the held event when the record is ingested
    same = load("quake_stations", "api_names.csv")  # the API's names of the same fields
    assert same.loc[0, "pga_g"] == pytest.approx(0.263) and same.loc[0, "event_no"] == "KMA-20171115142931"


def test_a_quake_without_a_number_is_named_by_its_origin_time_and_is_ml_unless_it_says_mw(tmp_path):
    path = tmp_path / "KMA_EQK_api.json"
    path.write_text('[{"tmEqk": 20171115142931, "mt": 5.4, "lat": 36.12, "lon": 129.36, "dep": 9, '
                    '"loc": "경북 포항시 북구 북쪽 9km 지역"}]', encoding="utf-8")  # the KMA API's item
    frame = load_files("quakes", [path])
    assert frame.loc[0, "event_no"] == "KMA-20171115142931" and frame.loc[0, "magnitude_type"] == "ML"
    assert frame.loc[0, "time"] == pd.Timestamp("2017-11-15 14:29:31") and frame.loc[0, "depth_km"] == 9
    path.write_text('[{"time": "2017-11-15 14:29:31", "magnitude": 5.5, "magnitude_type": "Mw", "lat": 36.1, '
                    '"lon": 129.37}]', encoding="utf-8")  # canonical names, a USGS-style moment magnitude
    frame = load_files("quakes", [path])
    assert frame.loc[0, "event_no"] == "KMA-20171115142931" and frame.loc[0, "magnitude_type"] == "Mw"
    path.write_text('[{"time": "2017-11-15 14:29:31", "magnitude": 5.5, "magnitude_type": "Ms", "lat": 36.1, '
                    '"lon": 129.37}]', encoding="utf-8")
    with pytest.raises(DataError, match="ML or Mw") as info:
        load_files("quakes", [path])
    assert info.value.column == "magnitude_type" and info.value.row == 1


def test_asos_rain_qc9_blank_is_zero_other_blank_unknown():
    frame = load("asos", "good_utf8.csv").set_index(["station_id", "time"])
    assert frame.loc[(112, pd.Timestamp("2021-01-01 01:00")), "rain_mm"] == 0.0  # blank + QC 9
    assert frame.loc[(112, pd.Timestamp("2021-01-01 03:00")), "rain_mm"] == 2.5
    assert math.isnan(frame.loc[(102, pd.Timestamp("2021-01-01 05:00")), "rain_mm"])  # blank, no QC 9
    assert frame.loc[(112, pd.Timestamp("2021-01-01 02:00")), "snow_cm"] == 1.2
    assert frame["pressure_hpa"].eq(1023.4).all()  # sea-level pressure preferred


def test_aws_has_no_snow():
    frame = load("aws", "good_utf8.csv")
    assert frame["snow_cm"].isna().all()
    assert set(frame["station_id"]) == {510, 511, 565}


def test_airkorea_hour_24_is_next_midnight_and_header_variants():
    frame = load("airkorea", "good.csv")
    shinheung = frame[frame["station_code"] == 823651]["time"].tolist()
    assert shinheung[:3] == [pd.Timestamp(t) for t in ("2021-01-01 22:00", "2021-01-01 23:00", "2021-01-02 00:00")]
    assert frame["time"].max() == pd.Timestamp("2021-01-02 01:00")
    assert frame["pm10"].isna().sum() == 1  # blank = missing
    assert load("airkorea", "good_pm2.5.csv").equals(frame)


def test_taas_dates_coordinates_and_eclo():
    frame = load("taas", "good_utf8.csv")
    assert frame.loc[0, "time"] == pd.Timestamp("2021-01-01 03:00")
    assert frame.loc[0, "district"] == "부평구"
    assert frame.loc[4, ["lat", "lon"]].isna().all()
    utmk = load("taas", "good_cp949.csv")  # UTM-K coordinates, one ISO date
    assert utmk.loc[1, "time"] == pd.Timestamp("2021-01-02 18:00")
    assert utmk["lat"].sub(frame["lat"]).abs().max() < 1e-5
    assert utmk["lon"].sub(frame["lon"]).abs().max() < 1e-5
    assert 37.3 < utmk.loc[0, "lat"] < 37.7 and 126.5 < utmk.loc[0, "lon"] < 126.9  # Incheon
    bare = load("taas", "good_nocoords.csv")
    assert bare[["lat", "lon"]].isna().all().all()
    assert bare["eclo"].tolist() == frame["eclo"].tolist()  # computed 10/5/3/1 when missing


def test_quakes_hemispheres_and_missing_depth():
    frame = load("quakes", "good_utf8.csv")
    assert frame.loc[0, ["lat", "lon"]].tolist() == [37.5, 124.7]
    assert frame.loc[3, ["lat", "lon"]].tolist() == [-35.1, -120.0]  # S and W are negative
    assert math.isnan(frame.loc[1, "depth_km"])  # "-"
    assert frame.loc[1, "max_intensity"] == "III(인천)" and pd.isna(frame.loc[2, "max_intensity"])
    assert frame["event_no"].tolist() == ["1", "2", "3", "4", "5"]


def test_buildings_register_and_api_names():
    frame = load("buildings", "good_utf8.csv")
    assert frame.loc[0, "floor_area_m2"] == 12345.6  # "12,345.6"
    assert frame.loc[3, "floor_area_m2"] == 3000.0
    assert frame["seismic_design"].tolist()[:4] == [True, pd.NA, True, False]
    assert frame.loc[5, "seismic_design"] == False  # noqa: E712  ("n")
    assert frame.loc[1, "approval_date"] == pd.Timestamp("1987-01-01")  # 19870000
    assert pd.isna(frame.loc[3, "approval_date"])
    assert frame.loc[1, "floors_below"] == 0  # blank
    assert frame.loc[2, "other_structure"] == "필로티구조"
    pd.testing.assert_frame_equal(load("buildings", "good_api.csv"), frame)


def test_flood_traces_depth_onset_and_geometry():
    frame = load("flood_traces", "good.csv")
    assert math.isnan(frame.loc[1, "depth_m"])  # "-"
    assert frame.loc[0, "onset"] == pd.Timestamp("2021-07-23 14:00")
    assert pd.isna(frame.loc[2, "onset"])  # no SAT_TM
    assert frame.loc[2, ["lat", "lon"]].tolist() == pytest.approx([37.55, 126.74])  # polygon centre
    assert pd.isna(frame.loc[3, "grade"]) and pd.isna(frame.loc[2, "emd_cd"])


def test_tide_missing_observation():
    frame = load("tide", "good.csv")
    assert math.isnan(frame.loc[4, "tide_cm"]) and frame.loc[4, "tide_pred_cm"] == 535.0


def test_nowcast_strings_and_times():
    frame = load("nowcast", "good.csv")  # the T1H row is dropped
    assert frame["rain_mm"].tolist() == [0.0, 0.5, 12.5, 40.0, 50.0, 0.0]
    assert frame.loc[0, "issued"] == pd.Timestamp("2021-07-23 13:00")
    assert frame.loc[0, "valid"] == pd.Timestamp("2021-07-23 15:00")  # fcstTime 14:00 + 1 h
    assert frame.loc[3, "valid"] == pd.Timestamp("2021-07-24 01:00")


def test_nowcast_reads_all_six_forecast_hours():
    frame = load("nowcast", "good_six_leads.csv")  # one issue, leads 1-6 across midnight
    lead = (frame["valid"] - frame["issued"]) / pd.Timedelta(hours=1)
    assert lead.tolist() == [1, 2, 3, 4, 5, 6]
    assert frame["rain_mm"].tolist() == [0.5, 3.5, 12.0, 40.0, 50.0, 0.0]
    assert frame["valid"].iloc[-1] == pd.Timestamp("2021-07-24 03:00")


def test_rain_text_variants():
    values = pd.Series(["강수없음", "1mm 미만", "1.0mm 미만", "12.5mm", "30.0~50.0mm", "50.0mm 이상", "3", "x", ""])
    out = rain_text(values).tolist()
    assert out[:7] == [0.0, 0.5, 0.5, 12.5, 40.0, 50.0, 3.0]
    assert all(math.isnan(v) for v in out[7:])


@pytest.mark.parametrize(("a", "b"), [("강수량(mm)", "강수량 (mm)"), ("강수량(mm)", "강수량"), ("PM2.5", "PM25"),
                                      ("기온(°C)", "기온(℃)"), ("연면적(㎡)", "연면적"), ("\ufeff지역", "지역 ")])
def test_header_variants_match(a, b):
    assert header_key(a) == header_key(b)


def test_header_key_keeps_distinct_columns_apart():
    assert header_key("지점") != header_key("지점명")
    assert header_key("강수량(mm)") != header_key("강수량 QC플래그")


def test_blank_lines_do_not_shift_line_numbers(tmp_path):
    lines = fixture("tide", "good.csv").read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace(",370,", ",abc,")  # data on line 4 ...
    lines.insert(2, "")  # ... moves to line 5 below an inserted blank line
    path = tmp_path / "TIDE_x.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_files("tide", [path])
    assert (info.value.row, info.value.column) == (5, "실측조위(cm)")


def test_row_with_too_many_fields(tmp_path):
    lines = fixture("tide", "good.csv").read_text(encoding="utf-8").splitlines()
    lines[4] += ",extra"
    path = tmp_path / "TIDE_x.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="not readable as CSV text") as info:
        load_files("tide", [path])
    assert info.value.row == 5


def test_undecodable_file(tmp_path):
    path = tmp_path / "OBS_ASOS_TIM_bad.csv"
    path.write_bytes(fixture("asos", "good_utf8.csv").read_bytes() + b"\xff\xfe\xfa\n")
    with pytest.raises(DataError, match="not UTF-8 or CP949"):
        load_files("asos", [path])

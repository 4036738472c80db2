"""The command line as a user meets it: exit codes and messages, on small data."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.store import read_meta, read_table
from urban_safety.cli import app

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
runner = CliRunner()


def env_for(tmp_path: Path) -> dict[str, str]:
    return {"URBAN_SAFETY_DATA_DIR": str(tmp_path / "data"), "URBAN_SAFETY_GRID_M": "2000",
            "URBAN_SAFETY_YEARS": "1", "URBAN_SAFETY_QUAKE_SCENARIOS": "20", "COLUMNS": "200"}


def test_data_check_accepts_real_format_files_in_both_encodings():
    files = [str(FIXTURES / "asos" / "good_cp949.csv"), str(FIXTURES / "asos" / "good_utf8.csv")]
    result = runner.invoke(app, ["data", "check", "--source", "asos", *files], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "12 rows" in result.output and "백령도 (102), 인천 (112)" in result.output


@pytest.mark.parametrize(("source", "name", "where"), [
    ("asos", "bad_date.csv", "row 6, column '일시'"),
    ("asos", "bad_number.csv", "row 4, column '기온(°C)'"),
    ("quakes", "bad_missing_column.csv", "column"),
])
def test_data_check_rejects_a_broken_file_naming_file_row_and_column(source, name, where):
    bad = FIXTURES / source / name
    result = runner.invoke(app, ["data", "check", "--source", source, str(bad)], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    flat = " ".join(result.output.split())
    assert name in flat and where in flat
    assert "Traceback" not in result.output


def test_data_import_writes_nothing_when_one_file_is_bad(tmp_path):
    env = env_for(tmp_path)
    good, bad = FIXTURES / "tide" / "good.csv", FIXTURES / "tide" / "bad_range.csv"
    result = runner.invoke(app, ["data", "import", "--source", "tide", str(good), str(bad)], env=env)
    assert result.exit_code == 1 and "nothing imported" in result.output
    assert not (tmp_path / "data" / "raw" / "tide").exists()
    result = runner.invoke(app, ["data", "import", "--source", "tide", str(good)], env=env)
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "data" / "raw" / "tide").glob("TIDE_*.csv"))) == 1


def test_generate_then_build_every_domain(tmp_path):
    env = env_for(tmp_path)
    result = runner.invoke(app, ["data", "generate", "--seed", "3"], env=env)
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["features", "build", "--domain", "all"], env=env)
    assert result.exit_code == 0, result.output
    for domain in ("flood", "traffic", "earthquake", "fine_dust"):
        path = tmp_path / "data" / "features" / domain
        meta = read_meta(path)
        assert meta["domain"] == domain and meta["feature_set_version"].startswith(domain)
        table = read_table(path)
        assert len(table) > 0 and set(meta["features"]) <= set(table.columns)
        assert domain in result.output


def test_features_build_without_data_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["features", "build", "--domain", "flood"], env=env_for(tmp_path))
    assert result.exit_code == 1
    assert "urban-safety data generate" in " ".join(result.output.split())


def test_unknown_domain_is_rejected():
    result = runner.invoke(app, ["features", "build", "--domain", "tsunami"])
    assert result.exit_code == 2 and "tsunami" in result.output


REAL = Path(__file__).parent / "fixtures" / "real_formats"
CASES = [("airkorea", "airkorea_api_items_no_stationCode.csv"), ("aws", "aws_rain_only_export.csv"),
         ("buildings", "buildings_mart_djy_03_pipe_noheader_cp949.txt"),
         ("buildings", "buildings_api_getBrTitleInfo_no_coordinates.csv"),
         ("flood_traces", "flood_sat_tm_hhmm.csv"), ("flood_traces", "flood_emd_cd_8_digits.csv"),
         ("flood_traces", "flood_grade_5.csv"), ("flood_traces", "flood_traces_as_shapefile.shp"),
         ("nowcast", "nowcast_getUltraSrtFcst_rn1_categories.json"), ("taas", "taas_sigungu_three_parts.csv"),
         ("taas", "taas_dacon_train_layout.csv"), ("taas", "taas_time_yyyy-mm-dd_hh.csv"),
         ("tide", "tide_badanuri_csv_layout.csv")]


@pytest.mark.parametrize(("source", "name"), CASES)
def test_data_check_on_each_real_format_case_says_what_it_found(tmp_path, source, name):
    result = runner.invoke(app, ["data", "check", "--source", source, str(REAL / name)], env=env_for(tmp_path))
    flat = " ".join(result.output.split())
    assert result.exit_code == 0, flat
    assert f"ok {REAL / name}" in flat and "read as " in flat and "columns: " in flat
    assert "Traceback" not in flat

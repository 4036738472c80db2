"""``data check`` and ``data import`` logic over the fixture files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.sources import source_files
from features.sources.check import FileReport, check_files, import_files, stored_name
from features.sources.formats import FORMATS
from tests.features.sources.conftest import FIXTURES, fixture

SOURCES = sorted(FORMATS)


def good_files(source: str) -> list[Path]:
    return sorted((FIXTURES / source).glob("good*.csv"))


@pytest.mark.parametrize("source", SOURCES)
def test_check_reports_good_and_bad_files(source, city):
    good, bad = good_files(source), sorted((FIXTURES / source).glob("bad*.csv"))
    reports = check_files(source, good + bad, city=city)
    assert [r.ok for r in reports] == [True] * len(good) + [False] * len(bad)
    for report in reports[: len(good)]:
        assert report.rows > 0
        assert not any("not in the city config" in p for p in report.problems)
    for report, path in zip(reports[len(good):], bad, strict=True):
        assert report.rows == 0 and len(report.problems) == 1 and path.name in report.problems[0]


def test_check_describes_a_file(city):
    (report,) = check_files("asos", [fixture("asos", "good_utf8.csv")], city=city)
    assert report == FileReport(
        str(fixture("asos", "good_utf8.csv")), ok=True, rows=12,
        period=(pd.Timestamp("2021-01-01 01:00"), pd.Timestamp("2021-01-01 06:00")),
        entities=["102", "112"], problems=[], container="CSV text", encoding="UTF-8",
        columns=report.columns, matched=["백령도 (102)", "인천 (112)"])
    assert report.columns["time"] == "일시" and report.columns["temp_c"] == "기온(°C)"
    (nowcast,) = check_files("nowcast", [fixture("nowcast", "good.csv")], city=city)
    assert nowcast.entities == ["55,124", "56,125"]


def test_warnings_do_not_fail_a_file(tmp_path, city):
    lines = fixture("asos", "good_utf8.csv").read_text(encoding="utf-8").splitlines()
    del lines[5:7]  # both stations lose 03:00
    lines.append(lines[-1])  # a duplicate row
    lines.append(lines[-1].replace("102,백령도", "999,어딘가"))  # a station the city does not have
    path = tmp_path / "asos.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (report,) = check_files("asos", [path], city=city)
    assert report.ok and report.rows == 12
    text = "\n".join(report.problems)
    assert "1 duplicate rows" in text
    assert "station_id 112: 1 missing hours" in text
    assert report.unmatched == ["999"]
    assert 'not in the city config (Incheon)' in text and '[[weather_stations]] id = 999' in text


def test_check_never_raises_for_missing_or_unreadable_file(tmp_path, city):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    reports = check_files("tide", [tmp_path / "nope.csv", empty], city=city)
    assert [r.ok for r in reports] == [False, False]
    assert "nope.csv" in reports[0].problems[0] and "empty.csv" in reports[1].problems[0]


@pytest.mark.parametrize(("source", "name", "stored"), [
    ("asos", "OBS_ASOS_TIM_2021.csv", "OBS_ASOS_TIM_2021.csv"),
    ("asos", "good_utf8.csv", "OBS_ASOS_TIM_good_utf8.csv"),
    ("quakes", "list.csv", "KMA_EQK_list.csv"),
    ("static", "layers.csv", "grid_layers_layers.csv"),
    ("nowcast", "rn1.txt", "VSRT_RN1_rn1.txt"),
])
def test_stored_name_matches_pattern(source, name, stored):
    assert stored_name(source, Path(name)) == stored


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def raw_dir(tmp_path) -> Path:
    raw = tmp_path / "raw"
    (raw / "asos").mkdir(parents=True)
    (raw / "asos" / "OBS_ASOS_TIM_2020.csv").write_bytes(fixture("asos", "good_cp949.csv").read_bytes())
    return raw


def test_import_with_one_bad_file_writes_nothing(raw_dir, city):
    before = _snapshot(raw_dir / "asos")
    files = [fixture("asos", "good_utf8.csv"), fixture("asos", "bad_date.csv")]
    reports = import_files("asos", files, raw_dir, city=city)
    assert [r.ok for r in reports] == [True, False]
    assert _snapshot(raw_dir / "asos") == before
    assert sorted(p.name for p in raw_dir.iterdir()) == ["asos"]  # no staging folder left behind


@pytest.mark.parametrize("source", SOURCES)
def test_import_good_files_replaces_the_folder(raw_dir, city, source):
    files = good_files(source)
    reports = import_files(source, files, raw_dir, city=city)
    assert all(r.ok for r in reports)
    installed = source_files(raw_dir, source)
    assert [p.name for p in installed] == sorted(r.stored_as for r in reports)
    assert sorted(p.read_bytes() for p in installed) == sorted(f.read_bytes() for f in files)  # untouched
    assert {p.name for p in raw_dir.iterdir()} == ({"asos", source})  # old data and staging removed
    renamed = [r for r in reports if Path(r.file).name != r.stored_as]
    assert all(any("stored as" in p for p in r.problems) for r in renamed)


def test_import_replaces_previous_files(raw_dir, city):
    import_files("asos", [fixture("asos", "good_utf8.csv")], raw_dir, city=city)
    assert [p.name for p in (raw_dir / "asos").iterdir()] == ["OBS_ASOS_TIM_good_utf8.csv"]


def test_import_refuses_two_files_with_one_name(raw_dir, city, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    twin = other / "good_utf8.csv"
    twin.write_bytes(fixture("asos", "good_utf8.csv").read_bytes())
    before = _snapshot(raw_dir / "asos")
    reports = import_files("asos", [fixture("asos", "good_utf8.csv"), twin], raw_dir, city=city)
    assert not any(r.ok for r in reports)
    assert _snapshot(raw_dir / "asos") == before


def test_import_failing_mid_copy_keeps_the_previous_folder(raw_dir, city, monkeypatch):
    from features.sources import check

    before = _snapshot(raw_dir / "asos")
    real_copy, calls = check.shutil.copy2, []

    def copy_then_fail(src, dst, *args, **kwargs):
        calls.append(src)
        if len(calls) == 2:  # the disk fills up half-way through the second file
            Path(dst).write_bytes(Path(src).read_bytes()[:100])
            raise OSError(28, "No space left on device", str(dst))
        return real_copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(check.shutil, "copy2", copy_then_fail)
    with pytest.raises(OSError, match="No space left"):
        import_files("asos", [fixture("asos", "good_utf8.csv"), fixture("asos", "good_cp949.csv")], raw_dir,
                     city=city)
    assert len(calls) == 2
    assert _snapshot(raw_dir / "asos") == before
    assert sorted(p.name for p in raw_dir.iterdir()) == ["asos"]  # no staging or parked folder left


def test_import_failing_to_rename_puts_the_previous_folder_back(raw_dir, city, monkeypatch):
    from features.sources import check

    before = _snapshot(raw_dir / "asos")
    real_replace = check.os.replace

    def replace(src, dst):
        if Path(src).name.startswith(".asos.new."):
            raise PermissionError(13, "Permission denied", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(check.os, "replace", replace)
    with pytest.raises(PermissionError):
        import_files("asos", [fixture("asos", "good_utf8.csv")], raw_dir, city=city)
    assert _snapshot(raw_dir / "asos") == before
    assert sorted(p.name for p in raw_dir.iterdir()) == ["asos"]

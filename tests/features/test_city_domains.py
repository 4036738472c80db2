"""A city generates, builds and trains exactly the domains it names; a config naming a domain it cannot feed
is refused naming the key to add."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.errors import DataError
from features.sources import Sources
from tests.conftest import copy_of_testville, small_settings
from urban_safety.cli import app

FIXTURES = Path(__file__).parents[1] / "fixtures" / "sources"
EARTHQUAKE_SOURCES = {"static", "buildings", "quakes", "damage_surveys"}


@pytest.fixture(scope="module")
def quake_city(tmp_path_factory):
    """Testville running the earthquake domain only, with no air station and no tide gauge."""
    folder = tmp_path_factory.mktemp("quake_city")
    return folder, copy_of_testville(folder / "city", ["earthquake"], ("air_stations", "tide"))


def test_generate_writes_only_what_the_named_domains_read(quake_city):
    from features.embedded import generate

    folder, city = quake_city
    settings = small_settings(folder / "direct", city=str(city), quake_scenarios=10)
    summary = generate(settings)
    written = {p.name for p in settings.raw_dir.iterdir() if any(p.iterdir())}
    assert written == EARTHQUAKE_SOURCES
    assert [p.name for p in settings.truth_dir.iterdir()] == ["earthquake_truth.parquet"]
    assert "fine_dust" in summary["skipped"]["airkorea"] and "['earthquake']" in summary["skipped"]["airkorea"]
    assert set(summary["skipped"]) == {"asos", "aws", "airkorea", "taas", "flood_traces", "tide", "nowcast"}
    sources = Sources.from_settings(settings)
    assert all(len(sources[name]) for name in EARTHQUAKE_SOURCES)


def test_the_cli_skips_the_domains_the_city_does_not_run(quake_city):
    folder, city = quake_city
    env = {"URBAN_SAFETY_CITY": str(city), "URBAN_SAFETY_DATA_DIR": str(folder / "cli"), "URBAN_SAFETY_GRID_M": "2000",
           "URBAN_SAFETY_YEARS": "1", "URBAN_SAFETY_QUAKE_SCENARIOS": "10", "COLUMNS": "250"}
    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(app, list(args), env=env)
        flat = " ".join(result.output.split())
        assert result.exit_code == code, flat
        assert "Traceback" not in result.output
        return flat

    out = run("data", "generate")
    assert "not generated: airkorea: Testville runs none of fine_dust" in out
    out = run("features", "build", "--domain", "all")
    for domain in ("flood", "traffic", "fine_dust"):
        assert f"skipping {domain}: Testville does not run it" in out
    assert (folder / "cli" / "features" / "earthquake" / "manifest.json").exists()
    assert not (folder / "cli" / "features" / "flood").exists()
    out = run("features", "build", "--domain", "fine_dust", code=1)
    assert "fine_dust: Testville does not run it" in out
    out = run("train", "--domain", "traffic", code=1)
    assert "traffic: Testville does not run it" in out
    out = run("data", "import", "--source", "airkorea", str(FIXTURES / "airkorea" / "good.csv"))
    assert "no domain Testville runs reads airkorea (read by fine_dust" in out


@pytest.mark.parametrize("domains", [["fine_dust"], None])
def test_a_city_naming_fine_dust_without_air_stations_is_refused(tmp_path, domains):
    city = copy_of_testville(tmp_path / "city", domains, ("air_stations",))
    with pytest.raises(DataError, match=r"runs fine_dust .*lists no \[\[air_stations\]\]"):
        _ = small_settings(tmp_path, city=str(city)).city_config
    result = CliRunner().invoke(app, ["data", "generate"], env={"URBAN_SAFETY_CITY": str(city),
                                                                "URBAN_SAFETY_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 1 and "[[air_stations]]" in result.output and "Traceback" not in result.output


def test_a_city_without_a_gauge_or_aws_still_runs_flood(tmp_path):
    from features.embedded import generate

    # The tide and AWS are not applicable to flood there (DomainSpec.for_city), never a reason to refuse.
    city = copy_of_testville(tmp_path / "city", ["flood"], ("air_stations", "tide"))
    settings = small_settings(tmp_path, city=str(city))
    summary = generate(settings)
    assert "no tide gauge" in summary["skipped"]["tide"] and "no AWS station" in summary["skipped"]["aws"]
    # Flat, inland Testville without streams never floods: a year without floods writes no (empty) file.
    assert summary["flood_traces"] == {"files": 0, "rows": 0}
    written = {p.name for p in settings.raw_dir.iterdir()}
    assert written == {"static", "asos", "nowcast"}
    assert all(len(Sources.from_settings(settings)[name]) for name in written)

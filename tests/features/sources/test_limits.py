"""The one table of physical limits: schemas read it, loaders refuse beyond it, `data check` warns near it,
and the generator never writes what its loader refuses."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pytest

from features.errors import DataError
from features.sources import load_files, source_files
from features.sources.canonical import SCHEMAS
from features.sources.check import check_file
from features.sources.formats import STATIC
from features.sources.limits import ALIASES, LIMITS, clip, limit_of
from tests.conftest import copy_of_testville, small_settings

# Columns whose in-range check is no physical limit of the table: coordinates (the city outline replaces
# them) and the flood trace grade, a 1-5 category.
NOT_PHYSICAL = {"lat", "lon", "grade"}
BOUND_CHECKS = {"in_range", "greater_than", "greater_than_or_equal_to", "less_than", "less_than_or_equal_to"}
UPPER_BOUNDS = {"in_range", "less_than", "less_than_or_equal_to"}  # a lower bound alone is a sign (counts >= 1)


def _static_file(tmp_path, elevation: float):
    row = {name: 0 for name in STATIC.columns} | {"cell_id": "TST-2000-0-0", "elevation_m": elevation,
                                                  "vs30_mps": 400, "slope_deg": 2}
    path = tmp_path / "grid_layers.csv"
    pd.DataFrame([row, {**row, "cell_id": "TST-2000-0-1", "elevation_m": 12.5}]).to_csv(path, index=False)
    return path


def test_a_summit_of_1041_m_loads(tmp_path):
    frame = load_files("static", [_static_file(tmp_path, 1041)])
    assert frame["elevation_m"].max() == 1041


def test_2000_m_is_refused_naming_the_field_and_the_limits(tmp_path):
    path = _static_file(tmp_path, 2000)
    with pytest.raises(DataError) as refused:
        load_files("static", [path])
    message = str(refused.value)
    assert refused.value.column == "elevation_m" and refused.value.row == 2
    assert "grid_layers.csv" in message and "2000" in message and "between -10 and 1950 m" in message


def test_data_check_warns_of_extreme_values_and_still_accepts_them(tmp_path):
    report = check_file("static", _static_file(tmp_path, 1600))
    assert report.ok
    assert any("elevation_m" in p and "above 1500 m" in p and "1600" in p for p in report.problems), report.problems
    calm = check_file("static", _static_file(tmp_path, 1041))
    assert calm.ok and not any("elevation_m" in p for p in calm.problems)


def _checks(column: pa.Column, kinds: set[str]) -> list[tuple[str, dict]]:
    return [(c.name, c.statistics) for c in column.checks if c.name in kinds]


def test_every_element_of_the_table_is_read_by_a_schema():
    used = {name for schema in SCHEMAS.values() for name in schema.columns}
    for element in (*LIMITS, *ALIASES):
        assert element in used, f"{element} is in the limits table but no schema has such a column"


@pytest.mark.parametrize("source", sorted(SCHEMAS))
def test_no_schema_keeps_a_literal_bound_of_its_own(source):
    for name, column in SCHEMAS[source].columns.items():
        limit = limit_of(name)
        if limit is not None:  # exactly the table's hard limits, nothing else
            bounds = _checks(column, BOUND_CHECKS)
            assert bounds == [("in_range", limit.check().statistics)], f"{source}.{name}: {bounds}"
        else:  # an upper bound makes a measured element: it belongs in the table, not here
            bounds = _checks(column, UPPER_BOUNDS)
            assert not bounds or name in NOT_PHYSICAL, \
                f"{source}.{name} bounds itself {bounds}: add the element to features/sources/limits.py"


def test_clip_keeps_blanks_and_text():
    frame = pd.DataFrame({"elevation_m": [2500.0, None, 12.0], "깊이(km)": ["-", "900", "10"]})
    out = clip(frame, {"elevation_m": "elevation_m", "깊이(km)": "depth_km"})
    assert out["elevation_m"].iloc[0] == 1950 and pd.isna(out["elevation_m"].iloc[1])
    assert list(out["깊이(km)"]) == ["-", "700", "10"]


def test_the_generator_clips_a_hill_above_korea_s_highest_ground(tmp_path):
    from features.embedded import generate

    hill = '\n[geography]\nhills = [{ name = "Too high", lat = 36.025, lon = 127.05, height_m = 3000, sigma_km = 3.0 }]\n'
    city = copy_of_testville(tmp_path / "city", ["earthquake"], ("air_stations", "tide"), append=hill)
    settings = small_settings(tmp_path, city=str(city), quake_scenarios=5)
    generate(settings)
    static = load_files("static", source_files(settings.raw_dir, "static"))
    assert static["elevation_m"].max() == LIMITS["elevation_m"].high

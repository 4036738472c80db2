"""Earthquake scenario damage surveys (``DAMAGE_SURVEY_*.csv``): damaged buildings per cell and scenario."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.sources import loader
from features.sources.contracts import DAMAGE_SURVEYS as C
from features.sources.loaders import parse
from features.sources.loaders.csvfile import finish, read_table


@loader("damage_surveys")
def load_damage_surveys(path: Path) -> pd.DataFrame:
    """One row per (scenario, cell); ``damaged`` may not exceed ``buildings``; 표본가중치 (optional) is the
    scenario's sampling weight, 1 when absent."""
    table = read_table(path, C)
    frame = pd.DataFrame({
        "scenario_id": parse.text(table, "scenario_id"),
        "time": parse.date_parts(table, "time", C.times, "a time like 2021-01-01 12:34:56"),
        "magnitude": parse.number(table, "magnitude", required=True),
        "depth_km": parse.number(table, "depth_km", required=True),
        "lat": parse.coordinate(table, "lat", "lat"),
        "lon": parse.coordinate(table, "lon", "lon"),
        "cell_id": parse.text(table, "cell_id"),
        "buildings": parse.integer(table, "buildings", expected="a number of buildings"),
        "damaged": parse.integer(table, "damaged", expected="a number of buildings"),
        # A survey of a real event is one draw at the catalogue's rate: weight 1.
        "scenario_weight": parse.number(table, "scenario_weight", expected="a positive weight").fillna(1.0),
    })
    table.check("damaged", frame["damaged"] > frame["buildings"], "at most 조사건물수 (buildings surveyed)")
    return finish(table, frame, "damage_surveys", {c: c for c in frame.columns})

"""Static grid layers (``grid_layers*.csv``): one row per cell, columns as in ``formats.STATIC``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.sources import loader
from features.sources.contracts import Contract
from features.sources.formats import STATIC
from features.sources.loaders import parse
from features.sources.loaders.csvfile import finish, read_table

CONTRACT = Contract("static", {name: (name,) for name in STATIC.columns})


@loader("static")
def load_static(path: Path) -> pd.DataFrame:
    """Layers per ``cell_id``; every layer column is required (blank cells are NaN)."""
    table = read_table(path, CONTRACT)
    frame = pd.DataFrame({"cell_id": parse.text(table, "cell_id")} | {
        name: parse.number(table, name) for name in STATIC.columns if name != "cell_id"})
    return finish(table, frame, "static", {c: c for c in frame.columns})

"""KHOA tide observations and predictions (``TIDE_*``): hourly tables, or the tide portal's 1-minute rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.sources import loader
from features.sources.contracts import TIDE as C
from features.sources.loaders import parse
from features.sources.loaders.csvfile import finish, hourly, read_table


@loader("tide")
def load_tide(path: Path) -> pd.DataFrame:
    """Observed and predicted tide in cm on the station's datum; "-" is missing (observation-only exports
    have no 예측조위 column, giving NaN predictions).

    Rows finer than hourly (the portal's 1-minute series) are made hourly by the source's time rule
    (``features/sources/timing.py``): each whole hour keeps the level read at its end, what an hourly table
    prints.
    """
    table = read_table(path, C)
    frame = pd.DataFrame({
        "station": parse.text(table, "station"),
        "time": parse.date_parts(table, "time", C.times, "a time like 2021-01-01 01:00"),
        "tide_cm": parse.number(table, "tide_cm", missing=C.missing),
        "tide_pred_cm": parse.number(table, "tide_pred_cm", missing=C.missing),
    })
    return hourly(finish(table, frame, "tide", {c: c for c in frame.columns}), "tide", "station")

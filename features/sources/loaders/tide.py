"""KHOA tide observations and predictions (``TIDE_*.csv``), hourly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.sources import loader
from features.sources.loaders import parse
from features.sources.loaders.csvfile import finish, read_table

COLUMNS = {
    "station": ("관측소명", "관측소"),
    "time": ("관측시간", "관측일시", "일시"),
    "tide_cm": ("실측조위(cm)", "조위(cm)"),
    "tide_pred_cm": ("예측조위(cm)",),
}
TIME_FORMATS = ("%Y-%m-%d %H:%M", "ISO8601", "%Y/%m/%d %H:%M", "%Y%m%d%H%M")


@loader("tide")
def load_tide(path: Path) -> pd.DataFrame:
    """Observed and predicted tide in cm; KHOA marks a missing value "-" (observation-only exports
    have no 예측조위 column, giving NaN predictions)."""
    table = read_table(path, COLUMNS, optional=("tide_pred_cm",))
    frame = pd.DataFrame({
        "station": parse.text(table, "station"),
        "time": parse.timestamps(table, "time", TIME_FORMATS, "a time like 2021-01-01 01:00"),
        "tide_cm": parse.number(table, "tide_cm", missing=("", "-")),
        "tide_pred_cm": parse.number(table, "tide_pred_cm", missing=("", "-")),
    })
    return finish(table, frame, "tide", {c: c for c in frame.columns})

"""KHOA tide observations and predictions (``TIDE_*``): hourly tables, or the tide portal's 1-minute rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.sources import loader
from features.sources.contracts import TIDE as C
from features.sources.loaders import parse
from features.sources.loaders.csvfile import finish, read_table


@loader("tide")
def load_tide(path: Path) -> pd.DataFrame:
    """Observed and predicted tide in cm on the station's datum; "-" is missing (observation-only exports
    have no 예측조위 column, giving NaN predictions).

    Rows finer than hourly (the portal's 1-minute series) are made hourly: each hour keeps its reading on
    the hour, or the first valid reading after it, which is what an hourly table prints.
    """
    table = read_table(path, C)
    frame = pd.DataFrame({
        "station": parse.text(table, "station"),
        "time": parse.date_parts(table, "time", C.times, "a time like 2021-01-01 01:00"),
        "tide_cm": parse.number(table, "tide_cm", missing=C.missing),
        "tide_pred_cm": parse.number(table, "tide_pred_cm", missing=C.missing),
    })
    out = finish(table, frame, "tide", {c: c for c in frame.columns})
    if (out["time"].dt.minute != 0).any():
        hourly = out.groupby(["station", out["time"].dt.floor("h")], sort=True)[["tide_cm", "tide_pred_cm"]].first()
        read = out.attrs["read"]
        out = hourly.reset_index()[["station", "time", "tide_cm", "tide_pred_cm"]]
        read["notes"].append(f"{len(frame):,} sub-hourly rows made {len(out):,} hourly rows")
        out.attrs["read"] = read
    return out

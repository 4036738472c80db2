"""AirKorea hourly air quality: the final-data download (CSV or XLSX) and the real-time API's items."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.sources import loader
from features.sources.contracts import AIRKOREA as C
from features.sources.loaders import parse
from features.sources.loaders.csvfile import finish, read_table


@loader("airkorea")
def load_airkorea(path: Path) -> pd.DataFrame:
    """Hourly station values in the units AirKorea publishes (ppm gases, ug/m3 PM); hour 24 becomes 00:00
    of the next day (the end of the hour covered). The real-time API names stations only: their code is
    left blank here and found by name in the city config (``features/sources/stations.py``)."""
    table = read_table(path, C)
    code = (parse.codes(table, "station_code", nullable=True) if table.has("station_code")
            else pd.Series(pd.NA, index=table.index, dtype="Int64"))
    frame = pd.DataFrame({
        "station_code": code,
        "station_name": parse.text(table, "station_name"),
        "time": parse.date_parts(table, "time", C.times, "an hour like 2021010101 (hours 01-24)", max_hour=24),
        **{gas: parse.number(table, gas, missing=C.missing) for gas in ("so2", "co", "o3", "no2", "pm10", "pm25")},
    })
    return finish(table, frame, "airkorea", {c: c for c in frame.columns})

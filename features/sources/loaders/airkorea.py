"""AirKorea final hourly air quality (``AIRKOREA_*.csv``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.sources import loader
from features.sources.loaders import parse
from features.sources.loaders.csvfile import finish, read_table

COLUMNS = {
    "station_code": ("측정소코드", "stationCode"),
    "station_name": ("측정소명", "stationName"),
    "time": ("측정일시", "dataTime"),
    "so2": ("SO2", "so2Value"),
    "co": ("CO", "coValue"),
    "o3": ("O3", "o3Value"),
    "no2": ("NO2", "no2Value"),
    "pm10": ("PM10", "pm10Value"),
    "pm25": ("PM25", "PM2.5", "pm25Value"),
}
# The final-data download prints 2021010124; the real-time API prints "2021-01-01 24:00".
TIME_PATTERN = (r"^(?P<year>\d{4})-?(?P<month>\d{2})-?(?P<day>\d{2})[ T]?(?P<hour>\d{2})(?::?00)?$")
# The portal shows "-" for a value not measured; the final-data files leave it blank.
MISSING = ("", "-")


@loader("airkorea")
def load_airkorea(path: Path) -> pd.DataFrame:
    """Hourly station values; hour 24 becomes 00:00 of the next day (the end of the hour covered)."""
    table = read_table(path, COLUMNS, optional=("so2", "co", "o3", "no2"))
    frame = pd.DataFrame({
        "station_code": parse.codes(table, "station_code"),
        "station_name": parse.text(table, "station_name"),
        "time": parse.date_parts(table, "time", TIME_PATTERN, "an hour like 2021010101 (hours 01-24)",
                                 max_hour=24),
        **{gas: parse.number(table, gas, missing=MISSING) for gas in ("so2", "co", "o3", "no2")},
        "pm10": parse.number(table, "pm10", missing=MISSING),
        "pm25": parse.number(table, "pm25", missing=MISSING),
    })
    return finish(table, frame, "airkorea", {c: c for c in frame.columns})

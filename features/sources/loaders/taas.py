"""TAAS traffic accident extract (``TAAS_*.csv``)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from features.sources import loader
from features.sources.loaders import parse
from features.sources.loaders.csvfile import finish, read_table

COLUMNS = {
    "time": ("사고일시",),
    "weather": ("기상상태",),
    "district": ("시군구",),
    "road_type": ("도로형태",),
    "surface": ("노면상태",),
    "accident_type": ("사고유형",),
    "deaths": ("사망자수",),
    "serious": ("중상자수",),
    "minor": ("경상자수",),
    "reported": ("부상신고자수",),
    "eclo": ("ECLO",),
    "lon": ("경도",),
    "lat": ("위도",),
    "utmk_x": ("발생위치X_UTMK", "발생위치X(UTMK)"),
    "utmk_y": ("발생위치Y_UTMK", "발생위치Y(UTMK)"),
}
OPTIONAL = ("weather", "road_type", "surface", "accident_type", "eclo", "lon", "lat", "utmk_x", "utmk_y")
# Both "2021년 1월 1일 03시" (TAAS) and "2021-01-01 03:00" (ISO-like exports).
TIME_PATTERN = (r"^(?P<year>\d{4})\s*(?:년|[-./])\s*(?P<month>\d{1,2})\s*(?:월|[-./])\s*(?P<day>\d{1,2})"
                r"\s*일?\s*(?P<hour>\d{1,2})\s*(?:시|:00(?::00)?)$")
ECLO_WEIGHTS = {"deaths": 10, "serious": 5, "minor": 3, "reported": 1}


@cache
def _utmk_to_wgs84():
    from pyproj import Transformer

    return Transformer.from_crs("EPSG:5179", "EPSG:4326", always_xy=True)


def _coordinates(table) -> tuple[pd.Series, pd.Series, str, str]:
    """(lat, lon, lat key, lon key): WGS84 columns, else UTM-K converted, else all NaN."""
    if table.has("lat") and table.has("lon"):
        return parse.number(table, "lat"), parse.number(table, "lon"), "lat", "lon"
    if table.has("utmk_x") and table.has("utmk_y"):
        x, y = parse.number(table, "utmk_x"), parse.number(table, "utmk_y")
        lon, lat = _utmk_to_wgs84().transform(x.to_numpy(), y.to_numpy())
        return (pd.Series(lat, index=x.index).where(y.notna()), pd.Series(lon, index=x.index).where(x.notna()),
                "utmk_y", "utmk_x")
    nan = pd.Series(np.nan, index=table.index)
    return nan, nan, "lat", "lon"


@loader("taas")
def load_taas(path: Path) -> pd.DataFrame:
    """Accidents, one row each; ``time`` is the start of the accident's hour.

    ``district`` is the last word of 시군구 ("인천광역시 부평구" -> "부평구"), as named in the city config.
    ECLO is computed from the casualty counts when the export lacks it.
    """
    table = read_table(path, COLUMNS, OPTIONAL)
    counts = {key: parse.integer(table, key, expected="a number of people") for key in ECLO_WEIGHTS}
    eclo = parse.number(table, "eclo")
    if not table.has("eclo"):
        eclo = sum(counts[key] * weight for key, weight in ECLO_WEIGHTS.items()).astype("float64")
    lat, lon, lat_key, lon_key = _coordinates(table)
    district = parse.text(table, "district").str.split().str[-1]
    frame = pd.DataFrame({
        "time": parse.date_parts(table, "time", TIME_PATTERN, "a time like '2021년 1월 1일 03시'"),
        "weather": parse.text(table, "weather"),
        "district": district,
        "road_type": parse.text(table, "road_type"),
        "surface": parse.text(table, "surface"),
        "accident_type": parse.text(table, "accident_type"),
        **counts,
        "eclo": eclo,
        "lat": lat,
        "lon": lon,
    })
    origin = {c: c for c in frame.columns} | {"lat": lat_key, "lon": lon_key}
    return finish(table, frame, "taas", origin)

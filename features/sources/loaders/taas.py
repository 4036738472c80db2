"""TAAS traffic accident extract (``TAAS_*.csv``)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from features.sources import loader
from features.sources.contracts import TAAS as C
from features.sources.loaders import parse
from features.sources.loaders.csvfile import finish, read_table

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


def district_of(sigungu: pd.Series) -> pd.Series:
    """The 구/군 of 시군구 however many parts it has: "인천광역시 부평구" and "인천광역시 부평구 부평동" give
    부평구, "경기도 수원시 장안구 파장동" 장안구; a city without 구 ("경기도 오산시 ○○동") gives the 시."""
    words = sigungu.str.split()
    gu = words.map(lambda w: next((x for x in reversed(w) if x.endswith(("구", "군"))), None)
                   if isinstance(w, list) else None)
    si = words.map(lambda w: next((x for x in reversed(w[1:]) if x.endswith("시")), w[-1])
                   if isinstance(w, list) and w else None)
    return gu.fillna(si).where(sigungu.notna())


@loader("taas")
def load_taas(path: Path) -> pd.DataFrame:
    """Accidents, one row each; ``time`` is the start of the accident's hour.

    ``district`` is the 구/군 of 시군구 (:func:`district_of`), as named in the city config.
    ECLO is computed from the casualty counts when the export lacks it.
    """
    table = read_table(path, C)
    counts = {key: parse.integer(table, key, expected="a number of people") for key in ECLO_WEIGHTS}
    eclo = parse.number(table, "eclo")
    if not table.has("eclo"):
        eclo = sum(counts[key] * weight for key, weight in ECLO_WEIGHTS.items()).astype("float64")
    lat, lon, lat_key, lon_key = _coordinates(table)
    district = district_of(parse.text(table, "district"))
    frame = pd.DataFrame({
        "time": parse.date_parts(table, "time", C.times, "a time like '2021년 1월 1일 03시' or '2021-01-01 03'"),
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

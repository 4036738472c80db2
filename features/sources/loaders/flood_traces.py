"""Flood trace map (침수흔적도, ``FLUD_TRACE_*``): the Shapefile (or GeoJSON/GPKG, any CRS) or a CSV of its
attributes with WKT geometry in lon/lat."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.sources import loader
from features.sources.contracts import FLOOD_TRACES as C
from features.sources.loaders import parse
from features.sources.loaders.csvfile import finish, read_table

_WKT = r"^\s*(?:MULTI)?(?:POINT|POLYGON)\s*(?:Z\s*)?\(+(?P<body>[^A-Za-z]*?)\)+\s*$"
_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"


def wkt_centres(table, key: str = "geometry") -> tuple[pd.Series, pd.Series]:
    """(lat, lon) of WKT POINT or the mean of a POLYGON's vertices (closing vertex not counted twice)."""
    raw = table.raw(key)
    body = parse.extract(raw.str.upper(), _WKT)["body"]
    numbers = body.str.findall(_NUMBER)
    pairs = numbers.str.len()
    table.check(key, body.isna() | (pairs % 2 != 0) | (pairs == 0),
                "WKT in lon/lat like 'POINT (126.63 37.47)' or 'POLYGON ((lon lat, ...))'")
    flat = numbers.explode().astype("float64")
    position = flat.groupby(level=0).cumcount()
    lon, lat = flat[position % 2 == 0], flat[position % 2 == 1]
    # A closed ring repeats its first vertex; drop it so it does not weigh twice in the mean.
    vertex = lon.groupby(level=0).cumcount()
    count = lon.groupby(level=0).transform("size")
    closing = (vertex == count - 1) & (count > 1) & (
        lon.values == lon.groupby(level=0).transform("first").values) & (
        lat.values == lat.groupby(level=0).transform("first").values)
    keep = ~closing.values
    return lat[keep].groupby(level=0).mean(), lon[keep].groupby(level=0).mean()


def onset(table, start: pd.Series) -> pd.Series:
    """SAT_DATE + SAT_TM: HHMM ("1800", "600", "2400" = midnight ending the day) or a bare hour ("18")."""
    if not table.has("onset_time"):
        return pd.Series(pd.NaT, index=table.index, dtype="datetime64[ns]")
    raw = table.raw("onset_time").mask(lambda r: r.isin(C.missing), "")
    text = raw.where(raw.str.len() > 2, raw.str.zfill(2) + "00").str.zfill(4)
    clock = parse.extract(text.mask(raw == ""), r"^(?P<h>\d{2})(?P<m>\d{2})$").apply(parse.to_float)
    bad = (raw != "") & (clock["h"].isna() | ~clock["h"].between(0, 24) | ~clock["m"].between(0, 59)
                         | ((clock["h"] == 24) & (clock["m"] > 0)))
    table.check("onset_time", bad, "a time HHMM like 1800 (0000-2400) or an hour 0-24")
    return start + pd.to_timedelta(clock["h"], unit="h") + pd.to_timedelta(clock["m"], unit="min")


def emd_codes(table) -> pd.Series:
    """EMD_CD as the 10-digit 법정동 code; an 8-digit code (읍면동 without 리) gets its 리 digits 00."""
    if not table.has("emd_cd"):
        return pd.Series(pd.NA, index=table.index, dtype="Int64")
    raw = table.raw("emd_cd")
    table.check("emd_cd", (raw != "") & ~raw.str.fullmatch(r"\d{8}|\d{10}"), "an 8- or 10-digit 읍면동 code")
    codes = parse.to_float(raw.mask(raw == "")).astype("Int64")
    return codes.where(raw.str.len() != 8, codes * 100)


@loader("flood_traces")
def load_flood_traces(path: Path) -> pd.DataFrame:
    """One row per trace; ``onset`` = SAT_DATE + SAT_TM (NaT where the trace has no time); depth in m,
    grade 1-5 as the map prints it, the trace's centre in WGS84."""
    table = read_table(path, C)
    start = parse.date_parts(table, "start_date", C.times, "a date like 20210723")
    lat, lon = wkt_centres(table)
    frame = pd.DataFrame({
        "depth_m": parse.number(table, "depth_m", missing=C.missing),
        "grade": (parse.number(table, "grade", missing=C.missing) if table.has("grade")
                  else pd.Series(pd.NA, index=table.index)),
        "year": parse.integer(table, "year", expected="a year"),
        "cause": parse.text(table, "cause"),
        "start_date": start,
        "end_date": parse.date_parts(table, "end_date", C.times, "a date like 20210723"),
        "onset": onset(table, start),
        "sgg_cd": parse.codes(table, "sgg_cd", digits=5),
        "emd_cd": emd_codes(table),
        "lat": lat,
        "lon": lon,
    })
    table.check("end_date", frame["end_date"] < frame["start_date"], "an end date on or after SAT_DATE")
    origin = {c: c for c in frame.columns} | {"onset": "onset_time", "lat": "geometry", "lon": "geometry"}
    return finish(table, frame, "flood_traces", origin)

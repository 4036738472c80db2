"""Flood trace map (침수흔적도, ``FLUD_TRACE_*.csv``) with WKT geometry in lon/lat."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.sources import loader
from features.sources.loaders import parse
from features.sources.loaders.csvfile import finish, read_table

COLUMNS = {
    "depth_m": ("FLUD_SHIM",),
    "grade": ("FLUD_GD",),
    "year": ("FLUD_YEAR",),
    "cause": ("FLUD_NM2",),
    "start_date": ("SAT_DATE",),
    "end_date": ("END_DATE",),
    "onset_hour": ("SAT_TM",),
    "sgg_cd": ("SGG_CD",),
    "emd_cd": ("EMD_CD",),
    "geometry": ("geometry", "WKT", "geom"),
}
DATE_PATTERN = r"^(?P<year>\d{4})-?(?P<month>\d{2})-?(?P<day>\d{2})$"
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


@loader("flood_traces")
def load_flood_traces(path: Path) -> pd.DataFrame:
    """One row per trace; ``onset`` = SAT_DATE + SAT_TM hours (NaT where the trace has no hour)."""
    table = read_table(path, COLUMNS, optional=("onset_hour", "emd_cd", "cause", "grade"))
    start = parse.date_parts(table, "start_date", DATE_PATTERN, "a date like 20210723")
    hour = parse.number(table, "onset_hour", expected="an hour 00-23")
    table.check("onset_hour", ~(hour.isna() | hour.isin(range(24))), "an hour 00-23")
    lat, lon = wkt_centres(table)
    frame = pd.DataFrame({
        "depth_m": parse.number(table, "depth_m", missing=("", "-")),
        "grade": (parse.number(table, "grade", missing=("", "-")) if table.has("grade")
                  else pd.Series(pd.NA, index=table.index)),
        "year": parse.integer(table, "year", expected="a year"),
        "cause": parse.text(table, "cause"),
        "start_date": start,
        "end_date": parse.date_parts(table, "end_date", DATE_PATTERN, "a date like 20210723"),
        "onset": start + pd.to_timedelta(hour, unit="h"),
        "sgg_cd": parse.codes(table, "sgg_cd", digits=5),
        "emd_cd": (parse.codes(table, "emd_cd", digits=10, nullable=True) if table.has("emd_cd")
                   else pd.Series(pd.NA, index=table.index, dtype="Int64")),
        "lat": lat,
        "lon": lon,
    })
    table.check("end_date", frame["end_date"] < frame["start_date"], "an end date on or after SAT_DATE")
    origin = {c: c for c in frame.columns} | {"onset": "onset_hour", "lat": "geometry", "lon": "geometry"}
    return finish(table, frame, "flood_traces", origin)

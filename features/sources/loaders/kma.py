"""KMA sources: ASOS and AWS hourly weather, the earthquake list, and the 1 h rain nowcast (RN1, 1-6 h ahead)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import DataError
from features.sources import loader
from features.sources.contracts import NOWCAST, QUAKE_STATIONS, QUAKES, WEATHER
from features.sources.loaders import parse
from features.sources.loaders.csvfile import finish, hourly, read_table

TIME_EXPECTED = "a time like 2021-01-01 01:00"


def load_weather(path: Path, source: str) -> pd.DataFrame:
    """ASOS or AWS hourly observations as the canonical weather frame; elements the export lacks (the
    portal exports only those the user ticked) are NaN."""
    table = read_table(path, WEATHER)
    rain = parse.number(table, "rain_mm")
    # KMA leaves rain blank with QC flag 9 when no rain was recorded; other blanks stay unknown.
    if table.has("rain_qc"):
        rain = rain.mask(rain.isna() & (table.raw("rain_qc") == "9"), 0.0)
    # Sea-level pressure compares across stations; station pressure is the fallback for exports without it.
    pressure_key = "sea_pressure" if table.has("sea_pressure") else "local_pressure"
    frame = pd.DataFrame({
        "station_id": parse.integer(table, "station_id", expected="a station number"),
        "time": parse.date_parts(table, "time", WEATHER.times, TIME_EXPECTED),
        "temp_c": parse.number(table, "temp_c"),
        "rain_mm": rain,
        "wind_ms": parse.number(table, "wind_ms"),
        "wind_dir_deg": parse.number(table, "wind_dir_deg"),
        "humidity_pct": parse.number(table, "humidity_pct"),
        "pressure_hpa": parse.number(table, pressure_key),
        "snow_cm": parse.number(table, "snow_cm"),
    })
    cumulative = None
    if table.has("rain_cum_mm") and not table.has("rain_mm"):
        cumulative = parse.number(table, "rain_cum_mm").reset_index(drop=True)
    origin = {c: c for c in frame.columns} | {"pressure_hpa": pressure_key}
    return hourly(finish(table, frame, source, origin), source, "station_id", cumulative)


@loader("asos")
def load_asos(path: Path) -> pd.DataFrame:
    """KMA ASOS hourly file (``OBS_ASOS_TIM_*.csv``)."""
    return load_weather(path, "asos")


@loader("aws")
def load_aws(path: Path) -> pd.DataFrame:
    """KMA AWS hourly file (``OBS_AWS_TIM_*.csv``); AWS has no snow depth, so ``snow_cm`` is NaN."""
    return load_weather(path, "aws")


@loader("quakes")
def load_quakes(path: Path) -> pd.DataFrame:
    """KMA earthquake list (``KMA_EQK_*.csv``), the earthquake API's items or canonical rows: "37.50 N"
    coordinates, "-" for unknown depth, ``magnitude_type`` ML (KMA's 규모) unless the row says Mw. An event
    without a number is named ``KMA-<origin time YYYYMMDDHHMMSS>``."""
    table = read_table(path, QUAKES)
    time = parse.date_parts(table, "time", QUAKES.times, "a time like 2021-01-01 12:34:56")
    kind = parse.text(table, "magnitude_type", missing=("", "-")).fillna("ML")
    table.check("magnitude_type", ~kind.isin(["ML", "Mw"]), "ML or Mw")
    number = parse.text(table, "event_no", missing=("", "-"))
    frame = pd.DataFrame({
        "event_no": number.fillna("KMA-" + time.dt.strftime("%Y%m%d%H%M%S")),
        "time": time,
        "magnitude": parse.number(table, "magnitude", required=True),
        "magnitude_type": kind,
        "depth_km": parse.number(table, "depth_km", missing=("", "-")),
        "max_intensity": parse.text(table, "max_intensity", missing=("", "-")),
        "lat": parse.coordinate(table, "lat", "lat"),
        "lon": parse.coordinate(table, "lon", "lon"),
        "location": parse.text(table, "location"),
    })
    return finish(table, frame, "quakes", {c: c for c in frame.columns})


#: A strong-motion record's unit, as the row names it, in g (1 gal = 1 cm/s², standard gravity 980.665 cm/s²).
PGA_UNITS = {"g": 1.0, "gal": 1 / 980.665, "%g": 0.01}


@loader("quake_stations")
def load_quake_stations(path: Path) -> pd.DataFrame:
    """Strong-motion records (``QUAKE_STATIONS_*.csv`` or API rows): event, station, lat, lon, PGA and its
    unit (g, gal or %g; every row names one), as ``pga_g``."""
    table = read_table(path, QUAKE_STATIONS)
    unit = parse.text(table, "unit", missing=("", "-")).str.strip().str.lower().str.replace(" ", "")
    table.check("unit", unit.isna(), f"the PGA's unit, one of {', '.join(PGA_UNITS)} (blank not allowed)")
    table.check("unit", ~unit.isin(list(PGA_UNITS)), f"one of {', '.join(PGA_UNITS)}")
    pga = parse.number(table, "pga", required=True, expected="a peak ground acceleration (a number)")
    table.check("pga", pga < 0, "a peak ground acceleration of 0 or more")
    event = parse.text(table, "event_no")
    table.check("event_no", event.isna(), "the event the record belongs to (blank not allowed)")
    station = parse.text(table, "station")
    table.check("station", station.isna(), "a station name or code (blank not allowed)")
    frame = pd.DataFrame({
        "event_no": event, "station": station,
        "lat": parse.coordinate(table, "lat", "lat"), "lon": parse.coordinate(table, "lon", "lon"),
        "pga_g": pga * unit.map(PGA_UNITS).astype(float),
        "time": pd.Series(pd.NaT, index=table.index, dtype="datetime64[ns]"),
    })
    return finish(table, frame, "quake_stations", {**{c: c for c in frame.columns}, "pga_g": "pga"})


_NUM = r"\d+(?:\.\d+)?"
_MM = r"\s*(?:mm)?\s*"
_RAIN = (rf"^(?:(?P<none>강수없음)|(?P<below>{_NUM}){_MM}미만|(?P<low>{_NUM}){_MM}~{_MM}(?P<high>{_NUM}){_MM}"
         rf"|(?P<above>{_NUM}){_MM}이상|(?P<plain>{_NUM}){_MM})$")


def rain_text(values: pd.Series) -> pd.Series:
    """KMA RN1 strings in mm: "강수없음" 0, "1mm 미만" 0.5, "12.5mm", "30.0~50.0mm" midpoint, "50.0mm 이상" 50.

    Cells that match none of these are NaN (blank cells too).
    """
    parts = parse.extract(values.str.strip(), _RAIN)
    number = {name: parse.to_float(parts[name]) for name in ("below", "low", "high", "above", "plain")}
    out = pd.Series(np.where(parts["none"].notna(), 0.0, np.nan), index=values.index)
    out = out.fillna(number["below"] / 2)  # "below 1 mm": half the bound is the least-biased guess
    out = out.fillna((number["low"] + number["high"]) / 2)
    return out.fillna(number["above"]).fillna(number["plain"])


_DATE = r"^(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})$"


def _stamp(table, date_key: str, time_key: str) -> pd.Series:
    """Date "YYYYMMDD" plus time "HHMM" (a leading zero may be missing: "600")."""
    day = parse.date_parts(table, date_key, _DATE, "a date like 20210101")
    clock = parse.extract(table.raw(time_key).str.zfill(4), r"^(?P<h>\d{2})(?P<m>\d{2})$").apply(parse.to_float)
    table.check(time_key, ~clock["h"].between(0, 23) | ~clock["m"].between(0, 59), "a time like 0600")
    return day + pd.to_timedelta(clock["h"], unit="h") + pd.to_timedelta(clock["m"], unit="min")


@loader("nowcast")
def load_nowcast(path: Path) -> pd.DataFrame:
    """KMA ultra-short-range forecast rows (``VSRT_RN1_*``: the API JSON, or its items as CSV); only
    category RN1 is kept.

    ``issued`` is the base time rounded up to the hour (KMA's HH30 issue serves from HH+1); ``valid`` is the
    end of the forecast hour (fcstTime + 1 h). Every forecast
    hour of an issue is kept (the service gives six); consumers pick the leads they use.
    """
    table = read_table(path, NOWCAST)
    rn1 = table.raw("category") == "RN1"
    if not rn1.any():
        raise DataError("no rows with category RN1 (1 h rain)", file=table.file, column="category")
    table = table.subset(rn1)
    rain = rain_text(table.raw("value"))
    table.check("value", rain.isna(),
                "a rain amount like 강수없음, 1mm 미만, 12.5mm, 30.0~50.0mm or 50.0mm 이상")
    frame = pd.DataFrame({
        # KMA issues the ultra-short-range forecast at HH30 for the hours from HH+1: as an input it belongs to
        # the next whole hour, so leads are whole hours (an HH30 issue with lead 1 is the hour ending HH+2).
        "issued": _stamp(table, "base_date", "base_time").dt.ceil("h"),
        "valid": _stamp(table, "fcst_date", "fcst_time") + pd.Timedelta(hours=1),
        "nx": parse.integer(table, "nx", expected="a grid x index"),
        "ny": parse.integer(table, "ny", expected="a grid y index"),
        "rain_mm": rain,
    })
    origin = {"issued": "base_date", "valid": "fcst_date", "nx": "nx", "ny": "ny", "rain_mm": "value"}
    return finish(table, frame, "nowcast", origin)

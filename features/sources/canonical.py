"""Canonical frames: what every loader returns, whatever the file's encoding or the source's quirks.

Feature builders read only these frames. Times are naive Korea Standard Time (KST). A timestamp of an
hourly observation is the *end* of the hour it covers, as KMA and AirKorea print it (AirKorea's hour 24
becomes 00:00 of the next day).

Bounds of measured elements (temperature, rain, elevation, ...) come from the one table of physical limits,
``features/sources/limits.py``; only checks that are no physical limit (non-negative counts, codes, grades,
coordinates) are written here.
"""

from __future__ import annotations

import pandera.pandas as pa

from features.sources import limits

_nullable_float = pa.Column(float, nullable=True, coerce=True)


def _f(**checks) -> pa.Column:
    return pa.Column(float, nullable=True, coerce=True, **checks)


def _limited(column: str) -> pa.Column:
    """A nullable float column checked against its hard limits in the table (``limits.LIMITS``)."""
    return _f(checks=limits.check(column))


WEATHER = pa.DataFrameSchema(
    {
        "station_id": pa.Column(int, coerce=True),
        "time": pa.Column("datetime64[ns]", coerce=True),
        "temp_c": _limited("temp_c"),
        "rain_mm": _limited("rain_mm"),
        "wind_ms": _limited("wind_ms"),
        "wind_dir_deg": _limited("wind_dir_deg"),
        "humidity_pct": _limited("humidity_pct"),
        "pressure_hpa": _limited("pressure_hpa"),
        "snow_cm": _limited("snow_cm"),
    },
    name="weather",
)

AIR = pa.DataFrameSchema(
    {
        # Blank where the file names the station only (the real-time API): matched by name to the city.
        "station_code": pa.Column("Int64", nullable=True, coerce=True),
        "station_name": pa.Column(str),
        "time": pa.Column("datetime64[ns]", coerce=True),
        "so2": _f(checks=pa.Check.ge(0)),
        "co": _f(checks=pa.Check.ge(0)),
        "o3": _f(checks=pa.Check.ge(0)),
        "no2": _f(checks=pa.Check.ge(0)),
        "pm10": _limited("pm10"),
        "pm25": _limited("pm25"),
    },
    name="air",
)

ACCIDENTS = pa.DataFrameSchema(
    {
        "time": pa.Column("datetime64[ns]", coerce=True),  # start of the hour of the accident
        "weather": pa.Column(str, nullable=True),
        "district": pa.Column(str),
        "road_type": pa.Column(str, nullable=True),
        "surface": pa.Column(str, nullable=True),
        "accident_type": pa.Column(str, nullable=True),
        "deaths": pa.Column(int, pa.Check.ge(0), coerce=True),
        "serious": pa.Column(int, pa.Check.ge(0), coerce=True),
        "minor": pa.Column(int, pa.Check.ge(0), coerce=True),
        "reported": pa.Column(int, pa.Check.ge(0), coerce=True),
        "eclo": _f(checks=pa.Check.ge(0)),
        "lat": _f(checks=pa.Check.in_range(-90, 90)),  # NaN when the export has no coordinates
        "lon": _f(checks=pa.Check.in_range(-180, 180)),
    },
    name="accidents",
)

QUAKES = pa.DataFrameSchema(
    {
        "event_no": pa.Column(str),
        "time": pa.Column("datetime64[ns]", coerce=True),
        "magnitude": _limited("magnitude"),
        "magnitude_type": pa.Column(str, pa.Check.isin(["ML", "Mw"])),  # KMA's 규모 is ML
        "depth_km": _limited("depth_km"),  # NaN where KMA prints "-"
        "max_intensity": pa.Column(str, nullable=True),
        "lat": pa.Column(float, pa.Check.in_range(-90, 90), coerce=True),
        "lon": pa.Column(float, pa.Check.in_range(-180, 180), coerce=True),
        "location": pa.Column(str, nullable=True),
    },
    name="quakes",
)

QUAKE_STATIONS = pa.DataFrameSchema(
    {
        "event_no": pa.Column(str),
        "station": pa.Column(str),
        "lat": pa.Column(float, pa.Check.in_range(-90, 90), coerce=True),
        "lon": pa.Column(float, pa.Check.in_range(-180, 180), coerce=True),
        "pga_g": _limited("pga_g"),
        # The event's origin time, filled in from the held event when the record is taken (live/ingest.py).
        "time": pa.Column("datetime64[ns]", nullable=True, coerce=True),
    },
    name="quake_stations",
)

BUILDINGS = pa.DataFrameSchema(
    {
        "sgg_cd": pa.Column(int, coerce=True),
        "purpose": pa.Column(str, nullable=True),
        "structure": pa.Column(str, nullable=True),
        "other_structure": pa.Column(str, nullable=True),  # e.g. contains "필로티" for open ground storeys
        "floor_area_m2": _f(checks=pa.Check.ge(0)),
        "floors_above": pa.Column(int, limits.check("floors_above"), coerce=True),
        "floors_below": pa.Column(int, limits.check("floors_below"), coerce=True),
        "height_m": _f(checks=pa.Check.ge(0)),
        "approval_date": pa.Column("datetime64[ns]", nullable=True, coerce=True),
        "seismic_design": pa.Column("boolean", nullable=True, coerce=True),
        "seismic_ability": pa.Column(str, nullable=True),
        # The register has no coordinates: buildings are placed by parcel number (PNU, 19 digits) or
        # address (features/sources/placement.py); lat/lon are NaN until then.
        "pnu": pa.Column(str, pa.Check.str_matches(r"^\d{19}$"), nullable=True),
        "address": pa.Column(str, nullable=True),
        "lat": _f(checks=pa.Check.in_range(-90, 90)),
        "lon": _f(checks=pa.Check.in_range(-180, 180)),
    },
    name="buildings",
)

FLOOD_TRACES = pa.DataFrameSchema(
    {
        "depth_m": _limited("depth_m"),
        "grade": pa.Column("Int64", pa.Check.in_range(1, 5), nullable=True, coerce=True),
        "year": pa.Column(int, coerce=True),
        "cause": pa.Column(str, nullable=True),
        "start_date": pa.Column("datetime64[ns]", coerce=True),
        "end_date": pa.Column("datetime64[ns]", coerce=True),
        "onset": pa.Column("datetime64[ns]", nullable=True, coerce=True),  # NaT where the trace has no hour
        "sgg_cd": pa.Column(int, coerce=True),
        "emd_cd": pa.Column("Int64", nullable=True, coerce=True),  # 10-digit 법정동 code; blank where none
        "lat": pa.Column(float, pa.Check.in_range(-90, 90), coerce=True),
        "lon": pa.Column(float, pa.Check.in_range(-180, 180), coerce=True),
    },
    name="flood_traces",
)

TIDE = pa.DataFrameSchema(
    {
        "station": pa.Column(str),
        "time": pa.Column("datetime64[ns]", coerce=True),
        "tide_cm": _limited("tide_cm"),  # observed
        "tide_pred_cm": _limited("tide_pred_cm"),  # astronomical, published ahead
    },
    name="tide",
)

NOWCAST = pa.DataFrameSchema(
    {
        "issued": pa.Column("datetime64[ns]", coerce=True),
        "valid": pa.Column("datetime64[ns]", coerce=True),  # end of the forecast hour
        "nx": pa.Column(int, coerce=True),
        "ny": pa.Column(int, coerce=True),
        "rain_mm": _limited("rain_mm"),
    },
    name="nowcast",
)

STATIC = pa.DataFrameSchema(
    {
        "cell_id": pa.Column(str, unique=True),
        "elevation_m": _limited("elevation_m"),
        "slope_deg": _limited("slope_deg"),
        "dist_coast_m": _f(checks=pa.Check.ge(0)),
        "dist_stream_m": _f(checks=pa.Check.ge(0)),
        "impervious_share": _limited("impervious_share"),
        "drain_capacity_mmh": _limited("drain_capacity_mmh"),
        "manhole_density_km2": _f(checks=pa.Check.ge(0)),
        "reclaimed": _f(checks=pa.Check.isin([0, 1])),
        "road_km_arterial": _f(checks=pa.Check.ge(0)),
        "road_km_collector": _f(checks=pa.Check.ge(0)),
        "road_km_local": _f(checks=pa.Check.ge(0)),
        "intersections": _f(checks=pa.Check.ge(0)),
        "traffic_volume": _f(checks=pa.Check.ge(0)),
        "bus_stops": _f(checks=pa.Check.ge(0)),
        "schools": _f(checks=pa.Check.ge(0)),
        "commercial_share": _limited("commercial_share"),
        "pop_day": _f(checks=pa.Check.ge(0)),
        "pop_night": _f(checks=pa.Check.ge(0)),
        "vs30_mps": _limited("vs30_mps"),
    },
    name="static",
)

DAMAGE_SURVEYS = pa.DataFrameSchema(
    {
        "scenario_id": pa.Column(str),
        "time": pa.Column("datetime64[ns]", coerce=True),
        "magnitude": pa.Column(float, limits.check("magnitude"), coerce=True),
        "depth_km": pa.Column(float, limits.check("depth_km"), coerce=True),
        "lat": pa.Column(float, pa.Check.in_range(-90, 90), coerce=True),
        "lon": pa.Column(float, pa.Check.in_range(-180, 180), coerce=True),
        "cell_id": pa.Column(str),
        "buildings": pa.Column(int, pa.Check.ge(1), coerce=True),
        "damaged": pa.Column(int, pa.Check.ge(0), coerce=True),
        "scenario_weight": pa.Column(float, pa.Check.gt(0), coerce=True, required=False),
    },
    name="damage_surveys",
)

PARCELS = pa.DataFrameSchema(
    {
        "pnu": pa.Column(str, pa.Check.str_matches(r"^\d{19}$")),
        "lat": pa.Column(float, pa.Check.in_range(-90, 90), coerce=True),
        "lon": pa.Column(float, pa.Check.in_range(-180, 180), coerce=True),
    },
    name="parcels",
)

ADDRESSES = pa.DataFrameSchema(
    {
        "address": pa.Column(str),
        "lat": pa.Column(float, pa.Check.in_range(-90, 90), coerce=True),
        "lon": pa.Column(float, pa.Check.in_range(-180, 180), coerce=True),
    },
    name="addresses",
)

SCHEMAS: dict[str, pa.DataFrameSchema] = {
    "asos": WEATHER, "aws": WEATHER, "airkorea": AIR, "taas": ACCIDENTS, "quakes": QUAKES, "quake_stations": QUAKE_STATIONS,
    "buildings": BUILDINGS, "flood_traces": FLOOD_TRACES, "tide": TIDE, "nowcast": NOWCAST,
    "static": STATIC, "damage_surveys": DAMAGE_SURVEYS, "parcels": PARCELS, "addresses": ADDRESSES,
}

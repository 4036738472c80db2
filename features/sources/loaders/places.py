"""Layers that place the building register: a parcel or footprint layer with the PNU, a geocoded address table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.sources import loader
from features.sources.contracts import ADDRESSES, PARCELS
from features.sources.loaders import parse
from features.sources.loaders.csvfile import finish, read_table
from features.sources.loaders.flood_traces import wkt_centres


@loader("parcels")
def load_parcels(path: Path) -> pd.DataFrame:
    """One row per parcel or footprint: its 19-digit PNU and its centre in WGS84 (a Shapefile, GeoJSON or
    GeoPackage in any CRS, e.g. the national GIS building layer's A1 = PNU; or a CSV with WKT in lon/lat)."""
    table = read_table(path, PARCELS)
    pnu = table.raw("pnu")
    table.check("pnu", ~pnu.str.fullmatch(r"\d{19}"), "a 19-digit parcel number (PNU)")
    lat, lon = wkt_centres(table)
    frame = pd.DataFrame({"pnu": pnu, "lat": lat, "lon": lon})
    return finish(table, frame, "parcels", {"pnu": "pnu", "lat": "geometry", "lon": "geometry"})


@loader("addresses")
def load_addresses(path: Path) -> pd.DataFrame:
    """Geocoded addresses: the register's 대지위치 (or road address) and its WGS84 coordinates."""
    table = read_table(path, ADDRESSES)
    frame = pd.DataFrame({"address": parse.text(table, "address"), "lat": parse.coordinate(table, "lat", "lat"),
                          "lon": parse.coordinate(table, "lon", "lon")})
    table.check("address", frame["address"].isna(), "an address (blank not allowed)")
    return finish(table, frame, "addresses", {c: c for c in frame.columns})

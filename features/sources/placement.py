"""Placing the building register: by parcel number (PNU) through a parcel or footprint layer, else by
address through a geocoded address table.

The register (건축물대장) never has coordinates. Its title part carries 시군구코드, 법정동코드, 대지구분코드,
번 and 지, which make the 19-digit PNU that the cadastral map (연속지적도) and the national GIS building
layer (GIS건물통합정보, field A1) carry with their geometry; the user imports one of those as source
``parcels``. A geocoded table of 대지위치 (source ``addresses``) places the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.errors import DataError


@dataclass
class Placement:
    total: int
    given: int  # coordinates in the file itself (the embedded data set)
    by_pnu: int
    by_address: int
    with_pnu: int
    with_address: int
    parcels: bool  # whether a parcel layer was there to join
    addresses: bool

    @property
    def unplaced(self) -> int:
        return self.total - self.given - self.by_pnu - self.by_address

    def lines(self) -> list[str]:
        """What placing found, and what is missing to place the rest."""
        out = [f"placed {self.total - self.unplaced:,} of {self.total:,} buildings: {self.given:,} by the "
               f"file's coordinates, {self.by_pnu:,} by parcel number (PNU), {self.by_address:,} by address"]
        if self.unplaced:
            missing = []
            if not self.parcels and self.with_pnu:
                missing.append(f"{self.with_pnu:,} have a PNU but there is no parcel or footprint layer "
                               "(import one: `urban-safety data import --source parcels FILE.shp`)")
            if not self.addresses and self.with_address:
                missing.append(f"{self.with_address:,} have an address but there is no geocoded address "
                               "table (`urban-safety data import --source addresses FILE.csv`)")
            if not missing:
                missing.append("their PNU and address are not in the imported parcel layer or address table")
            out.append(f"{self.unplaced:,} not placed: " + "; ".join(missing))
        return out


def _join(frame: pd.DataFrame, lookup: pd.DataFrame | None, key: str) -> tuple[pd.Series, pd.Series]:
    if lookup is None or frame.empty:
        nan = pd.Series(float("nan"), index=frame.index)
        return nan, nan
    centres = lookup.groupby(key)[["lat", "lon"]].mean()  # a parcel with several footprints: their centre
    joined = frame[[key]].join(centres, on=key)
    return joined["lat"], joined["lon"]


def place_buildings(buildings: pd.DataFrame, parcels: pd.DataFrame | None,
                    addresses: pd.DataFrame | None) -> tuple[pd.DataFrame, Placement]:
    """Fill lat/lon by PNU, then by address (whitespace-normalised); return every row and the counts."""
    out = buildings.copy()
    given = out["lat"].notna() & out["lon"].notna()
    todo = ~given
    lat, lon = _join(out.loc[todo], parcels, "pnu")
    by_pnu = lat.notna() & lon.notna()
    out.loc[by_pnu[by_pnu].index, ["lat", "lon"]] = pd.DataFrame({"lat": lat, "lon": lon})[by_pnu].to_numpy()
    todo = out["lat"].isna() | out["lon"].isna()
    norm = addresses.assign(address=addresses["address"].str.split().str.join(" ")) if addresses is not None else None
    rows = out.loc[todo].assign(address=out.loc[todo, "address"].str.split().str.join(" "))
    lat, lon = _join(rows, norm, "address")
    by_address = lat.notna() & lon.notna()
    out.loc[by_address[by_address].index, ["lat", "lon"]] = pd.DataFrame({"lat": lat, "lon": lon})[by_address].to_numpy()
    report = Placement(total=len(out), given=int(given.sum()), by_pnu=int(by_pnu.sum()),
                       by_address=int(by_address.sum()), with_pnu=int(out.loc[~given, "pnu"].notna().sum()),
                       with_address=int(out.loc[~given, "address"].notna().sum()),
                       parcels=parcels is not None, addresses=addresses is not None)
    return out, report


def placed(buildings: pd.DataFrame, parcels: pd.DataFrame | None, addresses: pd.DataFrame | None) -> pd.DataFrame:
    """Only the buildings that could be placed; none at all is an error saying what is missing."""
    out, report = place_buildings(buildings, parcels, addresses)
    out = out[out["lat"].notna() & out["lon"].notna()].reset_index(drop=True)
    if out.empty:
        raise DataError("buildings: no building could be placed. " + " ".join(report.lines()[1:]))
    return out

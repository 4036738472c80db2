"""Building register title part (건축물대장 표제부): the bulk '|'-separated text (no header, CP949), the open
API's getBrTitleInfo fields, or a table with the register's Korean headers.

No real register export has coordinates. Each building gets its parcel number (PNU) and lot address
here; ``features/sources/placement.py`` places it through a parcel/footprint layer or a geocoded
address table. A file that does carry 위도/경도 (the embedded data set) keeps them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.sources import loader
from features.sources.contracts import BUILDINGS as C
from features.sources.loaders import parse
from features.sources.loaders.csvfile import finish, read_table

YES_NO = {"1": True, "Y": True, "0": False, "N": False}
# 대지구분코드 0 대지 / 1 산 -> the PNU's land digit 1 일반 / 2 산 (a 블록 lot, 2, has no parcel number).
PLAT_TO_PNU = {"0": "1", "1": "2", "": "1"}


def approval_dates(table) -> pd.Series:
    """사용승인일 YYYYMMDD; blank -> NaT. The register writes an unknown month or day as 00: read as 01."""
    raw = table.raw("approval_date")
    zeros = raw.str.fullmatch(r"\d{4}(?:00\d{2}|\d{2}00)")
    fixed = raw.copy()
    if zeros.any():  # Python-level regex replace, so only on the few cells that need it
        fixed[zeros] = raw[zeros].str.replace(r"^(\d{4})00", r"\g<1>01", regex=True).str.replace(
            r"^(\d{6})00$", r"\g<1>01", regex=True)
    return parse.date_parts(table, "approval_date", C.times, "a date like 20150312 or blank",
                            required=False, values=fixed)


def seismic_design(table) -> pd.Series:
    """내진설계적용여부 "1"/"0"/"Y"/"N"/blank as a nullable boolean."""
    if not table.has("seismic_design"):
        return pd.Series(pd.NA, index=table.index, dtype="boolean")
    raw = table.raw("seismic_design").str.upper()
    table.check("seismic_design", ~raw.isin([*YES_NO, ""]), "1, 0, Y, N or blank")
    return raw.map(YES_NO).astype("boolean")


def parcel_numbers(table, sgg: pd.Series) -> pd.Series:
    """PNU (19 digits): 시군구 5 + 법정동 5 + land digit 1 + 번 4 + 지 4; NaN where a part is missing."""
    if not all(table.has(k) for k in ("bjdong_cd", "bun")):
        return pd.Series(np.nan, index=table.index, dtype=object)
    bjdong, bun = table.raw("bjdong_cd"), table.raw("bun")
    ji = table.raw("ji") if table.has("ji") else pd.Series("0", index=table.index)
    plat = table.raw("plat_gb_cd").map(PLAT_TO_PNU) if table.has("plat_gb_cd") else "1"
    table.check("bjdong_cd", (bjdong != "") & ~bjdong.str.fullmatch(r"\d{5}"), "a 5-digit 법정동 code")
    table.check("bun", ~bun.str.fullmatch(r"\d{0,4}"), "a lot number of at most 4 digits")
    table.check("ji", ~ji.str.fullmatch(r"\d{0,4}"), "a sub-lot number of at most 4 digits")
    pnu = sgg.astype(str).str.zfill(5) + bjdong + plat + bun.str.zfill(4) + ji.replace("", "0").str.zfill(4)
    return pnu.where((bjdong != "") & (bun != "") & pd.Series(plat, index=table.index).notna())


def _coordinate(table, key: str) -> pd.Series:
    if not table.has(key):
        return pd.Series(np.nan, index=table.index)
    raw = table.raw(key)
    values = pd.Series(np.nan, index=table.index)
    given = raw != ""
    if given.any():
        values[given] = parse.coordinate(table.subset(given), key, key)
    return values


@loader("buildings")
def load_buildings(path: Path) -> pd.DataFrame:
    """One row per building: floor area m2, floors, height m, approval date, seismic design; a blank
    지하층수 means no basement."""
    table = read_table(path, C)
    sgg = parse.codes(table, "sgg_cd", digits=5)
    frame = pd.DataFrame({
        "sgg_cd": sgg,
        "purpose": parse.text(table, "purpose"),
        "structure": parse.text(table, "structure"),
        "other_structure": parse.text(table, "other_structure"),
        "floor_area_m2": parse.number(table, "floor_area_m2"),
        "floors_above": parse.integer(table, "floors_above", expected="a number of floors"),
        "floors_below": (parse.integer(table, "floors_below", default=0, expected="a number of floors")
                         if table.has("floors_below") else pd.Series(0, index=table.index)),
        "height_m": parse.number(table, "height_m"),
        "approval_date": approval_dates(table),
        "seismic_design": seismic_design(table),
        "seismic_ability": parse.text(table, "seismic_ability"),
        "pnu": parcel_numbers(table, sgg),
        "address": parse.text(table, "address"),
        "lat": _coordinate(table, "lat"),
        "lon": _coordinate(table, "lon"),
    })
    origin = {c: c for c in frame.columns} | {"pnu": "bun"}
    return finish(table, frame, "buildings", origin)

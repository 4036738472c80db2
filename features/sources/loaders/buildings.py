"""Building register title part (건축물대장 표제부, ``BLD_TITLE_*.csv``), file or API column names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.sources import loader
from features.sources.loaders import parse
from features.sources.loaders.csvfile import finish, read_table

# Korean header first (as the register prints it), then the open API's field name.
COLUMNS = {
    "sgg_cd": ("시군구코드", "sigunguCd"),
    "purpose": ("주용도", "주용도코드명", "mainPurpsCdNm"),
    "structure": ("주구조", "구조코드명", "strctCdNm"),
    "other_structure": ("기타구조", "etcStrct"),
    "floor_area_m2": ("연면적(㎡)", "totArea"),
    "floors_above": ("지상층수", "grndFlrCnt"),
    "floors_below": ("지하층수", "ugrndFlrCnt"),
    "height_m": ("높이(m)", "heit"),
    "approval_date": ("사용승인일", "useAprDay"),
    "seismic_design": ("내진설계적용여부", "rserthqkDsgnApplyYn"),
    "seismic_ability": ("내진능력", "rserthqkAblty"),
    "lat": ("위도", "lat", "latitude"),
    "lon": ("경도", "lon", "lng", "longitude"),
}
OPTIONAL = ("other_structure", "seismic_ability", "floors_below", "height_m")
DATE_PATTERN = r"^(?P<year>\d{4})-?(?P<month>\d{2})-?(?P<day>\d{2})$"
YES_NO = {"1": True, "Y": True, "0": False, "N": False}


def approval_dates(table) -> pd.Series:
    """사용승인일 YYYYMMDD; blank -> NaT. The register writes an unknown month or day as 00: read as 01."""
    raw = table.raw("approval_date")
    zeros = raw.str.fullmatch(r"\d{4}(?:00\d{2}|\d{2}00)")
    fixed = raw.copy()
    if zeros.any():  # Python-level regex replace, so only on the few cells that need it
        fixed[zeros] = raw[zeros].str.replace(r"^(\d{4})00", r"\g<1>01", regex=True).str.replace(
            r"^(\d{6})00$", r"\g<1>01", regex=True)
    return parse.date_parts(table, "approval_date", DATE_PATTERN, "a date like 20150312 or blank",
                            required=False, values=fixed)


def seismic_design(table) -> pd.Series:
    """내진설계적용여부 "1"/"0"/"Y"/"N"/blank as a nullable boolean."""
    raw = table.raw("seismic_design").str.upper()
    table.check("seismic_design", ~raw.isin([*YES_NO, ""]), "1, 0, Y, N or blank")
    return raw.map(YES_NO).astype("boolean")


@loader("buildings")
def load_buildings(path: Path) -> pd.DataFrame:
    """One row per building; a blank 지하층수 means no basement."""
    table = read_table(path, COLUMNS, OPTIONAL)
    frame = pd.DataFrame({
        "sgg_cd": parse.codes(table, "sgg_cd", digits=5),
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
        "lat": parse.coordinate(table, "lat", "lat"),
        "lon": parse.coordinate(table, "lon", "lon"),
    })
    return finish(table, frame, "buildings", {c: c for c in frame.columns})

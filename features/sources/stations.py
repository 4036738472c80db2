"""Stations as the files name them: matched to the city config by code, else by name.

AirKorea's real-time API names stations only (``stationName``); final data carries 측정소코드 too. KMA
files carry the station number (지점). A station the city config does not know is listed with the line
to add to the city's TOML, so the user can place it (coordinates) and name its role.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from features.errors import DataError


def _name_key(name) -> str:
    return "".join(str(name).split()).casefold()


@dataclass
class Matched:
    """What matching a source's rows to the city's stations found."""

    matched: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)  # lines to add to the city config


def match_air(frame: pd.DataFrame, city) -> tuple[pd.DataFrame, Matched]:
    """Fill blank ``station_code`` from the name in the city config (whitespace and case ignored); codes
    given in the file are kept. Returns the frame and what matched."""
    by_name = {_name_key(s.name): s.code for s in city.air_stations}
    known = {s.code: s.name for s in city.air_stations}
    codes = frame["station_code"].astype("Int64")
    from_name = frame["station_name"].map(lambda n: by_name.get(_name_key(n))).astype("Int64")
    codes = codes.fillna(from_name)
    out = frame.assign(station_code=codes)
    report = Matched()
    pairs = out[["station_code", "station_name"]].drop_duplicates()
    for code, name in pairs.itertuples(index=False):
        if pd.notna(code) and int(code) in known:
            report.matched.append(f"{name} ({int(code)})")
        else:
            label = f"{name} ({int(code)})" if pd.notna(code) else str(name)
            report.unmatched.append(label)
            code_text = str(int(code)) if pd.notna(code) else "<측정소코드 from AirKorea's station list>"
            report.advice.append(f'[[air_stations]] code = {code_text}, name = "{name}", region = "<시도 구>", '
                                 "lon = <lon>, lat = <lat>")
    return out, report


def match_weather(frame: pd.DataFrame, city, kind: str) -> Matched:
    """KMA stations by number (지점); the advice names the station's kind (asos or aws)."""
    known = {s.id: s.name for s in city.weather_stations}
    report = Matched()
    for sid in sorted(frame["station_id"].dropna().unique()):
        if int(sid) in known:
            report.matched.append(f"{known[int(sid)]} ({int(sid)})")
        else:
            report.unmatched.append(str(int(sid)))
            report.advice.append(f'[[weather_stations]] id = {int(sid)}, name = "<지점명>", kind = "{kind}", '
                                 "lon = <lon>, lat = <lat>, nx = <forecast grid x>, ny = <forecast grid y>")
    return report


def match_tide(frame: pd.DataFrame, city) -> Matched:
    """The tide station by name (관측소명), which is all the portal's files carry."""
    report = Matched()
    for name in sorted(frame["station"].dropna().unique()):
        if city.tide is not None and _name_key(name) == _name_key(city.tide.station):
            report.matched.append(name)
        else:
            report.unmatched.append(name)
            report.advice.append(f'[tide] station = "{name}", code = "<KHOA code, e.g. DT_0001>", lon = <lon>, '
                                 "lat = <lat>")
    return report


def usable_air(frame: pd.DataFrame, city) -> pd.DataFrame:
    """Rows the feature builders can use: station known by code (after name matching), as int64."""
    matched, report = match_air(frame, city)
    matched = matched[matched["station_code"].notna()]
    if matched.empty:
        raise DataError(f"airkorea: no station in the files is in the city config of {city.name} (found: "
                        f"{', '.join(report.unmatched[:10])}); add them as [[air_stations]]")
    return matched.assign(station_code=matched["station_code"].astype("int64")).reset_index(drop=True)

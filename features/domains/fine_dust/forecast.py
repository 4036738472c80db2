"""Tomorrow's weather as a fine-dust input: KMA short-range forecast (단기예보) fields, their grid point,
and the forecast error that training puts on the observed weather standing in for them.

The request gives the target day's forecast in the units of KMA's short-range forecast API
(``VilageFcstInfoService_2.0/getVilageFcst``, categories per forecast hour): WSD wind speed (m/s), VEC
wind direction (deg, where the wind blows from), PCP 1-hour precipitation (mm; the API prints text
categories, see :func:`pcp_mm`), REH relative humidity (%), TMP temperature (°C). The conditions are the
target day's aggregates of those hourly values: mean WSD, the prevailing (vector-mean) VEC, the sum of
PCP, mean REH and mean TMP; and the mean WSD and prevailing VEC at the upwind background station's grid
point (Incheon: 백령도), whose westerly flow brings today's transboundary dust tomorrow. The short-range forecast carries no mixing height; KMA's SKY/PTY codes and
TMX/TMN are not taken (the embedded data has no cloud cover to train them on).

Where a forecast field is not given, the target day is forecast by persistence: the last 24 h of
observed weather before the issue time stands in, and the answer says it is persistence-grade.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from features.errors import DataError

#: Forecast condition -> (KMA category, unit, description, minimum, maximum).
FIELDS = {
    "fcst_wsd": ("WSD", "m/s", "target day's mean forecast wind speed (KMA short-range WSD)", 0.0, 40.0),
    "fcst_vec": ("VEC", "deg", "target day's prevailing forecast wind direction, where it blows from "
                 "(KMA VEC; 270 = westerly)", 0.0, 360.0),
    "fcst_pcp": ("PCP", "mm", "target day's total forecast precipitation: the sum of the hourly KMA PCP "
                 "values (text categories as mm: 강수없음 0, '1mm 미만' 0.5, '30.0~50.0mm' 40, "
                 "'50.0mm 이상' 50)", 0.0, 500.0),
    "fcst_reh": ("REH", "%", "target day's mean forecast relative humidity (KMA REH)", 0.0, 100.0),
    "fcst_tmp": ("TMP", "°C", "target day's mean forecast temperature (KMA TMP)", -40.0, 45.0),
    # Transboundary dust rides the flow over the Yellow Sea: the forecast at the upwind background station
    # (Incheon: 백령도) says whether today's dust there reaches the city tomorrow.
    "fcst_upwind_wsd": ("WSD", "m/s", "target day's mean forecast wind speed at the upwind background station "
                        "(KMA short-range WSD at its grid point)", 0.0, 40.0),
    "fcst_upwind_vec": ("VEC", "deg", "target day's prevailing forecast wind direction at the upwind background "
                        "station, where it blows from (KMA VEC at its grid point; 270 = westerly)", 0.0, 360.0),
}
NAMES = tuple(FIELDS)
UPWIND = ("fcst_upwind_wsd", "fcst_upwind_vec")  # read at the upwind station's grid point, not the station's
LOCAL = tuple(n for n in NAMES if n not in UPWIND)

#: Forecast error put on the observed target-day weather in training (one draw per day, shared by the
#: stations: a forecast's error is synoptic, not per street). Figures and where they come from:
#:
#: - precipitation: KMA's published precipitation yes/no accuracy (강수유무 정확도) has stayed near but
#:   under 90% (KMA's verification pages, as quoted in the Korean press in 2023), while the 2017 Board of
#:   Audit and Inspection report put the rain-forecast hit rate (rainy forecasts that verified) at 46%.
#:   A wet day is missed with probability 0.3, a dry day gets a false rain forecast with probability
#:   0.06 (about 0.88 yes/no accuracy and a critical success index near 0.55 at Incheon's ~25% wet
#:   days), and a forecast amount is off by a lognormal factor (sigma 0.6).
#: - temperature: KMA's weekly forecast had max/min errors of 1.9/1.7 °C (2011, press release quoted by
#:   Yonhap); day-1 errors are smaller, 1.5 °C is assumed (not verified against a KMA table).
#: - wind speed 1.3 m/s, direction 30°, humidity 8%: typical day-1 errors of 10 m wind and 2 m humidity
#:   from limited-area NWP; assumed, *not* verified against a published KMA verification.
#: - the upwind station's wind gets the same error sizes, drawn independently of the station's: errors
#:   170 km apart share part of the synoptic situation, so independent draws are the cautious choice.
RAIN_MISS, RAIN_FALSE_ALARM, RAIN_AMOUNT_SIGMA = 0.3, 0.06, 0.6
FALSE_RAIN_MEAN_MM = 2.0
WIND_SD_MS, DIRECTION_SD_DEG, HUMIDITY_SD_PCT, TEMP_SD_C = 1.3, 30.0, 8.0, 1.5
WET_MM = 0.1  # a day with at least this much rain is wet


def degrade(observed: pd.DataFrame, days: np.ndarray, seed: int = 15) -> pd.DataFrame:
    """Observed target-day weather (columns :data:`NAMES`; the :data:`UPWIND` ones optional) with a forecast
    error drawn per day.

    ``days`` (int64 ns of the target day, one per row) picks the draw, so every station and pollutant of
    one day shares one forecast and a table rebuilt from the same data gets the same errors.
    """
    out = observed.copy()
    uniq, inverse = np.unique(np.asarray(days, dtype=np.int64), return_inverse=True)
    names = ("wind", "dir", "rh", "temp", "u", "amount", "false", "up_wind", "up_dir")  # appended draws keep the rest
    table = np.empty((len(names), len(uniq)))
    for k, day in enumerate(uniq):  # one generator per day: a day's draw does not depend on the others
        rng = np.random.default_rng([seed, int(day // 3_600_000_000_000) & 0x7FFFFFFF])
        table[:, k] = (rng.normal(0, WIND_SD_MS), rng.normal(0, DIRECTION_SD_DEG), rng.normal(0, HUMIDITY_SD_PCT),
                       rng.normal(0, TEMP_SD_C), rng.random(), rng.lognormal(0, RAIN_AMOUNT_SIGMA),
                       rng.exponential(FALSE_RAIN_MEAN_MM), rng.normal(0, WIND_SD_MS), rng.normal(0, DIRECTION_SD_DEG))
    draws = dict(zip(names, table, strict=True))
    d = {name: v[inverse] for name, v in draws.items()}
    out["fcst_wsd"] = np.clip(observed["fcst_wsd"] + d["wind"], 0, FIELDS["fcst_wsd"][4])
    out["fcst_vec"] = (observed["fcst_vec"] + d["dir"]) % 360
    if "fcst_upwind_wsd" in observed:
        out["fcst_upwind_wsd"] = np.clip(observed["fcst_upwind_wsd"] + d["up_wind"], 0, FIELDS["fcst_upwind_wsd"][4])
        out["fcst_upwind_vec"] = (observed["fcst_upwind_vec"] + d["up_dir"]) % 360
    out["fcst_reh"] = np.clip(observed["fcst_reh"] + d["rh"], 0, 100)
    out["fcst_tmp"] = observed["fcst_tmp"] + d["temp"]
    rain = observed["fcst_pcp"].to_numpy(float)
    wet = rain >= WET_MM
    out["fcst_pcp"] = np.where(wet, np.where(d["u"] < RAIN_MISS, 0.0, rain * d["amount"]),
                               np.where(d["u"] < RAIN_FALSE_ALARM, np.round(d["false"], 1), 0.0))
    out.loc[np.isnan(rain), "fcst_pcp"] = np.nan
    return out


def wind_components(speed, direction) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) in m/s of a wind of ``speed`` m/s from ``direction`` degrees (u > 0: a westerly)."""
    speed = np.asarray(speed, dtype=float)
    rad = np.radians(np.asarray(direction, dtype=float))
    return -speed * np.sin(rad), -speed * np.cos(rad)


def direction_of(u, v) -> np.ndarray:
    """Meteorological direction (deg, where the wind comes from) of the vector (u, v)."""
    return np.degrees(np.arctan2(-np.asarray(u, float), -np.asarray(v, float))) % 360


_RANGE = re.compile(r"^\s*([\d.]+)\s*~\s*([\d.]+)\s*mm\s*$")
_AT_LEAST = re.compile(r"^\s*([\d.]+)\s*mm\s*이상\s*$")
_AMOUNT = re.compile(r"^\s*([\d.]+)\s*(mm)?\s*$")


def pcp_mm(value) -> float:
    """One KMA short-range PCP value in mm: 강수없음 -> 0, '1mm 미만' -> 0.5, '30.0~50.0mm' -> 40 (the
    band's middle), '50.0mm 이상' -> 50 (its floor), '6.0mm' or 6.0 -> 6. Anything else is a DataError."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0:
            raise DataError(f"PCP: {value!r} is not a precipitation amount (mm >= 0)")
        return float(value)
    text = str(value).strip()
    if text in ("강수없음", "-", "0"):
        return 0.0
    if text.replace(" ", "") == "1mm미만" or text.replace(" ", "") == "1.0mm미만":
        return 0.5
    for pattern, pick in ((_RANGE, lambda m: (float(m[1]) + float(m[2])) / 2),
                          (_AT_LEAST, lambda m: float(m[1])), (_AMOUNT, lambda m: float(m[1]))):
        match = pattern.match(text)
        if match:
            return pick(match)
    raise DataError(f"PCP: {value!r} is not a KMA short-range precipitation category "
                    "(강수없음, '1mm 미만', 'N.Nmm', 'A~Bmm', 'Nmm 이상')")


def grid_point(lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """KMA's 5 km short-range forecast grid point (nx, ny) of WGS84 points: the Lambert conformal conic
    projection of the 동네예보 grid (standard parallels 30 and 60 N, origin 38 N 126 E at grid point
    (43, 136), Earth radius 6371.00877 km), as in KMA's API guide. Seoul City Hall (37.5665 N, 126.978 E)
    is (60, 127)."""
    re_, grid, slat1, slat2, olon, olat, xo, yo = 6371.00877, 5.0, 30.0, 60.0, 126.0, 38.0, 43, 136
    deg = math.pi / 180.0
    r = re_ / grid
    s1, s2, lo0, la0 = slat1 * deg, slat2 * deg, olon * deg, olat * deg
    sn = math.log(math.cos(s1) / math.cos(s2)) / math.log(
        math.tan(math.pi * 0.25 + s2 * 0.5) / math.tan(math.pi * 0.25 + s1 * 0.5))
    sf = math.tan(math.pi * 0.25 + s1 * 0.5) ** sn * math.cos(s1) / sn
    ro = r * sf / math.tan(math.pi * 0.25 + la0 * 0.5) ** sn
    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    ra = r * sf / np.tan(math.pi * 0.25 + lat * deg * 0.5) ** sn
    theta = lon * deg - lo0
    theta = np.where(theta > math.pi, theta - 2 * math.pi, np.where(theta < -math.pi, theta + 2 * math.pi, theta))
    theta = theta * sn
    nx = np.floor(ra * np.sin(theta) + xo + 0.5).astype(int)
    ny = np.floor(ro - ra * np.cos(theta) + yo + 0.5).astype(int)
    return nx, ny

"""Traffic accidents: Poisson counts per cell and 3-hour slot, ``E = base(cell, year) x multiplier(slot)``.

The base comes from the road network and activity of a cell (plus a hidden random effect, so a cell's
past accident rate carries information) and drifts from year to year as a city's streets do: every cell's
rate takes a small random step each year, and a few cells a year change for good (a new road or an opened
junction doubles them, a rebuilt junction or a new signal halves them). The city's yearly total stays
put. The multiplier comes from the clock, the calendar and the weather.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.calendar import is_holiday
from features.embedded.geo import random_points
from features.embedded.period import Period
from features.grid import Grid

# Year-to-year drift of a cell's rate: a log-normal step each year, and a share of cells changed for good.
DRIFT_SD = 0.15
CHANGED_SHARE = 0.02  # cells a year whose road changes
CHANGE_FACTORS = (2.0, 0.5)  # new road or junction; rebuilt junction or signal (equally likely)
PER_YEAR = 6500  # accidents a year over the whole city
CITY_KM2 = 552.0  # the city's land area on the default grid, to keep the rate per km2 on any grid
SLOT_PROFILE = np.array([0.45, 0.30, 1.00, 1.00, 1.10, 1.30, 1.35, 0.85])  # 00, 03, ..., 21 h
WEEKDAY = np.array([1.0, 1.0, 1.0, 1.03, 1.12, 0.97, 0.82])  # Monday..Sunday
DAY_NAMES = np.array(["월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일"], dtype=object)
ROAD = {"교차로": (["교차로 - 교차로안", "교차로 - 교차로부근", "교차로 - 교차로횡단보도내"], [0.5, 0.35, 0.15]),
        "단일로": (["단일로 - 기타", "단일로 - 횡단보도상", "단일로 - 교량", "단일로 - 터널", "단일로 - 고가도로위"],
                 [0.84, 0.09, 0.04, 0.015, 0.015]),
        "기타": (["주차장 - 주차장", "기타 - 기타"], [0.6, 0.4])}
KIND = {"차대차": (["차대차 - 측면충돌", "차대차 - 추돌", "차대차 - 정면충돌", "차대차 - 후진중충돌", "차대차 - 기타"],
                 [0.35, 0.30, 0.06, 0.04, 0.25]),
        "차대사람": (["차대사람 - 횡단중", "차대사람 - 차도통행중", "차대사람 - 길가장자리구역통행중",
                  "차대사람 - 보도통행중", "차대사람 - 기타"], [0.45, 0.12, 0.06, 0.07, 0.30]),
        "차량단독": (["차량단독 - 공작물충돌", "차량단독 - 전도전복", "차량단독 - 기타"], [0.45, 0.15, 0.40])}
VEHICLES = (["승용", "화물", "승합", "이륜", "원동기", "자전거", "개인형이동수단(PM)", "건설기계", "기타불명"],
            [0.70, 0.12, 0.04, 0.06, 0.01, 0.02, 0.02, 0.01, 0.02])


@dataclass(frozen=True)
class AccidentResult:
    taas: pd.DataFrame  # TAAS columns + year
    cells: pd.DataFrame  # cell_id, year, base (expected accidents per unit of slot multiplier)
    slots: pd.DataFrame  # time, multiplier


def solar_elevation(times: pd.DatetimeIndex, lat: float, lon: float) -> np.ndarray:
    """Sun elevation (degrees) at KST clock times, accurate to about a degree."""
    doy = times.day_of_year.to_numpy()
    clock = times.hour.to_numpy() + times.minute.to_numpy() / 60
    g = 2 * np.pi * (doy - 1) / 365
    decl = np.radians(23.44) * np.sin(2 * np.pi * (284 + doy) / 365)
    eot = 229.18 * (0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g) - 0.014615 * np.cos(2 * g)
                    - 0.040849 * np.sin(2 * g))
    angle = np.radians(15 * (clock + (lon - 135) / 15 + eot / 60 - 12))
    phi = np.radians(lat)
    return np.degrees(np.arcsin(np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(angle)))


def slot_multipliers(period: Period, temp, rain, snow, lat: float, lon: float) -> pd.DataFrame:
    """City-wide multiplier per 3-h slot from hour, weekday, holiday, rain, snow, ice and darkness."""
    ns = period.n // 3
    start = pd.date_range(period.start, periods=ns, freq="3h")
    t3, r3 = temp[: ns * 3].reshape(ns, 3), rain[: ns * 3].reshape(ns, 3)
    rainy = ((r3 >= 0.5) & (t3 > 0.5)).any(axis=1)
    snowy = ((r3 >= 0.1) & (t3 <= 0.5)).any(axis=1)
    wet_recent = pd.Series(r3.sum(axis=1) > 0).rolling(4, min_periods=1).max().to_numpy() > 0
    icy = (t3.min(axis=1) <= 0) & (wet_recent | (snow[: ns * 3].reshape(ns, 3).max(axis=1) > 0))
    dark = np.mean([solar_elevation(start + pd.Timedelta(minutes=30 + 60 * k), lat, lon) < -0.833
                    for k in range(3)], axis=0) >= 0.5
    day_of = (start - period.start).days
    holiday = is_holiday(period.days)[day_of]
    mult = (SLOT_PROFILE[start.hour.to_numpy() // 3] * WEEKDAY[start.day_of_week.to_numpy()]
            * np.where(holiday, 0.8, 1.0) * np.where(rainy, 1.3, 1.0) * np.where(snowy, 1.6, 1.0)
            * np.where(icy, 1.4, 1.0) * np.where(dark, 1.2, 1.0))
    return pd.DataFrame({"time": start, "multiplier": mult})


def cell_base(static: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Relative accident rate per cell: roads (arterials most), volume, junctions, stops, schools, shops."""
    roads = (static["road_km_arterial"] + 0.5 * static["road_km_collector"] + 0.2 * static["road_km_local"])
    return (roads.to_numpy() ** 0.8 * (static["traffic_volume"].to_numpy() / 20000) ** 0.7
            * (1 + 0.08 * static["intersections"].to_numpy()) * (1 + 0.06 * static["bus_stops"].to_numpy())
            * (1 + 0.15 * static["schools"].to_numpy()) * (1 + 1.5 * static["commercial_share"].to_numpy())
            * np.exp(rng.normal(0, 0.5, len(static))))


def yearly_drift(n_cells: int, years, rng: np.random.Generator) -> np.ndarray:
    """``(len(years), n_cells)`` factors on each cell's rate, 1 in the first year: a random walk in log
    space (:data:`DRIFT_SD` a year) plus lasting changes to :data:`CHANGED_SHARE` of the cells each year."""
    log_f = np.zeros((len(years), n_cells))
    for i in range(1, len(years)):
        step = rng.normal(0, DRIFT_SD, n_cells)
        changed = rng.random(n_cells) < CHANGED_SHARE
        step[changed] += np.log(rng.choice(CHANGE_FACTORS, changed.sum()))
        log_f[i] = log_f[i - 1] + step
    return np.exp(log_f)


def _pick(rng, options, probs, n) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.choice(len(options), size=n, p=probs)]


def simulate_accidents(grid: Grid, static: pd.DataFrame, weather: dict, period: Period,
                       rng: np.random.Generator) -> AccidentResult:
    """Sample accidents. ``weather`` holds the city station's true hourly temp, rain, humidity, snow."""
    slots = slot_multipliers(period, weather["temp"], weather["rain"], weather["snow"],
                             float(grid.cells["lat"].mean()), float(grid.cells["lon"].mean()))
    raw = cell_base(static, rng)
    area = len(static) * (grid.size_m / 1000) ** 2
    target = PER_YEAR * len(period.days) / 365.25 * area / CITY_KM2
    base = raw * target / (raw.sum() * slots["multiplier"].sum())
    counts = rng.poisson(slots["multiplier"].to_numpy() * base.sum())
    slot = np.repeat(np.arange(len(slots)), counts)
    slot_year = slots["time"].dt.year.to_numpy()
    years = np.unique(slot_year)
    drift = yearly_drift(len(static), years, rng)
    cell = np.empty(len(slot), dtype=np.int64)
    truth = []
    for i, year in enumerate(years):  # the city's total stays put: only the shares move
        share = base * drift[i]
        share = share / share.sum()
        mine = slot_year[slot] == year
        cell[mine] = rng.choice(len(static), size=int(mine.sum()), p=share)
        truth.append(pd.DataFrame({"cell_id": static["cell_id"].to_numpy(), "year": int(year),
                                   "base": share * base.sum()}))
    taas = _records(grid, static, period, slots, slot, cell, weather, rng)
    return AccidentResult(taas, pd.concat(truth, ignore_index=True), slots)


def _records(grid, static, period, slots, slot, cell, weather, rng) -> pd.DataFrame:
    """One TAAS row per accident: time, weather and surface at that hour, road, type, casualties, point."""
    m = len(slot)
    offset = rng.integers(0, 3, m)
    hour_idx = slot * 3 + offset  # index of the stamp ending the accident's hour
    when = slots["time"].to_numpy()[slot] + offset * np.timedelta64(1, "h")
    when = pd.DatetimeIndex(when)
    t, r = weather["temp"][hour_idx], weather["rain"][hour_idx]
    rh, snow = weather["humidity"][hour_idx], weather["snow"][hour_idx]
    r_recent = pd.Series(weather["rain"]).rolling(6, min_periods=1).sum().to_numpy()[hour_idx]
    night = (when.hour < 6) | (when.hour >= 20)
    u = rng.random(m)
    sky = np.select([(r >= 0.1) & (t <= 0.5), r >= 0.1, rh >= 97, (rh >= 85) | (u < 0.15), u > 0.99],
                    ["눈", "비", "안개", "흐림", "기타"], "맑음").astype(object)
    surface = np.select([snow >= 0.5, (t <= 0) & (r_recent > 0), r_recent > 0, (t <= 2) & (rh >= 90) & night,
                         rh >= 92], ["적설", "결빙", "젖음", "서리", "습기"], "건조").astype(object)

    inter = static["intersections"].to_numpy()[cell]
    p_inter = 0.25 + 0.35 * inter / (inter + 4)
    road_kind = np.where(u < 0.05, "기타", np.where(rng.random(m) < p_inter, "교차로", "단일로"))
    road = np.empty(m, dtype=object)
    for k, (opts, probs) in ROAD.items():
        sel = road_kind == k
        road[sel] = _pick(rng, opts, probs, sel.sum())
    commercial = static["commercial_share"].to_numpy()[cell]
    p_ped = 0.16 * (1 + commercial) * np.where(night, 1.3, 1.0)
    p_single = 0.10 * np.where(np.isin(surface, ["결빙", "적설"]), 1.8, 1.0) * np.where(night, 1.5, 1.0)
    v = rng.random(m)
    kind = np.where(v < p_ped, "차대사람", np.where(v < p_ped + p_single, "차량단독", "차대차"))
    acc_type = np.empty(m, dtype=object)
    for k, (opts, probs) in KIND.items():
        sel = kind == k
        acc_type[sel] = _pick(rng, opts, probs, sel.sum())

    # Casualties: a few multi-casualty crashes; pedestrians, single vehicles and nights are deadlier.
    victims = 1 + rng.poisson(np.where(kind == "차대차", 0.3, 0.05))
    death = 0.006 * np.where(kind == "차대사람", 2.0, 1.0) * np.where(kind == "차량단독", 2.5, 1.0) \
        * np.where(night, 1.8, 1.0)
    serious = 0.20 * np.where(kind == "차대사람", 1.4, 1.0)
    probs = np.stack([death, serious, 0.19 * np.ones(m)], axis=1)
    probs = np.column_stack([probs[:, :2], 1 - probs.sum(axis=1), probs[:, 2]])
    cas = rng.multinomial(victims, probs)
    eclo = 10 * cas[:, 0] + 5 * cas[:, 1] + 3 * cas[:, 2] + cas[:, 3]
    lat, lon = random_points(grid, cell, rng)
    district = grid.cells["district"].to_numpy()[cell]
    frame = pd.DataFrame({
        "사고일시": [f"{y}년 {mo}월 {d}일 {h:02d}시" for y, mo, d, h in
                 zip(when.year, when.month, when.day, when.hour, strict=True)],
        "요일": DAY_NAMES[when.day_of_week.to_numpy()], "기상상태": sky,
        "시군구": np.char.add(f"{grid.city.geography.province} ".lstrip(), district.astype(str)).astype(object),
        "도로형태": road, "노면상태": surface, "사고유형": acc_type,
        "가해운전자 차종": _pick(rng, *VEHICLES, m),
        "사망자수": cas[:, 0], "중상자수": cas[:, 1], "경상자수": cas[:, 2], "부상신고자수": cas[:, 3],
        "ECLO": eclo, "경도": lon.round(6), "위도": lat.round(6), "year": when.year, "_t": when,
    })
    return frame.sort_values("_t", kind="stable").drop(columns="_t").reset_index(drop=True)

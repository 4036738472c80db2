"""The building stock (건축물대장 표제부): age, use, structure, floors, area, piloti and seismic design.

Old downtown cells hold older brick and concrete houses; reclaimed new towns hold post-2003 towers.
Seismic design follows the Korean code's mandatory thresholds by approval date, and the code level
(high / low / pre) derived from it drives the fragility in ``damage.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.embedded.geo import random_points, sigungu_codes
from features.grid import Grid

PER_CELL = 36.2  # ~80,000 buildings on the default 2,208-cell grid; the count scales with cells
# use: (주용도, floors lo, hi, footprint m2 median)
USES = {
    "house": ("단독주택", 1, 3, 90), "villa": ("공동주택", 3, 5, 230), "apartment": ("공동주택", 10, 30, 750),
    "shop": ("제2종근린생활시설", 1, 5, 200), "factory": ("공장", 1, 3, 1200), "warehouse": ("창고시설", 1, 2, 900),
    "office": ("업무시설", 5, 20, 700), "school": ("교육연구시설", 3, 5, 2500),
}
STRUCTURES = ["철근콘크리트구조", "벽돌구조", "블록구조", "일반목구조", "철골구조", "경량철골구조", "철골철근콘크리트구조"]
# Structure shares per use for (before 1980, 1980-1999, 2000 on), in STRUCTURES order.
STRUCTURE_SHARES = {
    "house": ([.20, .45, .20, .15, 0, 0, 0], [.50, .35, .05, .05, 0, .05, 0], [.65, .10, 0, .10, 0, .15, 0]),
    "villa": ([.60, .40, 0, 0, 0, 0, 0], [.80, .20, 0, 0, 0, 0, 0], [.97, .03, 0, 0, 0, 0, 0]),
    "apartment": ([1, 0, 0, 0, 0, 0, 0], [.97, 0, 0, 0, 0, 0, .03], [.93, 0, 0, 0, 0, 0, .07]),
    "shop": ([.45, .35, .10, .05, .05, 0, 0], [.60, .15, .05, 0, .15, .05, 0], [.60, .05, 0, 0, .25, .10, 0]),
    "factory": ([.30, .20, .10, 0, .40, 0, 0], [.15, .05, .05, 0, .50, .25, 0], [.10, 0, 0, 0, .55, .35, 0]),
    "warehouse": ([.20, .20, .20, 0, .40, 0, 0], [.10, .05, .05, 0, .45, .35, 0], [.05, 0, 0, 0, .45, .50, 0]),
    "office": ([.90, .10, 0, 0, 0, 0, 0], [.70, 0, 0, 0, .15, 0, .15], [.55, 0, 0, 0, .20, 0, .25]),
    "school": ([1, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0]),
}
# Mandatory seismic design: (in force from, minimum storeys, minimum floor area m2), either suffices.
CODE_RULES = [
    (pd.Timestamp("1988-03-01"), 6, 100_000.0), (pd.Timestamp("2005-07-01"), 3, 1_000.0),
    (pd.Timestamp("2015-09-01"), 3, 500.0), (pd.Timestamp("2017-12-01"), 2, 200.0),
]


def _use_mix(static: pd.DataFrame) -> np.ndarray:
    """Per cell, probabilities of each use (columns in USES order).

    Shares by count in the spirit of Korea's register: detached houses about half, neighbourhood shops a
    fifth, apartment blocks a few per cent (each holds a hundred homes), offices and schools one or two.
    """
    urban = static["urban"].to_numpy()
    new = static["era"].to_numpy() >= 2003
    industrial = (static["reclaimed"].to_numpy() == 1) & ~new | static["airport"].to_numpy()
    w = np.column_stack([
        0.45 * (1 - urban) + 0.25, 0.12 * urban * ~new + 0.02, 0.006 + 0.01 * urban + 0.04 * new * urban,
        0.15 + 0.15 * static["commercial_share"].to_numpy(), 0.03 + 0.3 * industrial,
        0.04 + 0.05 * (1 - urban) + 0.3 * industrial, 0.004 + 0.02 * urban, 0.006 * np.ones(len(static)),
    ])
    return w / w.sum(axis=1, keepdims=True)


def seismic_design(approval: pd.DatetimeIndex, floors: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Whether the code in force at approval required seismic design."""
    out = np.zeros(len(floors), dtype=bool)
    for since, storeys, m2 in CODE_RULES:
        out |= (approval >= since) & ((floors >= storeys) | (area >= m2))
    return out


def build_stock(grid: Grid, static: pd.DataFrame, end: pd.Timestamp, rng: np.random.Generator) -> pd.DataFrame:
    """All buildings approved before ``end``, with true attributes (``approval`` never blank here)."""
    ncell = len(static)
    totals = grid.city.totals
    people = static["pop_night"].to_numpy() + 0.3 * static["pop_day"].to_numpy()
    # A stated register count is placed where people are (farmland keeps a few barns and houses); the
    # generator's own density per cell otherwise.
    stated = totals.buildings if totals is not None else None
    weight = (people + 1) ** 0.8 if stated else (people + 300) ** 0.9
    count = stated or rng.poisson(PER_CELL * ncell)
    cell = rng.choice(ncell, size=count, p=weight / weight.sum())
    cell.sort()
    n = len(cell)
    era = static["era"].to_numpy()[cell]
    new_town = era >= 2003
    end_year = end.year + (end.day_of_year - 1) / 365.25
    year = np.clip(np.where(new_town, 2003 + rng.gamma(2.0, 3.5, n), rng.normal(era, 13, n)), 1960, None)
    # Buildings "from the future" of a short or early period are redrawn over its last 15 years.
    late = year >= end_year
    year[late] = rng.uniform(max(1960.0, end_year - 15), end_year, late.sum())
    days = np.minimum(np.floor((year - 1960) * 365.25), (end - pd.Timestamp("1960-01-01")).days - 1)
    approval = pd.Timestamp("1960-01-01") + pd.to_timedelta(days, unit="D")

    mix = _use_mix(static)[cell]
    use = np.array(list(USES))[(rng.random((n, 1)) > np.cumsum(mix, axis=1)).sum(axis=1)]
    bucket = np.digitize(approval.year, [1980, 2000])
    struct = np.empty(n, dtype=object)
    for u in USES:
        for b in range(3):
            sel = (use == u) & (bucket == b)
            p = np.asarray(STRUCTURE_SHARES[u][b], dtype=float)
            struct[sel] = np.array(STRUCTURES, dtype=object)[rng.choice(7, size=sel.sum(), p=p / p.sum())]
    lo = np.array([USES[u][1] for u in use])
    hi = np.array([USES[u][2] for u in use]) + np.where((use == "apartment") & new_town, 19, 0)
    floors = rng.integers(lo, hi + 1)
    floors = np.where(np.isin(struct, ["벽돌구조", "블록구조", "일반목구조"]), np.minimum(floors, 3), floors)
    foot = np.array([USES[u][3] for u in use]) * rng.lognormal(0, 0.45, n)
    area = _to_floor_totals(totals, use, foot * floors).round(2)
    below = np.where(np.isin(use, ["apartment", "office"]), rng.integers(1, 4, n), rng.integers(0, 2, n))
    height = (floors * rng.uniform(2.8, 3.4, n) + 1).round(1)
    piloti = ((use == "villa") & (struct == "철근콘크리트구조") & (floors >= 3) & (floors <= 5)
              & (approval.year >= 2000) & (approval.year <= 2016) & (rng.random(n) < 0.15))
    designed = seismic_design(approval, floors, area)
    lat, lon = random_points(grid, cell, rng)
    return pd.DataFrame({
        "cell": cell, "use": use, "purpose": np.array([USES[u][0] for u in use], dtype=object),
        "structure": struct, "piloti": piloti, "floors": floors, "below": below, "area": area,
        "height": height, "approval": approval, "designed": designed, "lat": lat, "lon": lon,
    })


def _to_floor_totals(totals, use: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Floor areas scaled to the city's stated residential and total floor area (``[totals]``): homes
    (houses, villas, apartments) to residents x floor area per resident, the rest to the remainder."""
    if totals is None:
        return area
    homes = np.isin(use, ["house", "villa", "apartment"])
    target = totals.residential_floor_m2, max(totals.total_floor_m2 - totals.residential_floor_m2, 0.0)
    out = area.astype(float).copy()
    for part, goal in zip((homes, ~homes), target, strict=True):
        if out[part].sum() > 0:
            out[part] *= goal / out[part].sum()
    return out


def register_frame(grid: Grid, stock: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The register as printed: a few blank dates and design flags, piloti in 기타구조, geocoded points."""
    n = len(stock)
    cells = grid.cells
    sgg = sigungu_codes(grid)[stock["cell"]]
    district = cells["district"].to_numpy()[stock["cell"]]
    dong = cells["dong"].to_numpy()[stock["cell"]]
    other = np.where(stock["piloti"], "필로티구조",
                     np.where(rng.random(n) < 0.25, np.where(stock["structure"].str.contains("벽돌|블록"),
                                                               "조적조", "철근콘크리트조"), ""))
    date_txt = stock["approval"].dt.strftime("%Y%m%d").to_numpy().astype(object)
    date_txt[rng.random(n) < 0.005] = ""
    design = np.where(stock["designed"], "1", "0").astype(object)
    design[rng.random(n) < 0.03] = ""
    ability = np.where(stock["designed"] & (rng.random(n) < 0.5),
                       np.where(stock["floors"] >= 15, "VIII-0.3g", "VII-0.204g"), "")
    lot = rng.integers(1, 1500, n)
    province = grid.city.geography.province
    return pd.DataFrame({
        "대지위치": [f"{province} {d} {g} {x}번지".strip() for d, g, x in zip(district, dong, lot, strict=True)],
        "시군구코드": sgg,
        "주용도": stock["purpose"].to_numpy(), "주구조": stock["structure"].to_numpy(), "기타구조": other,
        "연면적(㎡)": stock["area"].to_numpy(), "지상층수": stock["floors"].to_numpy(),
        "지하층수": stock["below"].to_numpy(), "높이(m)": stock["height"].to_numpy(), "사용승인일": date_txt,
        "내진설계적용여부": design, "내진능력": ability,
        "위도": stock["lat"].to_numpy().round(6), "경도": stock["lon"].to_numpy().round(6),
    })

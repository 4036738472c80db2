"""Earthquake physics as plain functions: ground motion, building code level and HAZUS fragility.

The earthquake feature builder uses them to describe a scenario and a cell's building stock, and the
baseline ("ground motion + fragility formula alone") reuses :func:`fragility_share` unchanged, so the
model and the baseline start from the same physics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr  # standard normal CDF; scipy comes with scikit-learn

from features.spatial import haversine_km

# --- Ground motion -------------------------------------------------------------------------------

# Joyner & Boore (1981): log10 PGA[g] = a + b*M - log10(r) - c*r, r = sqrt(d^2 + h^2). A simple,
# widely published form without a site term; h is its fictitious depth that saturates near-source motion.
JB81_A, JB81_B, JB81_C, JB81_H_KM = -1.02, 0.249, 0.00255, 7.3
# Linear Vs30 amplification of PGA (Boore, Joyner & Fumal 1997), relative to B/C rock at 760 m/s.
SITE_BV, SITE_VREF_MPS = -0.371, 760.0
DEFAULT_DEPTH_KM = 10.0  # used for distances when a request gives no depth (typical Korean crustal event)


def distances_km(epi_lat, epi_lon, depth_km, lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """Epicentral and hypocentral distance (km) from an event to sites, broadcasting."""
    epi = haversine_km(epi_lat, epi_lon, lat, lon)
    depth = np.nan_to_num(np.asarray(depth_km, dtype=float), nan=DEFAULT_DEPTH_KM)
    return epi, np.hypot(epi, depth)


def gmpe_ln_pga(magnitude, dist_km) -> np.ndarray:
    """ln PGA (g) on reference rock from the Joyner-Boore (1981) form at distance ``dist_km``."""
    m = np.asarray(magnitude, dtype=float)
    r = np.hypot(np.asarray(dist_km, dtype=float), JB81_H_KM)
    return np.log(10.0) * (JB81_A + JB81_B * m - np.log10(r) - JB81_C * r)


def site_term(vs30_mps) -> np.ndarray:
    """ln amplification of PGA for a site's Vs30: soft soil (low Vs30) shakes harder."""
    return SITE_BV * np.log(np.asarray(vs30_mps, dtype=float) / SITE_VREF_MPS)


# --- Building code level (DESIGN.md section 2) ---------------------------------------------------

PRE_CODE, LOW_CODE, HIGH_CODE = 0, 1, 2
CODE_LEVELS = ("pre_code", "low_code", "high_code")
# Mandatory seismic design by the Building Act amendments: (in force from, min storeys, min floor area m2,
# houses too); meeting either size threshold suffices. DESIGN.md: 1988, 2005, 2015, 2017 (twice).
CODE_RULES = (
    (pd.Timestamp("1988-03-01"), 6, 100_000.0, False),
    (pd.Timestamp("2005-07-01"), 3, 1_000.0, False),
    (pd.Timestamp("2015-09-01"), 3, 500.0, False),
    (pd.Timestamp("2017-02-04"), 2, 500.0, False),
    (pd.Timestamp("2017-12-01"), 2, 200.0, True),  # and every new house (단독/공동주택)
)
FIRST_CODE = CODE_RULES[0][0]


def design_required(approval_date, floors, area_m2, purpose=None) -> np.ndarray:
    """Whether the code in force at approval required seismic design (False for an unknown date)."""
    approval = pd.DatetimeIndex(pd.to_datetime(approval_date))
    floors = np.nan_to_num(np.asarray(floors, dtype=float), nan=1.0)
    area = np.nan_to_num(np.asarray(area_m2, dtype=float), nan=0.0)
    house = np.zeros(len(floors), dtype=bool) if purpose is None else \
        pd.Series(purpose, dtype="string").str.contains("주택").fillna(False).to_numpy(dtype=bool)
    out = np.zeros(len(floors), dtype=bool)
    for since, storeys, m2, houses in CODE_RULES:
        size = (floors >= storeys) | (area >= m2) | (house & houses)
        out |= np.asarray(approval >= since, dtype=bool) & size
    return out


def code_level(approval_date, floors, area_m2, seismic_design=None, purpose=None) -> np.ndarray:
    """HAZUS code level per building: 0 pre-code, 1 low-code, 2 high-code.

    A building designed for earthquakes is high-code; one approved after the first code (1988) without
    being required to be designed is low-code (the code era's practice, not a seismic design); anything
    older is pre-code. Design means required by :data:`CODE_RULES` at approval, unless the register's
    내진설계적용여부 flag says otherwise (it is direct evidence). An unknown approval date without a flag
    counts as pre-code, because undated register entries are mostly old buildings.
    """
    approval = pd.DatetimeIndex(pd.to_datetime(approval_date))
    designed = design_required(approval, floors, area_m2, purpose)
    if seismic_design is not None:
        flag = pd.array(seismic_design, dtype="boolean")
        designed = np.where(np.asarray(flag.isna()), designed, np.asarray(flag.fillna(False), dtype=bool))
    code_era = np.asarray(approval >= FIRST_CODE, dtype=bool)
    return np.where(designed, HIGH_CODE, np.where(code_era, LOW_CODE, PRE_CODE)).astype(np.int8)


# --- Structure families and HAZUS classes --------------------------------------------------------

FAMILIES = ("concrete", "masonry", "steel", "wood", "other")
# Order matters: 철골철근콘크리트 (SRC) contains both 철골 and 콘크리트 and behaves like concrete.
_FAMILY_PATTERNS = (("concrete", "콘크리트"), ("masonry", "벽돌|블록|조적|석조|석구조"),
                    ("steel", "철골|강구조|강파이프"), ("wood", "목"))


def structure_family(structure) -> np.ndarray:
    """Index into :data:`FAMILIES` of each 주구조 text (unknown or unlisted -> ``other``)."""
    text = pd.Series(structure, dtype="string").fillna("")
    out = np.full(len(text), FAMILIES.index("other"), dtype=np.int8)
    for name, pattern in reversed(_FAMILY_PATTERNS):  # earlier patterns win, so they are applied last
        out[text.str.contains(pattern, regex=True).to_numpy(dtype=bool)] = FAMILIES.index(name)
    return out


def is_piloti(other_structure) -> np.ndarray:
    """True where 기타구조 mentions 필로티 (an open ground storey)."""
    return pd.Series(other_structure, dtype="string").str.contains("필로티").fillna(False).to_numpy(dtype=bool)


# HAZUS model building types we map the register to: concrete moment frame (C1, low/mid/high-rise),
# unreinforced masonry (URM low/mid), steel moment frame (S1), light steel (S3, 경량철골) and wood (W1).
HAZUS_CLASSES = ("C1L", "C1M", "C1H", "URML", "URMM", "S1L", "S1M", "S1H", "S3", "W1")


def hazus_class(structure, floors) -> np.ndarray:
    """Index into :data:`HAZUS_CLASSES` from 주구조 and storeys (HAZUS height bands: 1-3, 4-7, 8+;
    masonry 1-2, 3+). Unknown structures use the concrete frame classes, the most common type."""
    family = structure_family(structure)
    floors = np.nan_to_num(np.asarray(floors, dtype=float), nan=1.0)
    light = pd.Series(structure, dtype="string").str.contains("경량").fillna(False).to_numpy(dtype=bool)
    rise = np.digitize(floors, [4, 8])  # 0 low, 1 mid, 2 high
    name = np.select(
        [family == FAMILIES.index("masonry"), (family == FAMILIES.index("steel")) & light,
         family == FAMILIES.index("steel"), family == FAMILIES.index("wood")],
        [np.where(floors >= 3, "URMM", "URML"), "S3", np.array(["S1L", "S1M", "S1H"])[rise], "W1"],
        default=np.array(["C1L", "C1M", "C1H"])[rise])
    return pd.Index(HAZUS_CLASSES).get_indexer(name).astype(np.int8)


# --- HAZUS equivalent-PGA fragility --------------------------------------------------------------

FRAGILITY_BETA = 0.64
DAMAGE_STATES = ("slight", "moderate", "extensive", "complete")
# Medians (g) per class and code level (pre, low, high), from the HAZUS-MH equivalent-PGA fragility
# tables. HAZUS has no high-code URM: designed masonry uses reinforced masonry (RM1L/RM1M) moderate-code.
MEDIANS_G: dict[str, tuple[tuple[float, ...], ...]] = {
    "C1L": ((0.10, 0.12, 0.21, 0.36), (0.12, 0.15, 0.27, 0.45), (0.21, 0.35, 0.70, 1.37)),
    "C1M": ((0.09, 0.13, 0.26, 0.43), (0.12, 0.17, 0.32, 0.54), (0.15, 0.27, 0.73, 1.61)),
    "C1H": ((0.08, 0.12, 0.21, 0.35), (0.10, 0.15, 0.27, 0.44), (0.11, 0.22, 0.62, 1.35)),
    "URML": ((0.13, 0.17, 0.26, 0.37), (0.14, 0.20, 0.32, 0.46), (0.22, 0.30, 0.50, 0.85)),
    "URMM": ((0.09, 0.13, 0.21, 0.38), (0.10, 0.16, 0.27, 0.46), (0.18, 0.26, 0.51, 1.03)),
    "S1L": ((0.09, 0.13, 0.22, 0.38), (0.12, 0.17, 0.30, 0.48), (0.19, 0.31, 0.64, 1.49)),
    "S1M": ((0.09, 0.14, 0.23, 0.39), (0.12, 0.18, 0.29, 0.49), (0.14, 0.26, 0.62, 1.43)),
    "S1H": ((0.08, 0.12, 0.22, 0.38), (0.10, 0.15, 0.28, 0.48), (0.10, 0.21, 0.52, 1.31)),
    "S3": ((0.08, 0.10, 0.16, 0.30), (0.10, 0.13, 0.20, 0.38), (0.15, 0.26, 0.54, 1.00)),
    "W1": ((0.18, 0.29, 0.51, 0.77), (0.20, 0.34, 0.61, 0.95), (0.26, 0.55, 1.28, 2.01)),
}
# One fragility group per (HAZUS class, effective code level), in this order.
FRAGILITY_GROUPS = tuple((c, lvl) for c in HAZUS_CLASSES for lvl in range(len(CODE_LEVELS)))


def fragility_group(hazus, level, piloti) -> np.ndarray:
    """Index into :data:`FRAGILITY_GROUPS`; piloti buildings drop one code level (Pohang 2017)."""
    effective = np.where(np.asarray(piloti, dtype=bool), np.maximum(np.asarray(level) - 1, 0), level)
    return (np.asarray(hazus, dtype=np.int64) * len(CODE_LEVELS) + effective).astype(np.int16)


def exceedance(pga_g, median_g, beta: float = FRAGILITY_BETA) -> np.ndarray:
    """P(damage state reached | PGA) of a lognormal fragility curve."""
    with np.errstate(divide="ignore"):
        return ndtr(np.log(np.asarray(pga_g, dtype=float) / np.asarray(median_g, dtype=float)) / beta)


def moderate_medians() -> np.ndarray:
    """Moderate-damage median (g) of each fragility group, in :data:`FRAGILITY_GROUPS` order."""
    return np.array([MEDIANS_G[f][lvl][DAMAGE_STATES.index("moderate")] for f, lvl in FRAGILITY_GROUPS])


def fragility_share(ln_pga, group_shares) -> np.ndarray:
    """Expected share of buildings at moderate-or-worse damage.

    ``ln_pga``: (n,) ln PGA in g at the site; ``group_shares``: (n, len(FRAGILITY_GROUPS)) share of the
    cell's buildings in each group (rows sum to 1, or are NaN for a cell without buildings).
    """
    pga = np.exp(np.asarray(ln_pga, dtype=float))[:, None]
    prob = exceedance(pga, moderate_medians()[None, :])
    shares = np.asarray(group_shares, dtype=float)
    # NaN shares (no buildings) give NaN, not 0: a cell without stock has no damage share.
    out = (prob * np.nan_to_num(shares)).sum(axis=1)
    return np.where(np.isnan(shares).any(axis=1) | np.isnan(pga[:, 0]), np.nan, out)

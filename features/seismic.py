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
MODERN_CODE_YEAR = 2005  # the 2005 code revision; designed buildings before it count as low-code


def design_year(floors, area_m2) -> np.ndarray:
    """Year from which seismic design was mandatory for a building of this size.

    1988: >= 6 storeys or >= 100,000 m2; 2005: >= 3 storeys or >= 1,000 m2; 2015: >= 500 m2;
    2017: >= 2 storeys or >= 200 m2 and all new houses, which we read as every remaining building.
    """
    floors = np.nan_to_num(np.asarray(floors, dtype=float), nan=1.0)
    area = np.nan_to_num(np.asarray(area_m2, dtype=float), nan=0.0)
    return np.select(
        [(floors >= 6) | (area >= 100_000), (floors >= 3) | (area >= 1_000), area >= 500],
        [1988, 2005, 2015], default=2017,
    )


def code_level(approval_date, floors, area_m2, seismic_design=None) -> np.ndarray:
    """HAZUS code level per building: 0 pre-code, 1 low-code, 2 high-code.

    A building approved before its size's mandatory design year is pre-code; a designed building is
    low-code before the 2005 revision and high-code after. The register's 내진설계적용여부 flag, where
    present, overrides the rule (it is direct evidence). An unknown approval date counts as pre-code,
    because undated register entries are mostly old buildings.
    """
    year = pd.DatetimeIndex(pd.to_datetime(approval_date)).year.to_numpy(dtype=float, na_value=np.nan)
    dated = ~np.isnan(year)
    designed_level = np.where(dated & (year >= MODERN_CODE_YEAR), HIGH_CODE, LOW_CODE)
    by_rule = np.where(dated & (year >= design_year(floors, area_m2)), designed_level, PRE_CODE)
    if seismic_design is None:
        return by_rule.astype(np.int8)
    flag = pd.array(seismic_design, dtype="boolean")
    known = ~np.asarray(flag.isna())
    flag_true = np.asarray(flag.fillna(False), dtype=bool)
    level = np.where(known, np.where(flag_true, designed_level, PRE_CODE), by_rule)
    return level.astype(np.int8)


# --- Structure families --------------------------------------------------------------------------

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


# --- HAZUS equivalent-PGA fragility --------------------------------------------------------------

FRAGILITY_BETA = 0.64
DAMAGE_STATES = ("slight", "moderate", "extensive", "complete")
# Medians (g) per family and code level (pre, low, high), HAZUS-MH equivalent-PGA tables:
# concrete = C1L, masonry = URML (pre, low) and RM1L moderate-code for designed masonry (HAZUS has no
# high-code URM), steel = S1L, wood = W1. ``other`` uses the concrete curves, the most common type.
MEDIANS_G: dict[str, tuple[tuple[float, ...], ...]] = {
    "concrete": ((0.10, 0.12, 0.21, 0.36), (0.12, 0.15, 0.27, 0.45), (0.21, 0.35, 0.70, 1.37)),
    "masonry": ((0.13, 0.17, 0.26, 0.37), (0.14, 0.20, 0.32, 0.46), (0.22, 0.30, 0.50, 0.85)),
    "steel": ((0.09, 0.13, 0.22, 0.38), (0.12, 0.17, 0.30, 0.48), (0.19, 0.31, 0.64, 1.49)),
    "wood": ((0.18, 0.29, 0.51, 0.77), (0.20, 0.34, 0.61, 0.95), (0.26, 0.55, 1.28, 2.01)),
}
MEDIANS_G["other"] = MEDIANS_G["concrete"]
# One fragility group per (family, effective code level), in this order.
FRAGILITY_GROUPS = tuple((f, lvl) for f in FAMILIES[:4] for lvl in range(len(CODE_LEVELS)))


def fragility_group(family, level, piloti) -> np.ndarray:
    """Index into :data:`FRAGILITY_GROUPS`; piloti buildings drop one code level (Pohang 2017)."""
    family = np.asarray(family)
    family = np.where(family == FAMILIES.index("other"), FAMILIES.index("concrete"), family)
    effective = np.where(np.asarray(piloti, dtype=bool), np.maximum(np.asarray(level) - 1, 0), level)
    return (family * len(CODE_LEVELS) + effective).astype(np.int8)


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

"""Earthquake physics as plain functions: ground motion, building code level and HAZUS fragility.

The earthquake feature builder, its baseline ("ground motion + fragility formula alone") and the embedded
data generator all call :func:`ground_motion` and :func:`fragility_share`, so the model, the baseline and
the synthetic world start from the same physics.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pygmm
from pygmm import BooreStewartSeyhanAtkinson2014 as BSSA14
from scipy.special import ndtr  # standard normal CDF; scipy comes with scikit-learn

from features.spatial import haversine_km

# --- Ground motion -------------------------------------------------------------------------------
#
# Model: Boore, Stewart, Seyhan & Atkinson (2014), "NGA-West2 equations for predicting PGA, PGV, and 5%
# damped PSA for shallow crustal earthquakes", Earthquake Spectra 30(3):1057-1085, as kept by pygmm
# (A. Kottke; the same model is OpenQuake's BooreEtAl2014). pygmm evaluates one site per call (~1 ms),
# too slow for 660k table rows or a 2,208-cell request, so :func:`bssa14_ln_pga` evaluates the published
# PGA equations on arrays with pygmm's own coefficient row; ``tests/features/test_seismic.py`` checks it
# against pygmm's model to 1e-9 over magnitude, distance and Vs30. Settings: global region (no Korea-
# calibrated model has a kept implementation in pygmm or OpenQuake's hazardlib that we could check),
# strike-slip mechanism (the peninsula's crustal events are mostly strike-slip under E-W compression, e.g.
# Gyeongju 2016; OpenQuake always applies a mechanism, from the rake), no basin term (it applies only to
# periods >= 0.65 s, not PGA).
_C = BSSA14.COEFF[BSSA14.INDEX_PGA]  # the PGA row of BSSA14's coefficient table
BSSA14_LIMITS = {"mw": (3.0, 8.5), "rjb_km": (0.0, 300.0), "vs30_mps": (150.0, 1500.0)}
VS30_REF_MPS = 760.0  # BSSA14's reference rock
DEFAULT_DEPTH_KM = 10.0  # used for distances when a request gives no depth (typical Korean crustal event)
# Deepest hypocentre of BSSA14's shallow-crustal data (NGA-West2 events are ~20 km deep at most).
SHALLOW_CRUST_KM = 20.0


def ml_to_mw(ml) -> np.ndarray:
    """Moment magnitude from a KMA local magnitude (규모).

    Grünthal, Wahlström & Stromeyer (2009), J. Seismol. 13:517-541, eq. (5):
    Mw = 0.53 + 0.646 ML + 0.0376 ML², a stable-continental relation. It reproduces the 2016 Gyeongju
    event (ML 5.8 -> Mw 5.54; reported Mw 5.4-5.5) and runs low for the 2017 Pohang event (ML 5.4 -> 5.11;
    reported 5.4-5.5). Korean relations exist (e.g. the bilinear ML,KMA fit of Appl. Sci. 12:7215, 2022)
    but their coefficients could not be checked here; this is the one constant to swap for them.
    """
    ml = np.asarray(ml, dtype=float)
    return 0.53 + 0.646 * ml + 0.0376 * ml**2


def mw_to_ml(mw) -> np.ndarray:
    """Inverse of :func:`ml_to_mw` (the quadratic's root above its vertex at ML = -8.6)."""
    a, b, c = 0.0376, 0.646, 0.53 - np.asarray(mw, dtype=float)
    return (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)


MAGNITUDE_TYPES = ("ML", "Mw")


def as_ml(magnitude, magnitude_type: str = "ML") -> float:
    """KMA local magnitude of a magnitude of ``magnitude_type`` (ML as is, Mw through :func:`mw_to_ml`);
    ValueError for another type."""
    if magnitude_type not in MAGNITUDE_TYPES:
        raise ValueError(f"magnitude_type must be one of {', '.join(MAGNITUDE_TYPES)}, not {magnitude_type!r}")
    return float(magnitude) if magnitude_type == "ML" else float(mw_to_ml(float(magnitude)))


def distances_km(epi_lat, epi_lon, depth_km, lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """Epicentral and hypocentral distance (km) from an event to sites, broadcasting.

    The scenario is a point source (a request gives no strike, dip or rupture size), so the Joyner-Boore
    distance BSSA14 expects, the distance to the rupture's surface projection, is the epicentral distance.
    For M >= 6 a real rupture 15-40 km long brings part of the city closer than that.
    """
    epi = haversine_km(epi_lat, epi_lon, lat, lon)
    depth = np.nan_to_num(np.asarray(depth_km, dtype=float), nan=DEFAULT_DEPTH_KM)
    return epi, np.hypot(epi, depth)


def rjb_km(epi_km, depth_km) -> np.ndarray:
    """Joyner-Boore distance (km) of a point source: the epicentral distance for a crustal event.

    Depth below :data:`SHALLOW_CRUST_KM`, outside BSSA14's data, counts as distance, so a deep event
    (the API allows 100 km) never shakes harder than the same one at crustal depth; BSSA14's own
    fictitious depth h covers depths within the crust.
    """
    depth = np.nan_to_num(np.asarray(depth_km, dtype=float), nan=DEFAULT_DEPTH_KM)
    return np.hypot(np.asarray(epi_km, dtype=float), np.maximum(depth - SHALLOW_CRUST_KM, 0.0))


def _rock_ln_pga(mw, rjb_km) -> np.ndarray:
    """BSSA14 event and path terms: ln PGA (g) on reference rock (Vs30 760 m/s)."""
    c = _C
    m = np.asarray(mw, dtype=float)
    dm = m - c["M_h"]
    event = c["e_1"] + np.where(dm <= 0, c["e_4"] * dm + c["e_5"] * dm**2, c["e_6"] * dm)
    r = np.hypot(np.asarray(rjb_km, dtype=float), c["h"])
    path = (c["c_1"] + c["c_2"] * (m - c["M_ref"])) * np.log(r / c["R_ref"]) + \
        (c["c_3"] + c["dc_3global"]) * (r - c["R_ref"])
    return event + path


def bssa14_ln_pga(mw, rjb_km, vs30_mps=VS30_REF_MPS) -> np.ndarray:
    """Median ln PGA (g, geometric mean of horizontals) of BSSA14 for moment magnitude, Rjb (km), Vs30.

    The site term is BSSA14's: linear in ln Vs30 up to 1500 m/s, plus the nonlinear term that shrinks
    soft-soil amplification as the rock motion grows (soft sites de-amplify in strong shaking). Vs30 is
    clipped to the model's 150-1500 m/s. Broadcasts over its arguments.
    """
    c = _C
    rock = _rock_ln_pga(mw, rjb_km)
    vs30 = np.clip(np.asarray(vs30_mps, dtype=float), *BSSA14_LIMITS["vs30_mps"])
    linear = c["c"] * np.log(np.minimum(vs30, c["V_c"]) / c["V_ref"])
    f2 = c["f_4"] * (np.exp(c["f_5"] * (np.minimum(vs30, 760.0) - 360.0)) - np.exp(c["f_5"] * (760.0 - 360.0)))
    nonlinear = c["f_1"] + f2 * np.log((np.exp(rock) + c["f_3"]) / c["f_3"])
    return rock + linear + nonlinear


def bssa14_sigma(mw, rjb_km, vs30_mps) -> np.ndarray:
    """BSSA14 total standard deviation of ln PGA: sqrt(tau² + phi²), tau and phi by M, Rjb and Vs30."""
    c = _C
    m = np.clip(np.asarray(mw, dtype=float), 4.5, 5.5) - 4.5
    tau = c["tau_1"] + (c["tau_2"] - c["tau_1"]) * m
    phi = c["phi_1"] + (c["phi_2"] - c["phi_1"]) * m
    vs30 = np.asarray(vs30_mps, dtype=float)
    phi = phi - c["dphi_V"] * np.clip(np.log(c["V_2"] / vs30) / np.log(c["V_2"] / c["V_1"]), 0, 1)
    rjb = np.maximum(np.asarray(rjb_km, dtype=float), 0.1)
    phi = phi + c["dphi_R"] * np.clip(np.log(rjb / c["R_1"]) / np.log(c["R_2"] / c["R_1"]), 0, 1)
    return np.hypot(tau, phi)


def bssa14_tau(mw) -> np.ndarray:
    """BSSA14 between-event standard deviation of ln PGA (the part shared by every site of an event)."""
    m = np.clip(np.asarray(mw, dtype=float), 4.5, 5.5) - 4.5
    return _C["tau_1"] + (_C["tau_2"] - _C["tau_1"]) * m


def ground_motion(ml, epi_lat, epi_lon, depth_km, lat, lon, vs30_mps) -> dict[str, np.ndarray]:
    """Everything a scenario's shaking needs at sites, broadcasting over its arguments.

    ``ml``: KMA local magnitude; epicentre in degrees, depth in km; sites' ``lat``/``lon`` in degrees and
    Vs30 in m/s. Returns arrays: ``mw``, ``epi_km``, ``hypo_km``, ``ln_pga_rock`` (BSSA14 at Vs30 760),
    ``ln_pga`` (with the site's nonlinear term), ``sigma`` (BSSA14's total ln standard deviation) and
    ``rjb_km`` (:func:`rjb_km`).
    """
    epi, hypo = distances_km(epi_lat, epi_lon, depth_km, lat, lon)
    rjb = rjb_km(epi, depth_km)
    mw, epi, hypo, rjb = np.broadcast_arrays(ml_to_mw(ml), epi, hypo, rjb)
    return {"mw": mw, "epi_km": epi, "hypo_km": hypo, "rjb_km": rjb, "ln_pga_rock": bssa14_ln_pga(mw, rjb),
            "ln_pga": bssa14_ln_pga(mw, rjb, vs30_mps), "sigma": bssa14_sigma(mw, rjb, vs30_mps)}


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
# Elastic fundamental period (s) of each class's code capacity curve (HAZUS-MH MR5 Technical Manual,
# Table 5.7: W1 0.35, S1 0.50 / 1.08 / 2.21, S3 0.40, C1 0.40 / 0.75 / 1.45, URM 0.35 / 0.50).
PERIODS_S = {"C1L": 0.40, "C1M": 0.75, "C1H": 1.45, "URML": 0.35, "URMM": 0.50, "S1L": 0.50, "S1M": 1.08,
             "S1H": 2.21, "S3": 0.40, "W1": 0.35}
# The event size whose spectrum shape the equivalent-PGA curves stand for (an assumption: HAZUS derives
# them for large, damaging Californian events; M7 is taken here), the distance and site of the shape.
SHAPE_MW, SHAPE_RJB_KM, SHAPE_VS30 = 7.0, 15.0, 400.0
_SHAPE_GRID = np.round(np.arange(3.0, 8.51, 0.05), 2)


def _spectral_shape(mw: float) -> np.ndarray:
    """(classes,) BSSA14's SA(T_class) / PGA for ``mw`` at SHAPE_RJB_KM and SHAPE_VS30 (pygmm's model)."""
    scenario = pygmm.Scenario(mag=float(mw), dist_jb=SHAPE_RJB_KM, v_s30=SHAPE_VS30, mechanism="SS")
    model = BSSA14(scenario)
    ln_sa = np.interp(np.log([PERIODS_S[c] for c in HAZUS_CLASSES]), np.log(model.periods), np.log(model.spec_accels))
    return np.exp(ln_sa) / model.pga


@lru_cache(maxsize=1)
def _shape_table() -> np.ndarray:
    """(magnitudes of _SHAPE_GRID, classes) ln of the spectral-shape factor (see :func:`shape_factor`)."""
    ref = _spectral_shape(SHAPE_MW)
    return np.log(np.array([ref / _spectral_shape(m) for m in _SHAPE_GRID]))


def ln_shape_factor(mw) -> np.ndarray:
    """(..., classes) ln of how much more PGA a building of each HAZUS class needs in an event of moment
    magnitude ``mw`` than the equivalent-PGA curves say, because a smaller event's spectrum is poorer at
    the building's period relative to its PGA: ln([SA(T)/PGA] at SHAPE_MW / [SA(T)/PGA] at ``mw``), both
    BSSA14 at SHAPE_RJB_KM and SHAPE_VS30. About x2 for low-rise and x4 for high-rise concrete at Mw 5.5,
    x1 at SHAPE_MW. Scaling the medians by it is evaluating the curves at SA(T) / [SA(T)/PGA]_M7, which
    grows with magnitude, so more magnitude never lowers damage.
    """
    m = np.clip(np.asarray(mw, dtype=float), _SHAPE_GRID[0], _SHAPE_GRID[-1])
    table = _shape_table()
    return np.stack([np.interp(m, _SHAPE_GRID, table[:, k]) for k in range(table.shape[1])], axis=-1)


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


def fragility_share(ln_pga, group_shares, sigma_ln=0.0) -> np.ndarray:
    """Expected share of buildings at moderate-or-worse damage.

    ``ln_pga``: (n,) median ln PGA in g at the site; ``group_shares``: (n, len(FRAGILITY_GROUPS)) share of
    the cell's buildings in each group (rows sum to 1, or are NaN for a cell without buildings);
    ``sigma_ln``: scalar or (n,) standard deviation of ln PGA about that median (0: the median field).

    Ground-motion variability is integrated here rather than folded into β: the HAZUS β (0.64) is the
    building's own dispersion given the shaking, and the GMM's residual is independent of it, so the
    expected share over both is a lognormal fragility with sqrt(β² + σ²) (the convolution of two normals
    in ln PGA). With σ = 0 this is the median-field share that OpenQuake reports at truncation level 0.
    """
    pga = np.exp(np.asarray(ln_pga, dtype=float))[:, None]
    return _stock_share(pga, group_shares, exceedance(pga, moderate_medians()[None, :], _widened(sigma_ln, pga)))


def fragility_floor(ln_pga, group_shares, sigma_ln) -> np.ndarray:
    """Lower bound of the expected moderate-or-worse share: per fragility group, the lower of the
    median-field share (HAZUS β alone) and the expected share over BSSA14's scatter (β widened to
    sqrt(β² + σ²), :func:`fragility_share`), weighted by the cell's group shares. Arguments as there.

    These are the two standard physics answers to "what share is damaged in this scenario": the
    median-field one is what a deterministic scenario reports (HAZUS-MH MR5 Technical Manual, ch. 5;
    OpenQuake's scenario_damage at truncation level 0), the expected one is what the features and the
    baseline use. Where the site's motion is above a group's moderate median the scatter lowers the
    share (it pulls the curve towards one half), below it the scatter raises it; taking the lower of
    the two per group gives a value no physics answer falls under. The served value is an expected
    share, so it is bounded with central estimates, not with a quantile of one realisation: the share
    at the 16th-percentile motion (median x exp(-σ)) is 0.2-0.4 below the median field at 0.4 g for
    code-era concrete, too loose to catch a model that errs by 0.2. This bound is at most 0.08 below the
    median field for σ 0.6 (Mw >= 5.5), 0.09 for σ 0.7 (Mw 5.0).

    More hazard never lowers it: each term rises with ln PGA, and σ does not grow with magnitude or
    shrink with distance (BSSA14's τ and φ fall from M 4.5 to 5.5; φ rises beyond 110 km).
    """
    pga = np.exp(np.asarray(ln_pga, dtype=float))[:, None]
    medians = moderate_medians()[None, :]
    prob = np.minimum(exceedance(pga, medians), exceedance(pga, medians, _widened(sigma_ln, pga)))
    return _stock_share(pga, group_shares, prob)


def _widened(sigma_ln, pga: np.ndarray) -> np.ndarray:
    """(n, 1) fragility β widened by the ground motion's ln standard deviation."""
    return np.hypot(FRAGILITY_BETA, np.broadcast_to(np.asarray(sigma_ln, dtype=float), pga.shape[:1]))[:, None]


def _stock_share(pga: np.ndarray, group_shares, prob: np.ndarray) -> np.ndarray:
    """Share of a cell's buildings from per-group probabilities (n, groups); NaN without stock or PGA."""
    shares = np.asarray(group_shares, dtype=float)
    # NaN shares (no buildings) give NaN, not 0: a cell without stock has no damage share.
    out = (prob * np.nan_to_num(shares)).sum(axis=1)
    return np.where(np.isnan(shares).any(axis=1) | np.isnan(pga[:, 0]), np.nan, out)

"""Earthquake consequences of a scenario: buildings by damage state, structural loss (KRW), casualties.

The physics estimate, HAZUS-MH style, on the building register:

- **Damage states.** Each building's probability of being in each damage state (slight, moderate,
  extensive, complete) at its cell's ground motion: the HAZUS equivalent-PGA fragility of its class and
  code level (:data:`features.domains.earthquake.seismic.MEDIANS_G`, piloti one level down) at BSSA14's
  median PGA, integrated over BSSA14's scatter (β widened to sqrt(β² + σ²)), exactly as
  :func:`~features.domains.earthquake.seismic.fragility_share` does: a cell's moderate + extensive +
  complete buildings are its buildings times the domain's ``fragility_damage_share`` feature.
- **Loss** (KRW): floor area x replacement cost per m² (by occupancy and structure family, from the city
  config's ``earthquake_costs``) x the structural damage ratio of each state (:data:`DAMAGE_RATIOS`).
- **Casualties** by HAZUS severity 1 (injury needing basic first aid) to 4 (killed): the cell's day or
  night population spread over its buildings by floor area, x the indoor casualty rate of the building's
  class in each state (:data:`CASUALTY_RATES`).

These consequences are the physics alone. The served ``value`` of ``POST /risk`` stays the model's share
(trained on damage surveys); the consequences are not rescaled to it: the model learns only the
moderate-or-worse share, not how damage splits among states, loss or casualties, and physics alone keeps
every total monotone in the shaking and makes the city totals of ``POST /scenario`` the sums of the cells'
``/risk`` details. ``details.fragility_share`` beside the value shows the physics' share.

More shaking never lowers any count: exceedance probabilities rise with PGA and the ratios and rates rise
with the damage state. A cell with no buildings has zero of everything.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from scipy.special import ndtr

from features import timeseries as ts
from features.domains.earthquake import conditioning, seismic
from features.domains.earthquake.features import CONDITIONS
from features.spatial import haversine_km

STATES = seismic.DAMAGE_STATES  # slight, moderate, extensive, complete
SEVERITIES = ("severity_1", "severity_2", "severity_3", "severity_4")
POPULATIONS = {"night": "pop_night", "day": "pop_day"}  # HAZUS's 2 AM and 2 PM scenarios
DEFAULT_POPULATION = "night"

# --- Occupancy (주용도 -> HAZUS occupancy class) ---------------------------------------------------
# First match wins; anything else (근린생활시설 and unlisted uses) is COM1, retail trade, the most common
# non-residential use of Korean registers.
_OCCUPANCY_PATTERNS = (("RES1", "단독주택"), ("RES3", "공동주택"), ("RES4", "숙박"), ("COM6", "의료"),
                       ("COM4", "업무"), ("COM2", "창고"), ("IND2", "공장"), ("EDU1", "교육"), ("REL1", "종교"))
DEFAULT_OCCUPANCY = "COM1"

# Structural repair cost as a share of replacement cost per damage state (slight, moderate, extensive,
# complete): HAZUS-MH MR5 Earthquake Model Technical Manual (FEMA, 2010), Table 15.2 "Structural Repair
# Costs (% of building replacement cost)" (Table 11-2 of the Hazus 5.1 Earthquake Model Technical Manual).
DAMAGE_RATIOS: dict[str, tuple[float, float, float, float]] = {
    "RES1": (0.005, 0.023, 0.117, 0.234), "RES3": (0.003, 0.014, 0.069, 0.138),
    "RES4": (0.002, 0.014, 0.068, 0.136), "COM1": (0.006, 0.029, 0.147, 0.294),
    "COM2": (0.006, 0.032, 0.162, 0.324), "COM4": (0.004, 0.019, 0.096, 0.192),
    "COM6": (0.002, 0.014, 0.070, 0.140), "IND2": (0.004, 0.016, 0.078, 0.157),
    "EDU1": (0.004, 0.019, 0.095, 0.189), "REL1": (0.003, 0.020, 0.099, 0.198),
}
# Non-structural repair cost, acceleration- plus drift-sensitive (% of building replacement cost), per
# damage state: HAZUS-MH MR5 Technical Manual Tables 15.3 and 15.4, summed. At complete damage the
# structural, acceleration- and drift-sensitive shares of each occupancy add up to the whole building
# (HAZUS's tables are built so); the non-structural damage state is taken equal to the structural one
# (HAZUS has separate non-structural fragility curves on spectral acceleration and drift, which a
# PGA-only scenario does not have).
NONSTRUCTURAL_RATIOS: dict[str, tuple[float, float, float, float]] = {
    "RES1": (0.015, 0.077, 0.330, 0.766), "RES3": (0.017, 0.086, 0.344, 0.862),
    "RES4": (0.018, 0.086, 0.346, 0.864), "COM1": (0.014, 0.071, 0.267, 0.706),
    "COM2": (0.014, 0.068, 0.256, 0.676), "COM4": (0.016, 0.082, 0.313, 0.808),
    "COM6": (0.018, 0.086, 0.328, 0.860), "IND2": (0.016, 0.084, 0.277, 0.843),
    "EDU1": (0.016, 0.082, 0.312, 0.811), "REL1": (0.018, 0.085, 0.315, 0.802),
}
# Contents damage (% of contents value) per state: HAZUS-MH MR5 Table 15.5, the same for every occupancy.
CONTENTS_DAMAGE = (0.01, 0.05, 0.25, 0.50)
# Contents value as a share of the building's replacement cost: HAZUS-MH MR5 Table 3.10 (residential
# 50%, commercial, education and religion 100%, hospitals and industry 150%).
CONTENTS_VALUE = {"RES1": 0.5, "RES3": 0.5, "RES4": 0.5, "COM1": 1.0, "COM2": 1.0, "COM4": 1.0, "COM6": 1.5,
                  "IND2": 1.5, "EDU1": 1.0, "REL1": 1.0}


def _loss_ratios() -> np.ndarray:
    """(occupancies, 4 states): HAZUS direct building loss per damage state as a share of the building's
    replacement cost, structural + non-structural + contents (contents at their value share)."""
    return np.array([np.add(DAMAGE_RATIOS[o], NONSTRUCTURAL_RATIOS[o]) + np.multiply(CONTENTS_DAMAGE, CONTENTS_VALUE[o])
                     for o in DAMAGE_RATIOS])


OCCUPANCIES = tuple(DAMAGE_RATIOS)
LOSS_RATIOS = _loss_ratios()

# --- Indoor casualty rates (HAZUS-MH MR5 Technical Manual, chapter 13) -----------------------------
# Per damage state, the share of occupants (%) at severity 1-4. Table 13.3 (slight): 0.05 / 0 / 0 / 0 for
# every class. Table 13.4 (moderate): concrete and wood 0.25 / 0.03 / 0 / 0, steel 0.20 / 0.025 / 0 / 0,
# URM 0.35 / 0.04 / 0.001 / 0.001 (transcriptions of the URM severity-2 cell disagree between 0.4 and
# 0.04; 0.4 would make severity-2 casualties fall as damage worsens to extensive, 0.04 keeps the table's
# ratio between severities). Table 13.5 (extensive): 1 / 0.1 / 0.001 / 0.001, URM 2 / 0.2 / 0.002 /
# 0.002. Table 13.6 (complete, no collapse): 5 / 1 / 0.01 / 0.01, URM 10 / 2 / 0.02 / 0.02. Table 13.7
# (complete with collapse): 40 / 20 / 5 / 10, light frames (W1, S3) 40 / 20 / 3 / 5. Table 13.8: the share
# of completely damaged buildings that collapse (COLLAPSE_RATES); the complete state's rate is the mix.
_MODERATE = {"C": (0.25, 0.03, 0.0, 0.0), "W": (0.25, 0.03, 0.0, 0.0), "S": (0.20, 0.025, 0.0, 0.0),
             "U": (0.35, 0.04, 0.001, 0.001)}
COLLAPSE_RATES = {"C1L": 0.13, "C1M": 0.10, "C1H": 0.05, "URML": 0.15, "URMM": 0.15, "S1L": 0.08,
                  "S1M": 0.05, "S1H": 0.03, "S3": 0.03, "W1": 0.03}


def _casualty_rates() -> np.ndarray:
    """(HAZUS classes, 4 states, 4 severities) shares of occupants, from the tables above."""
    out = np.zeros((len(seismic.HAZUS_CLASSES), len(STATES), len(SEVERITIES)))
    for i, cls in enumerate(seismic.HAZUS_CLASSES):
        urm, light = cls.startswith("URM"), cls in ("W1", "S3")
        scale = 2.0 if urm else 1.0
        collapse = np.array((40.0, 20.0, 3.0, 5.0) if light else (40.0, 20.0, 5.0, 10.0))
        c = COLLAPSE_RATES[cls]
        out[i, 0] = (0.05, 0.0, 0.0, 0.0)
        out[i, 1] = _MODERATE["U" if urm else cls[0]]
        out[i, 2] = np.array((1.0, 0.1, 0.001, 0.001)) * scale
        out[i, 3] = (1 - c) * np.array((5.0, 1.0, 0.01, 0.01)) * scale + c * collapse
    return out / 100.0


CASUALTY_RATES = _casualty_rates()


def occupancy(purpose) -> np.ndarray:
    """Index into :data:`OCCUPANCIES` of each 주용도 text (unknown: :data:`DEFAULT_OCCUPANCY`)."""
    text = pd.Series(purpose, dtype="string").fillna("")
    out = np.full(len(text), OCCUPANCIES.index(DEFAULT_OCCUPANCY), dtype=np.int8)
    for occ, pattern in reversed(_OCCUPANCY_PATTERNS):  # earlier patterns win, so they are applied last
        out[text.str.contains(pattern, regex=True).to_numpy(dtype=bool)] = OCCUPANCIES.index(occ)
    return out


def replacement_costs(city) -> np.ndarray:
    """(occupancies, structure families) KRW per m² from the city's ``earthquake_costs`` (defaults filled)."""
    table = city.earthquake_costs.replacement()
    out = np.full((len(OCCUPANCIES), len(seismic.FAMILIES)), np.nan)
    for i, occ in enumerate(OCCUPANCIES):
        costs = table.get(occ) or table[DEFAULT_OCCUPANCY]
        for j, family in enumerate(seismic.FAMILIES):
            out[i, j] = costs.get(family, costs.get("other", np.nan))
    if np.isnan(out).any():
        i, j = np.argwhere(np.isnan(out))[0]
        raise ValueError(f"earthquake_costs: no replacement cost for {OCCUPANCIES[i]} {seismic.FAMILIES[j]}")
    return out


# --- The building stock ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stock:
    """The placed register as arrays, one entry per building on the grid.

    ``row``: the building's row in the register frame (its id here); ``cell``: grid position;
    ``hazus``/``level``/``group``/``family``/``occupancy``: indices into HAZUS_CLASSES, CODE_LEVELS,
    FRAGILITY_GROUPS, FAMILIES and :data:`OCCUPANCIES`; ``area_m2``; ``value_krw`` = area x replacement
    cost per m²; ``approval_ns``: approval time (int64 ns, NaT's minimum for undated: always there).
    """

    row: np.ndarray
    cell: np.ndarray
    hazus: np.ndarray
    level: np.ndarray
    piloti: np.ndarray
    group: np.ndarray
    family: np.ndarray
    occupancy: np.ndarray
    area_m2: np.ndarray
    value_krw: np.ndarray
    approval_ns: np.ndarray

    def __len__(self) -> int:
        return len(self.row)

    def take(self, index: np.ndarray) -> Stock:
        """The buildings at ``index`` (positions in these arrays)."""
        return Stock(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def building_stock(src) -> Stock:
    """The register's buildings placed on the grid, with their classes and values (once per Sources)."""
    def build() -> Stock:
        b = src["buildings"]
        pos = src.grid.locate(b["lat"].to_numpy(), b["lon"].to_numpy())
        on = pos >= 0
        b = b.loc[on]
        level = seismic.code_level(b["approval_date"], b["floors_above"], b["floor_area_m2"],
                                   b["seismic_design"], b["purpose"])
        hazus = seismic.hazus_class(b["structure"], b["floors_above"])
        piloti = seismic.is_piloti(b["other_structure"])
        family = seismic.structure_family(b["structure"])
        occ = occupancy(b["purpose"])
        area = np.nan_to_num(b["floor_area_m2"].to_numpy(dtype=float), nan=0.0)
        return Stock(row=np.flatnonzero(on), cell=pos[on].astype(np.int64), hazus=hazus, level=level,
                     piloti=piloti, group=seismic.fragility_group(hazus, level, piloti), family=family,
                     occupancy=occ, area_m2=area, value_krw=area * replacement_costs(src.city)[occ, family],
                     approval_ns=ts.time_ns(b["approval_date"]))
    return ts.memo(src, "earthquake.consequence_stock", build, reads=("buildings", "static"))


def standing(stock: Stock, at) -> np.ndarray:
    """Mask of the buildings approved at or before ``at`` (undated ones always; ``at`` None: all)."""
    if at is None or pd.isna(at):
        return np.ones(len(stock), dtype=bool)
    return stock.approval_ns <= pd.Timestamp(at).as_unit("ns").value


RESIDENTIAL = tuple(i for i, o in enumerate(DAMAGE_RATIOS) if o in ("RES1", "RES3"))  # homes (not hotels)


def occupants(src, stock: Stock, mask: np.ndarray, population: str) -> np.ndarray:
    """People in each building: its cell's ``pop_day``/``pop_night`` spread over the cell's standing
    buildings (``mask``) by floor area; at night over its homes only (RES1, RES3; all buildings in a cell
    without homes), in the day over every building. 0 for buildings not standing. Everyone is indoors."""
    if population not in POPULATIONS:
        raise ValueError(f"population must be one of {', '.join(POPULATIONS)}, not {population!r}")
    pop = np.nan_to_num(ts.cell_arrays(src)[POPULATIONS[population]][:-1])
    area = np.where(mask, stock.area_m2, 0.0)
    if population == "night":
        homes = np.where(np.isin(stock.occupancy, RESIDENTIAL), area, 0.0)
        has_homes = np.bincount(stock.cell, weights=homes, minlength=len(pop)) > 0
        area = np.where(has_homes[stock.cell], homes, area)
    cell_area = np.bincount(stock.cell, weights=area, minlength=len(pop))
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(cell_area[stock.cell] > 0, area / cell_area[stock.cell], 0.0)
    return pop[stock.cell] * share


# --- Korean calibration --------------------------------------------------------------------------------
#
# HAZUS-MH's fragility and casualty tables describe the US building stock in large events. The medians
# first take the spectral-shape factor of the event's magnitude (physics, no parameter: see
# ``seismic.ln_shape_factor``); three factors then adjust the tables to Korea's record. They were fitted
# once, on Pohang 2017 alone (``bench/quake_record.py --fit``: the capacity factor to its loss, then the
# casualty factor to its injuries and the moderate-damage displacement to its displaced), and Gyeongju
# 2016 is the out-of-sample check; deaths are not fitted. No Korean study of these factors could be read
# here, so none is cited, and the ranges are judgement, not published bounds.
#
# - CAPACITY_FACTOR (range 1-10, fitted 6.2): how much more PGA a Korean building needs than HAZUS's
#   class at the same code level and event size (every damage-state median is multiplied by it). The
#   largest and least certain factor: it absorbs Korea's stiff low-rise wall-type concrete and masonry,
#   the short, high-frequency shaking of the peninsula's M5 events beyond the spectral shape, and the
#   conservatism of HAZUS's equivalent-PGA curves; a Korean damage survey would split it.
# - CASUALTY_FACTOR (range 0.1-10, fitted 4.3): Korean injuries over HAZUS's indoor rates at the same
#   damage. HAZUS counts casualties caused by structural damage; Korea's tallies of 2016 and 2017 are
#   mostly light injuries from falling contents and finishes and from fleeing, which its rates leave out.
# - MODERATE_DISPLACED (range 0-1, fitted 0.80): the share of residents of a home in moderate damage who
#   leave it for a shelter (cracked walls and the fear of aftershocks: Pohang's shelters held people for
#   weeks). HAZUS's shelter model counts only uninhabitable homes (below).
CAPACITY_FACTOR = 6.24
CASUALTY_FACTOR = 4.31
MODERATE_DISPLACED = 0.797
CALIBRATION_RANGES = {"CAPACITY_FACTOR": (1.0, 10.0), "CASUALTY_FACTOR": (0.1, 10.0), "MODERATE_DISPLACED": (0.0, 1.0)}
# HAZUS's shelter model (MR5 Technical Manual, ch. 14): the uninhabitable share of homes per damage state,
# single-family (RES1) 0 / 0 / 0 / 1 and multi-family (RES3) 0 / 0 / 0.9 / 1.
UNINHABITABLE = {"RES1": (0.0, 0.0, 0.0, 1.0), "RES3": (0.0, 0.0, 0.9, 1.0)}


def displaced_rates() -> np.ndarray:
    """(occupancies, 4 states) share of a building's night residents displaced in each damage state."""
    moderate = MODERATE_DISPLACED
    out = np.zeros((len(OCCUPANCIES), len(STATES)))
    for occ, rates in UNINHABITABLE.items():
        out[OCCUPANCIES.index(occ)] = np.maximum(rates, (0.0, moderate, moderate, moderate))
    return out


# --- Physics -------------------------------------------------------------------------------------------

_GROUP_CLASS = np.array([seismic.HAZUS_CLASSES.index(c) for c, _ in seismic.FRAGILITY_GROUPS])


def _ln_medians(mw) -> np.ndarray:
    """(..., groups, 4) ln median PGA (g) of each damage state per fragility group in an event of moment
    magnitude ``mw`` (scalar or array): HAZUS's medians x the spectral-shape factor of the group's class
    (:func:`features.domains.earthquake.seismic.ln_shape_factor`) x CAPACITY_FACTOR."""
    hazus = np.log(np.array([seismic.MEDIANS_G[c][lvl] for c, lvl in seismic.FRAGILITY_GROUPS]) * CAPACITY_FACTOR)
    shape = seismic.ln_shape_factor(mw)[..., _GROUP_CLASS]  # (..., groups)
    return hazus + shape[..., None]


def _exact(exceed: np.ndarray) -> np.ndarray:
    """Probabilities of exactly each state from the probabilities of reaching them (last axis)."""
    exceed = np.nan_to_num(exceed)
    return exceed - np.concatenate([exceed[..., 1:], np.zeros(exceed.shape[:-1] + (1,))], axis=-1)


def state_probabilities(ln_pga, sigma_ln, mw) -> np.ndarray:
    """(n, groups, 4) probability of being exactly in each damage state, per site and fragility group.

    ``ln_pga``: (n,) median ln PGA (g); ``sigma_ln``: (n,) or scalar ln standard deviation of the motion;
    ``mw``: (n,) or scalar moment magnitude of the event (the medians' spectral-shape factor).
    The fragility β is widened by the motion's scatter as in ``seismic.fragility_share``; a NaN motion
    (no site) gives 0 everywhere. The four sum to P(at least slight) ≤ 1.
    """
    ln_pga = np.asarray(ln_pga, dtype=float)
    beta = np.hypot(seismic.FRAGILITY_BETA, np.broadcast_to(np.asarray(sigma_ln, dtype=float), ln_pga.shape))
    medians = np.exp(_ln_medians(np.broadcast_to(np.asarray(mw, dtype=float), ln_pga.shape)))
    return _exact(seismic.exceedance(np.exp(ln_pga)[:, None, None], medians, beta[:, None, None]))


#: The ground motion's scatter is BSSA14's at this magnitude for every smaller event too. BSSA14's τ and φ
#: shrink from M4.5 to M5.5; with damage medians far above the motion, a smaller scatter lowers the
#: expected damage, so a larger event would read as less damaging than a smaller one. Holding the
#: scatter keeps every consequence monotone in magnitude (it is constant above M5.5 anyway).
SCATTER_MW = 5.5


def motion(src, conditions: dict) -> dict[str, np.ndarray]:
    """BSSA14 at every cell for a scenario's conditions (:func:`motion_at`)."""
    cells = ts.cell_arrays(src)
    return motion_at(conditions, cells["lat"][:-1], cells["lon"][:-1], cells["vs30_mps"][:-1])


def motion_at(conditions: dict, lat, lon, vs30) -> dict[str, np.ndarray]:
    """BSSA14 at the sites (lat, lon, Vs30 in m/s) for a scenario's conditions (magnitude of its
    magnitude_type, epicentre_lat/lon, depth_km), with the scatter (``sigma``, ``tau``) of at least SCATTER_MW."""
    depth = conditions.get("depth_km", seismic.DEFAULT_DEPTH_KM)
    ml = seismic.as_ml(conditions["magnitude"], conditions.get("magnitude_type", "ML"))
    gm = seismic.ground_motion(ml, float(conditions["epicentre_lat"]), float(conditions["epicentre_lon"]),
                               float(depth), lat, lon, vs30)
    return hold_scatter(gm, vs30)


def hold_scatter(gm: dict, vs30) -> dict:
    """``gm`` (of ``seismic.ground_motion``) with ``sigma`` and ``tau`` of at least SCATTER_MW."""
    mw = np.maximum(gm["mw"], SCATTER_MW)
    gm["sigma"] = seismic.bssa14_sigma(mw, gm["rjb_km"], vs30)
    gm["tau"] = seismic.bssa14_tau(mw)
    return gm


def building_consequences(stock: Stock, probs: np.ndarray, people: np.ndarray, mask: np.ndarray,
                          groups: np.ndarray | None = None, residents: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per building: ``states`` (n, 4) probabilities, ``loss_krw`` (n,), ``casualties`` (n, 4) and
    ``displaced`` (n,, people; zeros without ``residents``).

    ``probs``: (cells, groups, 4) from :func:`state_probabilities`; ``people``: occupants per building;
    ``residents``: night residents per building (the displaced are residents whatever the hour);
    ``mask``: standing buildings (others get zeros); ``groups``: fragility groups to use instead of the
    buildings' own (e.g. all high-code, for a retrofit). Loss is HAZUS direct building loss (structural,
    non-structural and contents, :data:`LOSS_RATIOS`); casualties are HAZUS's rates x CASUALTY_FACTOR.
    """
    group = stock.group if groups is None else groups
    states = probs[stock.cell, group] * mask[:, None]
    residents = np.zeros(len(stock)) if residents is None else residents
    per = np.einsum("nk,nkq->nq", states, _per_state(stock, people, residents))
    return {"states": states, "loss_krw": per[:, 0], "casualties": per[:, 1:5], "displaced": per[:, 5]}


_PER_STATE = ("loss_krw", *SEVERITIES, "displaced")  # what one building brings to each damage state


def _per_state(stock: Stock, people: np.ndarray, residents: np.ndarray) -> np.ndarray:
    """(n, 4 states, :data:`_PER_STATE`): each building's loss (KRW), casualties by severity and displaced
    residents should it be in each damage state, the one place these formulas live."""
    return np.concatenate([
        (stock.value_krw[:, None] * LOSS_RATIOS[stock.occupancy])[..., None],
        people[:, None, None] * CASUALTY_FACTOR * CASUALTY_RATES[stock.hazus],
        (residents[:, None] * displaced_rates()[stock.occupancy])[..., None],
    ], axis=-1)


# --- Ranges ----------------------------------------------------------------------------------------------
#
# A scenario's answer varies with the shaking it happens to produce: BSSA14's between-event term (τ, shared
# by every site) and its within-event term (φ), spatially correlated as Jayaram & Baker (2009) found for
# PGA, ρ(h) = exp(-3h / 8.5 km) (their case 1, as OpenQuake's JB2009 correlation model samples it). Each
# of SAMPLES fields is drawn; in each, a building's damage state follows its fragility curve (HAZUS β) at
# the field's PGA, and the 5th and 95th percentiles over the fields are the range. The field is drawn on
# blocks of cells of at most MAX_POINTS points (a full covariance of a 100 m grid would not fit), each
# cell taking its block's value. The mean is the exact expectation (β widened by σ), so means add up over
# cells and districts; quantiles do not.
SAMPLES = 200
CHUNK_CELLS = 256  # cells per step of the sampled loop
THREADS = min(4, os.cpu_count() or 1)
CORRELATION_KM = 8.5
MAX_POINTS = 1500
SEED = 20171115


def _blocks(src) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """(block of each cell, Cholesky factor of the blocks' within-event correlation, the blocks' centres
    (lat, lon)), once per Sources."""
    def build():
        cells = src.grid.cells
        step = max(1, int(np.ceil(np.sqrt(len(cells) / MAX_POINTS))))
        key = (cells["row"].to_numpy() // step) * 1_000_000 + cells["col"].to_numpy() // step
        uniq, block = np.unique(key, return_inverse=True)
        lat = np.bincount(block, weights=cells["lat"].to_numpy()) / np.bincount(block)
        lon = np.bincount(block, weights=cells["lon"].to_numpy()) / np.bincount(block)
        h = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
        corr = np.exp(-3.0 * h / CORRELATION_KM) + 1e-9 * np.eye(len(uniq))
        return block, np.linalg.cholesky(corr), (lat, lon)
    return ts.memo(src, "earthquake.motion_blocks", build, reads=())


def motion_samples(src, gm: dict, positions: np.ndarray) -> np.ndarray:
    """(SAMPLES, len(positions)) ln PGA fields at the cells ``positions`` (seeded: the same each call);
    conditioned on the records when ``gm`` is (:func:`features.domains.earthquake.conditioning.condition`)."""
    block, chol, centres = _blocks(src)
    if "stations" in gm:
        return conditioning.conditioned_samples(gm, positions, block, centres, SAMPLES, SEED, CORRELATION_KM)
    rng = np.random.default_rng(SEED)
    between = rng.standard_normal(SAMPLES)
    within = (chol @ rng.standard_normal((chol.shape[0], SAMPLES))).T  # (SAMPLES, blocks)
    tau = float(np.ravel(gm["tau"])[0])
    phi = np.sqrt(np.maximum(gm["sigma"][positions] ** 2 - tau**2, 0.0))
    return gm["ln_pga"][positions][None, :] + tau * between[:, None] + phi[None, :] * within[:, block[positions]]


QUANTITIES = (*STATES, "loss_krw", "injuries", "deaths", "displaced")  # each with a range


def _exposure(stock: Stock, people: np.ndarray, residents: np.ndarray, mask: np.ndarray):
    """The standing stock summed per (cell, fragility group) pair: ``(cell, group, W)`` with W (pairs, 4
    states, count + :data:`_PER_STATE`), what the pair's buildings bring to each damage state."""
    pair, inverse = np.unique(stock.cell[mask].astype(np.int64) * 10_000 + stock.group[mask], return_inverse=True)
    one = stock.take(np.flatnonzero(mask))
    per = np.concatenate([np.ones((len(one), len(STATES), 1)), _per_state(one, people[mask], residents[mask])], axis=-1)
    flat = per.reshape(len(per), per.shape[1] * per.shape[2])  # one bincount per column: np.add.at is slow
    w = np.stack([np.bincount(inverse, weights=flat[:, j], minlength=len(pair)) for j in range(flat.shape[1])],
                 axis=1).reshape(len(pair), *per.shape[1:])
    return (pair // 10_000).astype(np.int64), (pair % 10_000).astype(np.int64), w


def _quantities(probs: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(..., pairs, QUANTITIES) from state probabilities (..., pairs, 4) and exposure W (pairs, 4, per state)."""
    states = probs * w[:, :, 0]
    per = np.einsum("...pk,pkq->...pq", probs, w[:, :, 1:])
    injuries = per[..., 1:4].sum(axis=-1, keepdims=True)
    return np.concatenate([states, per[..., :1], injuries, per[..., 4:5], per[..., 5:6]], axis=-1)


CELL_COLUMNS = ("buildings", *STATES, "loss_krw", *SEVERITIES, "injuries", "deaths", "displaced", "population",
                "pga_g", "pga_g_p05", "pga_g_p95")
SUMMED = tuple(c for c in CELL_COLUMNS if not c.startswith("pga_g"))
Z95 = 1.6448536269514722  # the standard normal's 95th percentile


def consequences(src, conditions: dict, at=None, population: str = DEFAULT_POPULATION, positions=None,
                 by: str = "district_code", records: pd.DataFrame | None = None,
                 cell_ranges: bool = True) -> tuple[pd.DataFrame, dict]:
    """A scenario's consequences per cell and their ranges.

    Returns ``(cells, sums)``. ``cells``: every grid cell (grid order) with ``cell_id``, ``district``,
    ``district_code``, the buildings standing at ``at`` (None: the whole register), the expected buildings
    in each damage state, ``loss_krw`` (KRW, HAZUS direct building loss), expected people at HAZUS
    severity 1-4 (``injuries`` = 1-3, ``deaths`` = 4), ``displaced`` (residents), the ``population``
    counted and the median ``pga_g`` with its 5-95% range (``pga_g_p05``, ``pga_g_p95``); each of
    :data:`QUANTITIES` also as ``<q>_p05`` and ``<q>_p95``. ``records``: strong-motion records of the event
    (``lat``, ``lon``, ``pga_g``) the shaking is conditioned on (:mod:`~features.domains.earthquake.conditioning`).
    ``cell_ranges`` False leaves each cell's ``<q>_p05``/``<q>_p95`` NaN (the totals' ranges in ``sums``
    stay): what an answer about the city alone needs, at a fraction of the time on a fine grid.
    ``sums``: per-sample totals, ``{"city": (SAMPLES, Q), by: {value: (SAMPLES, Q)}}``, for the ranges
    of totals (:func:`totals`). ``population``: "night" (02:00, ``pop_night``) or "day" (14:00,
    ``pop_day``); ValueError otherwise. ``positions``: grid positions to compute (the other cells read 0;
    None: all), so that a request for a few cells does not pay for the city.
    """
    stock = building_stock(src)
    n = len(src.grid.cells)
    gm = conditioning.condition(src, motion(src, conditions), conditions, records, CORRELATION_KM)
    if positions is None:
        positions = np.arange(n)
    else:
        positions = np.unique(np.asarray(positions, dtype=np.int64))
        positions = positions[(positions >= 0) & (positions < n)]
        stock = stock.take(np.flatnonzero(np.isin(stock.cell, positions)))
    mask = standing(stock, at)
    people = occupants(src, stock, mask, population)
    residents = occupants(src, stock, mask, "night")
    cell, group, w = _exposure(stock, people, residents, mask)
    ln_med = _ln_medians(float(np.ravel(gm["mw"])[0]))
    beta = np.hypot(seismic.FRAGILITY_BETA, gm["sigma"][cell])
    expected = _exact(seismic.exceedance(np.exp(gm["ln_pga"][cell])[:, None], np.exp(ln_med[group]), beta[:, None]))
    mean = _quantities(expected, w)

    frame = src.grid.cells[["cell_id", "district", "district_code"]].reset_index(drop=True)
    frame["buildings"] = np.bincount(stock.cell, weights=mask.astype(float), minlength=n)
    for q, name in enumerate(QUANTITIES):
        frame[name] = np.bincount(cell, weights=mean[:, q], minlength=n)
    sev = np.einsum("pk,pkq->pq", expected, w[:, :, 2:6])
    for k, name in enumerate(SEVERITIES):
        frame[name] = np.bincount(cell, weights=sev[:, k], minlength=n)
    frame["population"] = np.bincount(stock.cell, weights=people, minlength=n)
    frame["pga_g"] = np.exp(gm["ln_pga"])
    frame["pga_g_p05"], frame["pga_g_p95"] = np.exp(gm["ln_pga"] - Z95 * gm["sigma"]), np.exp(gm["ln_pga"] + Z95 * gm["sigma"])

    # Ranges: the sampled fields, a chunk of cells at a time (memory stays flat in the grid's size), chunks
    # on threads (numpy and scipy release the GIL). The totals of a sample are one matrix product per
    # district of a chunk, on the probabilities of reaching each state and what reaching it adds
    # (:func:`_steps`): no state differencing per sample. Single precision: the ranges are quantiles of
    # SAMPLES draws, far coarser than float32's 1e-7.
    q = len(QUANTITIES)
    keys = frame[by].to_numpy()
    labels, group_of = np.unique(keys, return_inverse=True)
    lo, hi = np.full((n, q), np.nan), np.full((n, q), np.nan)
    built, starts = np.unique(cell, return_index=True)  # pairs are sorted by cell
    # (SAMPLES, built cells); a cell without motion (no Vs30) reaches no state
    fields = np.nan_to_num(motion_samples(src, gm, built), nan=-np.inf).astype(np.float32)
    bounds = np.append(starts, len(cell))
    steps, district = _steps(w).astype(np.float32), group_of[cell]
    ln_med_pair = (ln_med[group] / seismic.FRAGILITY_BETA).astype(np.float32)
    fields /= np.float32(seismic.FRAGILITY_BETA)

    def chunk(first: int):
        last = min(first + CHUNK_CELLS, len(built))
        pairs = slice(bounds[first], bounds[last])
        reach = ndtr(fields[:, np.searchsorted(built, cell[pairs])][..., None] - ln_med_pair[pairs][None])
        part = np.zeros((SAMPLES, len(labels), q))
        here = district[pairs]
        for d in np.unique(here):  # pairs are sorted by cell: a chunk holds one district or a few
            sel = here == d
            part[:, d] = reach[:, sel].reshape(SAMPLES, -1) @ steps[pairs][sel].reshape(-1, q)
        ranges = None
        if cell_ranges:
            per_cell = np.add.reduceat(np.einsum("spk,pkq->spq", reach, steps[pairs]),
                                       starts[first:last] - bounds[first], axis=1)
            ranges = np.quantile(per_cell, [0.05, 0.95], axis=0)
        return first, last, part, ranges

    parts = np.zeros((SAMPLES, len(labels), q))
    with ThreadPoolExecutor(THREADS) as pool:
        for first, last, part, ranges in pool.map(chunk, range(0, len(built), CHUNK_CELLS)):
            parts += part
            if ranges is not None:
                lo[built[first:last]], hi[built[first:last]] = ranges
    if cell_ranges:  # cells without buildings: nothing to range over
        lo, hi = np.nan_to_num(lo), np.nan_to_num(hi)
    for i, name in enumerate(QUANTITIES):
        frame[f"{name}_p05"], frame[f"{name}_p95"] = lo[:, i], hi[:, i]
    return frame, {"city": parts.sum(axis=1), by: dict(zip(labels.tolist(), np.moveaxis(parts, 1, 0), strict=True))}


def _steps(w: np.ndarray) -> np.ndarray:
    """(pairs, 4, QUANTITIES): what reaching each damage state adds to each quantity, the pair's quantities
    in that state less those in the state below. Σ_k P(exactly k) m_k = Σ_k P(reaching k) (m_k - m_(k-1))."""
    eye = np.eye(len(STATES))
    exactly = np.stack([_quantities(np.broadcast_to(eye[k], (len(w), len(STATES))), w) for k in range(len(STATES))],
                       axis=1)
    return np.diff(exactly, axis=1, prepend=0.0)


def cell_consequences(src, conditions: dict, at=None, population: str = DEFAULT_POPULATION,
                      positions=None, records: pd.DataFrame | None = None) -> pd.DataFrame:
    """The per-cell frame of :func:`consequences` (means and per-cell ranges)."""
    return consequences(src, conditions, at, population, positions, records=records)[0]


def totals(cells: pd.DataFrame, sums: dict | None = None, by: str | None = None) -> pd.DataFrame:
    """Sums of :func:`consequences`' cell means for the city (``by`` None: one row) or per ``by``; with
    ``sums`` (its per-sample totals) also each quantity's ``<q>_p05`` and ``<q>_p95`` of the total (not the
    sum of the cells' quantiles, which do not add up)."""
    summed = list(SUMMED)
    if by is None:
        out = cells[summed].sum().to_frame().T
        samples = [sums["city"]] if sums else None
    else:
        out = cells.groupby(by, sort=True)[summed].sum().reset_index()
        key = by if isinstance(by, str) else by[0]
        samples = [sums[key][k] for k in out[key]] if sums else None
    if samples is not None:
        q = np.quantile(np.stack(samples), [0.05, 0.95], axis=1)  # (2, rows, Q)
        for i, name in enumerate(QUANTITIES):
            out[f"{name}_p05"], out[f"{name}_p95"] = q[0, :, i], q[1, :, i]
    return out


UNITS = {
    "buildings": "buildings standing at `at` (count)",
    "damage_states": "expected buildings in each HAZUS damage state (exactly that state)",
    "loss_krw": "KRW: expected HAZUS direct building loss, structural + non-structural + contents (floor area x "
                "replacement cost per m² x HAZUS loss ratio); the government's 재산피해 tally is a narrower quantity",
    "casualties": "expected people, HAZUS severity 1 (first aid) .. 4 (killed), indoors",
    "injuries": "expected people at HAZUS severity 1-3", "deaths": "expected people at HAZUS severity 4",
    "displaced": "expected residents displaced (HAZUS shelter model: homes uninhabitable)",
    "population": "people counted (the cells' day or night population, all indoors)",
    "ranges": f"5th and 95th percentiles over {SAMPLES} sampled ground-motion fields (between-event and spatially "
              "correlated within-event variability, Jayaram and Baker 2009) with the fragility dispersion; "
              "means add up over districts, quantiles do not",
}
METHOD = ("HAZUS-MH fragility at BSSA14 ground motion, with the Korean factors fitted on Pohang 2017 "
          "(features/domains/earthquake/consequences.py; physics, not the model's value)")
_DIGITS = {"buildings": 0, "loss_krw": 0, "population": 0}  # counts are expectations: a few still read


def _summary(row: dict) -> dict:
    def num(key: str) -> float:
        return round(float(row[key]), _DIGITS.get(key.removesuffix("_p05").removesuffix("_p95"), 3))

    return {"buildings": int(round(row["buildings"])), "damage_states": {s: num(s) for s in STATES},
            "moderate_or_worse": round(float(sum(row[s] for s in STATES[1:])), 3),
            "loss_krw": int(round(row["loss_krw"])), "casualties": {s: num(s) for s in SEVERITIES},
            "injuries": num("injuries"), "deaths": num("deaths"), "displaced": num("displaced"),
            "population": int(round(row["population"])),
            "ranges": {q: {"p05": num(f"{q}_p05"), "p95": num(f"{q}_p95")} for q in QUANTITIES}}


def report(src, conditions: dict, magnitude_type: str = "ML", at=None,
           population: str = DEFAULT_POPULATION) -> dict:
    """A scenario's answer as ``POST /scenario`` and ``urban-safety scenario`` give it: ``magnitude``
    (the value, its type, ML and Mw), ``method``, ``max_pga_g`` and the ``city`` and each district's
    expected buildings by damage state, loss (KRW), casualties, injuries, deaths, displaced and people
    counted, each quantity with its 5-95% ``ranges``. ``conditions``: magnitude (of ``magnitude_type``),
    epicentre_lat/lon, depth_km."""
    ml = seismic.as_ml(conditions["magnitude"], magnitude_type)
    cells, sums = consequences(src, {**conditions, "magnitude": ml}, at, population)
    city = totals(cells, sums).iloc[0].to_dict()
    districts = totals(cells, sums, by=["district_code", "district"]).to_dict("records")
    shaken = cells.loc[cells["buildings"] > 0, "pga_g"]
    return {
        "magnitude": {"value": float(conditions["magnitude"]), "type": magnitude_type, "ml": round(ml, 2),
                      "mw": round(float(seismic.ml_to_mw(ml)), 2)},
        "method": METHOD, "max_pga_g": round(float(shaken.max()), 4) if len(shaken) else None,
        "city": _summary(city),
        "districts": [{"district": d["district"], "district_code": int(d["district_code"]), **_summary(d)}
                      for d in districts],
    }


def scenario_conditions(conditions: dict) -> dict:
    """Only the scenario's own conditions (:data:`features.domains.earthquake.features.CONDITIONS`)."""
    return {c: conditions[c] for c in CONDITIONS if conditions.get(c) is not None}

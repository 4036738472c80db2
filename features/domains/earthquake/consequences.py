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

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from features import timeseries as ts
from features.domains.earthquake import seismic
from features.domains.earthquake.features import CONDITIONS

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
OCCUPANCIES = tuple(DAMAGE_RATIOS)

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
    return ts.memo(src, "earthquake.consequence_stock", build)


def standing(stock: Stock, at) -> np.ndarray:
    """Mask of the buildings approved at or before ``at`` (undated ones always; ``at`` None: all)."""
    if at is None or pd.isna(at):
        return np.ones(len(stock), dtype=bool)
    return stock.approval_ns <= pd.Timestamp(at).as_unit("ns").value


def occupants(src, stock: Stock, mask: np.ndarray, population: str) -> np.ndarray:
    """People in each building: its cell's ``pop_day``/``pop_night`` spread by floor area over the cell's
    standing buildings (``mask``); 0 for buildings not standing. Everyone is counted indoors."""
    if population not in POPULATIONS:
        raise ValueError(f"population must be one of {', '.join(POPULATIONS)}, not {population!r}")
    pop = np.nan_to_num(ts.cell_arrays(src)[POPULATIONS[population]][:-1])
    area = np.where(mask, stock.area_m2, 0.0)
    cell_area = np.bincount(stock.cell, weights=area, minlength=len(pop))
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(cell_area[stock.cell] > 0, area / cell_area[stock.cell], 0.0)
    return pop[stock.cell] * share


# --- Physics -------------------------------------------------------------------------------------------

def _ln_medians() -> np.ndarray:
    """(groups, 4) ln median PGA (g) of each damage state per fragility group."""
    return np.log(np.array([seismic.MEDIANS_G[c][lvl] for c, lvl in seismic.FRAGILITY_GROUPS]))


def state_probabilities(ln_pga, sigma_ln) -> np.ndarray:
    """(n, groups, 4) probability of being exactly in each damage state, per site and fragility group.

    ``ln_pga``: (n,) median ln PGA (g); ``sigma_ln``: (n,) or scalar ln standard deviation of the motion.
    The fragility β is widened by the motion's scatter as in ``seismic.fragility_share``; a NaN motion
    (no site) gives 0 everywhere. The four sum to P(at least slight) ≤ 1.
    """
    ln_pga = np.asarray(ln_pga, dtype=float)
    beta = np.hypot(seismic.FRAGILITY_BETA, np.broadcast_to(np.asarray(sigma_ln, dtype=float), ln_pga.shape))
    exceed = seismic.exceedance(np.exp(ln_pga)[:, None, None], np.exp(_ln_medians())[None], beta[:, None, None])
    exceed = np.nan_to_num(exceed)
    return exceed - np.concatenate([exceed[..., 1:], np.zeros(exceed.shape[:-1] + (1,))], axis=-1)


def motion(src, conditions: dict) -> dict[str, np.ndarray]:
    """BSSA14 at every cell for a scenario's conditions (magnitude, epicentre_lat/lon, depth_km)."""
    cells = ts.cell_arrays(src)
    depth = conditions.get("depth_km", seismic.DEFAULT_DEPTH_KM)
    return seismic.ground_motion(float(conditions["magnitude"]), float(conditions["epicentre_lat"]),
                                 float(conditions["epicentre_lon"]), float(depth), cells["lat"][:-1],
                                 cells["lon"][:-1], cells["vs30_mps"][:-1])


def building_consequences(stock: Stock, probs: np.ndarray, people: np.ndarray, mask: np.ndarray,
                          groups: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per building: ``states`` (n, 4) probabilities, ``loss_krw`` (n,), ``casualties`` (n, 4).

    ``probs``: (cells, groups, 4) from :func:`state_probabilities`; ``people``: occupants per building;
    ``mask``: standing buildings (others get zeros); ``groups``: fragility groups to use instead of the
    buildings' own (e.g. all high-code, for a retrofit).
    """
    group = stock.group if groups is None else groups
    states = probs[stock.cell, group] * mask[:, None]
    ratios = np.asarray([DAMAGE_RATIOS[o] for o in OCCUPANCIES])[stock.occupancy]
    loss = stock.value_krw * (states * ratios).sum(axis=1)
    casualties = people[:, None] * np.einsum("ns,nsk->nk", states, CASUALTY_RATES[stock.hazus])
    return {"states": states, "loss_krw": loss, "casualties": casualties}


CELL_COLUMNS = ("buildings", *STATES, "loss_krw", *SEVERITIES, "population", "pga_g")


def cell_consequences(src, conditions: dict, at=None, population: str = DEFAULT_POPULATION,
                      positions=None) -> pd.DataFrame:
    """Per grid cell (every cell, grid order): ``cell_id``, ``district``, ``district_code``, buildings
    standing at ``at`` (None: the whole register), expected buildings in each damage state, ``loss_krw``
    (KRW), expected casualties ``severity_1`` .. ``severity_4`` (people), the ``population`` counted and the
    median ``pga_g``. ``population``: "night" (02:00, ``pop_night``) or "day" (14:00, ``pop_day``);
    ValueError otherwise. ``positions``: grid positions to compute (the other cells read 0; None: all),
    so that a request for a few cells does not pay for the city.
    """
    stock = building_stock(src)
    n = len(src.grid.cells)
    gm = motion(src, conditions)
    if positions is None:
        positions = np.arange(n)
    else:
        positions = np.unique(np.asarray(positions, dtype=np.int64))
        positions = positions[(positions >= 0) & (positions < n)]
        stock = stock.take(np.flatnonzero(np.isin(stock.cell, positions)))
    mask = standing(stock, at)
    probs = np.zeros((n, len(seismic.FRAGILITY_GROUPS), len(STATES)))
    probs[positions] = state_probabilities(gm["ln_pga"][positions], gm["sigma"][positions])
    people = occupants(src, stock, mask, population)
    out = building_consequences(stock, probs, people, mask)

    def per_cell(weights) -> np.ndarray:
        return np.bincount(stock.cell, weights=weights, minlength=n)

    frame = src.grid.cells[["cell_id", "district", "district_code"]].reset_index(drop=True)
    frame["buildings"] = per_cell(mask.astype(float))
    for k, state in enumerate(STATES):
        frame[state] = per_cell(out["states"][:, k])
    frame["loss_krw"] = per_cell(out["loss_krw"])
    for k, sev in enumerate(SEVERITIES):
        frame[sev] = per_cell(out["casualties"][:, k])
    frame["population"] = per_cell(people)
    frame["pga_g"] = np.exp(gm["ln_pga"])
    return frame


def totals(cells: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Sums of :func:`cell_consequences` columns, for the city (``by`` None: one row) or per ``by``."""
    summed = [c for c in CELL_COLUMNS if c != "pga_g"]
    if by is None:
        return cells[summed].sum().to_frame().T
    return cells.groupby(by, sort=True)[summed].sum().reset_index()


def scenario_conditions(conditions: dict) -> dict:
    """Only the scenario's own conditions (:data:`features.domains.earthquake.features.CONDITIONS`)."""
    return {c: conditions[c] for c in CONDITIONS if conditions.get(c) is not None}

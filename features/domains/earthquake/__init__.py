"""Earthquake domain: share of a cell's buildings at moderate-or-worse damage in a scenario.

A request is a scenario (magnitude, epicentre, depth, time) and a cell. Features describe the ground
motion at the cell (distances, BSSA14 on rock and with the cell's Vs30, see :mod:`features.domains.earthquake.seismic`) and
the cell's building stock *as of the scenario time*: only buildings approved by then (or with no
approval date) count.
The HAZUS fragility estimate is a feature too, and the baseline uses the same function; so is its lower
bound, below which the served share never falls in strong shaking (:func:`apply_physics_floor`).
"""

from __future__ import annotations

from datetime import timedelta

from features.domains.earthquake.evaluation import baseline, oracle
from features.domains.earthquake.features import (
    CONDITIONS,
    FEATURES,
    UNITS,
    build_rows,
    build_table,
    table_parts,
)
from features.domains.earthquake.serving import SERVING
from features.metrics import MAE, R2, RMSE
from features.registry import DomainSpec, register

SPEC = register(DomainSpec(
    name="earthquake",
    title="Earthquake building damage",
    task="regression",
    target="damage_share",
    keys=("scenario_id", "cell_id"),
    time="time",
    horizon=timedelta(0),
    features=FEATURES,
    conditions=CONDITIONS,
    sources=("damage_surveys", "buildings", "static"),
    # The catalogue: the live cycle's latest event and the retrofit ranking read it; the strong-motion records
    # condition a live quake's impact alert (live/impact.py).
    optional_sources=("quakes", "quake_stations"),
    feature_set_version="earthquake-v5",
    build_table=build_table,
    build_parts=table_parts,
    build_rows=build_rows,
    weight="weight",
    serving=SERVING,
    metrics=(RMSE, MAE, R2),
    primary_metric="rmse",
    baseline=baseline,
    oracle=oracle,
    extra={"units": UNITS},
    # Stronger shaking never means less damage: magnitude and motion up, distance and depth down.
    monotone={"magnitude": 1, "depth_km": -1, "epi_dist_km": -1, "hypo_dist_km": -1, "ln_pga_generic": 1,
              "ln_pga_site": 1, "fragility_damage_share": 1, "fragility_floor_share": 1},
    essential=("ln_pga_site",),
    # The what-if scenario and what follows from it alone at a cell (its distance, shaking and the fragility
    # physics at that shaking): they move with the question asked, not with the data. The building stock
    # (counts, shares, age as of the scenario time) and Vs30 stay monitored.
    not_drift={**dict.fromkeys(("magnitude", "depth_km"), "scenario condition: the what-if quake asked"),
               **dict.fromkeys(("epi_dist_km", "hypo_dist_km"), "scenario condition: distance to the asked epicentre"),
               **dict.fromkeys(("ln_pga_generic", "ln_pga_site"), "scenario condition: the asked quake's shaking"),
               **dict.fromkeys(("fragility_damage_share", "fragility_floor_share"),
                               "scenario condition: the fragility physics at the asked quake's shaking")},
))

"""Traffic domain: how many accidents will happen in a cell during a 3-hour slot?

A request is a cell and a slot start ``t`` (00, 03, ..., 21 KST) with the slot's conditions: calendar
(hour, weekday, holiday), weather known at ``t`` (rain in the 3 h before, snow depth and temperature
at ``t``, freezing) and darkness at the slot's midpoint. Features add the cell's road and land-use
layers and its past accident rates, counted strictly before ``t``.

Label: ``accidents`` = accidents in the slot. TAAS stamps an accident with the start of its hour, so
the slot ``(t, t + 3h]`` in continuous time is the stamps ``t <= time < t + 3h``; ``eclo`` sums their
severity (not a feature). Training rows: every cell-slot with an accident plus a hash-sampled share
``rate`` of the zero cell-slots, weighted ``1 / rate`` so that sums and means stay unbiased.
"""

from __future__ import annotations

from features.domains.traffic.evaluation import baseline, oracle
from features.domains.traffic.features import (
    CONDITIONS,
    FEATURES,
    SLOT,
    UNITS,
    build_rows,
    build_table,
    table_parts,
)
from features.domains.traffic.serving import SERVING
from features.metrics import POISSON_DEVIANCE, TOP5_SHARE
from features.registry import DomainSpec, register

SPEC = register(DomainSpec(
    name="traffic",
    title="Traffic accidents in a 3-hour slot",
    task="count",
    target="accidents",
    keys=("cell_id",),
    time="time",
    horizon=SLOT,
    features=FEATURES,
    conditions=CONDITIONS,
    sources=("asos", "aws", "taas", "static"),
    feature_set_version="traffic-v3",
    build_table=build_table,
    build_parts=table_parts,
    build_rows=build_rows,
    weight="weight",
    serving=SERVING,
    metrics=(POISSON_DEVIANCE, TOP5_SHARE),
    primary_metric="poisson_deviance",
    baseline=baseline,
    oracle=oracle,
    # Exposure and wet or frozen roads never lower the expected count: more traffic, road and junctions,
    # rain (crash rates up ~70% in rain, ~80% in snow: Qiu & Nixon 2008, Transp. Res. Rec. 2055) and a cell's
    # own accident history. Hour, weekday and darkness go both ways (less traffic at night) and stay free.
    monotone=dict.fromkeys(("rain_3h_mm", "snow_cm", "freezing", "traffic_volume", "road_km_arterial",
                            "road_km_collector", "road_km_local", "intersections", "cell_rate_365d",
                            "cell_slot_rate_365d"), 1),
    essential=("rain_3h_mm", "temp_c"),
    # The slot's calendar: ``dark`` too, as it is the sun's position at the slot's midpoint, a function of
    # the date and hour alone (its share over the same hours moves with the season, not with the data).
    not_drift={**dict.fromkeys(("hour", "weekday", "holiday"), "calendar position: the slot asked for"),
               "dark": "calendar position: sun below the horizon at the slot's midpoint (date and hour)"},
    # The hotspot ranking (serving/hotspots.py) needs the accident records alone: weather and temperature
    # stay essential for the hourly risk only.
    products={"hotspots": ("taas",)},
    extra={"units": UNITS},
))

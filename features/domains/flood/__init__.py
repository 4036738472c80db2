"""Flood domain: will a cell start to flood within the lead time (1, 3 or 6 hours)?

A request is a cell, an issue time ``t`` (on the hour), a lead time ``lead_hours`` (1, 3 or 6: the
KMA ultra-short-range forecast reaches 6 h) and the rain and tide conditions; in the training table the
conditions are the observations at ``t`` (see :func:`observed_conditions` for how each one is read).
Features add the forecast rain over the lead's window, the cell's static layers, physics-aware ratios
(rain against the drains' capacity, tide above the first alert step on low-lying land, long rain near a
stream) and the number of earlier floods recorded at the cell.

Label: ``flooded`` = 1 when a flood trace's onset at the cell lies in ``(t, t + lead]``. Training rows are
"event hours" (heavy observed or forecast rain at any city station, or a predicted high tide) plus a
deterministic 0.5% sample of the other hours, times every cell, times every lead: one model for all
leads, the lead a feature that never lowers the risk (a flood within 3 h is a flood within 6 h).
Selection uses only what is known at ``t`` (observations, forecasts, tide predictions), so it does not
bias ``P(flooded | features)``.
"""

from __future__ import annotations

from features.domains.flood.evaluation import baseline, oracle
from features.domains.flood.features import (
    CONDITIONS,
    DERIVED,
    FEATURES,
    HORIZON,
    OBSERVED,
    TIDE_FEATURES,
    UNITS,
    build_rows,
    build_table,
    cause,
    table_parts,
)
from features.domains.flood.serving import SERVING
from features.metrics import BRIER, PR_AUC, ROC_AUC
from features.registry import DomainSpec, register

SPEC = register(DomainSpec(
    name="flood",
    title="Flooding within 1, 3 or 6 hours",
    task="binary",
    target="flooded",
    keys=("cell_id", "lead_hours"),  # a row per cell and lead time, as fine dust has one per pollutant
    time="time",
    horizon=HORIZON,
    features=FEATURES,
    conditions=OBSERVED,
    sources=("asos", "aws", "nowcast", "tide", "flood_traces", "static"),
    feature_set_version="flood-v5",
    weight="weight",
    build_table=build_table,
    build_parts=table_parts,
    build_rows=build_rows,
    metrics=(PR_AUC, ROC_AUC, BRIER),
    primary_metric="pr_auc",
    baseline=baseline,
    oracle=oracle,
    serving=SERVING,
    # A longer lead, more rain (observed or forecast), a higher tide and their ratios to the drains never
    # lower the risk.
    monotone=dict.fromkeys((*CONDITIONS, *(d for d in DERIVED if "rain" in d), "tide_excess_cm"), 1),
    essential=CONDITIONS,
    breakdown=("lead_hours", "lead{:g}h"),
    not_drift={"lead_hours": "scenario condition: the lead asked for (the live cycle maps every lead)"},
    # A city without a tide gauge (inland) floods from rain and streams only: these are not applicable there.
    source_features={"tide": TIDE_FEATURES},
    extra={"cause": cause, "units": UNITS},
))

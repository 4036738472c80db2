"""How well do traffic hotspot rankings pick the cells where the held-out period's accidents happen?

The period is the training holdout (training/splits.py: the last 20% of the traffic table's time span,
from the day after its cut to the end of the data). Three rankings of the cells, all from data before it:

(a) the MLflow traffic champion (train_domain fits it on the pre-holdout rows only; the script checks the
    run's ``holdout_from``), its expected accidents summed over every 3-hour slot of the period as
    features/domains/traffic/hotspots.py computes them, and the expected ECLO from them;
(b) history: each cell's accidents (or ECLO) over all years before the period;
(c) a Poisson GLM (sklearn PoissonRegressor on median-imputed, standardised features, fitted on the same
    pre-holdout weighted table rows), summed over the same slots and turned into ECLO the same way.

Printed: the share of the period's accidents and of its ECLO that happened in the top 5% of cells and in
the top 100, ranking by count and by ECLO. Also the truth's base rate (the generator's, an upper bound).

    .venv/bin/python -m bench.hotspots_eval
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.impute import SimpleImputer
from sklearn.linear_model import PoissonRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from features.domains.traffic import hotspots as th
from features.registry import get_domain
from features.sources import Sources
from training.champion import ALIAS, load_native
from training.models import predict
from training.splits import holdout_split
from training.tracking import configure, registered_name
from training.train import HOLDOUT_SHARE, load_table
from urban_safety.settings import get_settings

TOP_SHARE = 0.05
TOP_N = 100


def captured(order: np.ndarray, observed: np.ndarray, k: int) -> float:
    """Share of ``observed`` (per cell, grid order) in the first ``k`` cells of ``order``."""
    return float(observed[order[:k]].sum() / observed.sum())


def main() -> None:
    console = Console(width=160)
    settings = get_settings()
    spec = get_domain("traffic")
    src = Sources.from_settings(settings)
    table, _ = load_table(spec, settings)
    split = holdout_split(table[spec.time], HOLDOUT_SHARE, spec.horizon)
    start = pd.Timestamp(table[spec.time].iloc[split.valid].min()).normalize() + pd.Timedelta(days=1)
    end = pd.Timestamp(table[spec.time].max()).normalize() + pd.Timedelta(days=1)

    client = configure(settings)
    version = client.get_model_version_by_alias(registered_name("traffic"), ALIAS)
    holdout_from = pd.Timestamp(client.get_run(version.run_id).data.params["holdout_from"])
    if holdout_from > start:
        raise SystemExit(f"the champion's holdout starts {holdout_from}, after {start}: it saw the period")
    family, booster = load_native(f"models:/{registered_name('traffic')}@{ALIAS}")

    train = table.iloc[split.train]
    started = time.perf_counter()
    glm = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), PoissonRegressor(alpha=1e-4, max_iter=300))
    glm.fit(train[list(spec.features)].to_numpy(float), train[spec.target].to_numpy(float),
            poissonregressor__sample_weight=train[spec.weight].to_numpy(float))
    glm_s = time.perf_counter() - started

    started = time.perf_counter()
    sums, unknown, n_slots = th.expected_sums(src, {
        "model": lambda X: predict(family, booster, X),
        "glm": lambda X: glm.predict(X.to_numpy(float)),
    }, start, end)
    sums_s = time.perf_counter() - started

    ratio = th.per_accident(src, start)["eclo_per_accident"].to_numpy()
    acc = th.casualties(src)
    before = acc[acc["time"] < start]
    n = len(src.grid.cells)
    obs = th.observed(src, start, end)
    observed_acc, observed_eclo = obs["observed_accidents"].to_numpy(), obs["observed_eclo"].to_numpy()
    scores = {
        "model (champion)": (sums["model"], sums["model"] * ratio),
        "history rate": (np.bincount(before["cell_pos"], minlength=n).astype(float),
                         np.bincount(before["cell_pos"], weights=before["eclo"], minlength=n)),
        "Poisson GLM": (sums["glm"], sums["glm"] * ratio),
    }
    truth = Path(settings.truth_dir) / "traffic_truth_cells.parquet"
    if truth.exists():
        base = pd.read_parquet(truth).set_index("cell_id")["base"].reindex(src.grid.cells["cell_id"]).to_numpy(float)
        scores["truth base rate (bound)"] = (base, base * ratio)

    k5 = int(np.ceil(TOP_SHARE * n))
    out = Table(title=f"traffic hotspots {start:%Y-%m-%d} .. {end:%Y-%m-%d} ({n_slots:,} slots, {n:,} cells; "
                      f"{int(observed_acc.sum()):,} accidents, ECLO {observed_eclo.sum():,.0f})")
    for col in ("ranking", "by", f"top 5% ({k5}) accidents", "top 5% ECLO", f"top {TOP_N} accidents",
                f"top {TOP_N} ECLO"):
        out.add_column(col)
    for name, (count, eclo) in scores.items():
        for by, score in (("count", count), ("eclo", eclo)):
            order = np.lexsort((np.arange(n), -np.nan_to_num(score)))
            out.add_row(name, by, *(f"{captured(order, o, k):.1%}" for k in (k5, TOP_N)
                                    for o in (observed_acc, observed_eclo)))
    console.print(out)
    console.print(f"expected sums (champion and GLM over {n_slots:,} slots x {n:,} cells): {sums_s:.1f} s; "
                  f"GLM fit on {len(train):,} rows: {glm_s:.1f} s; cell-slots not scored: {int(unknown.sum()):,}",
                  highlight=False)


if __name__ == "__main__":
    main()

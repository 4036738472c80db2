"""Benchmark: wall time of `urban-safety train --domain all --profile quick` on this machine.

Runs the quick profile for every domain into a throw-away MLflow store (the project's feature tables
are read, nothing of the project's own store is touched), and, as the peer in the same run, one
untuned LightGBM per domain (500 rounds, default parameters) on the same training rows and holdout.
Prints per-domain seconds and holdout scores for both, and the total against the 5-minute target.

    .venv/bin/python bench/train_quick.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from features.registry import domains
from training.evaluate import score
from training.models import fit
from training.splits import holdout_split
from training.train import load_table, train_domain
from urban_safety.settings import Settings

TARGET_S = 300


def peer(spec, settings) -> tuple[float, float]:
    """Seconds and holdout primary metric of a default LightGBM fitted on every training row."""
    table, _ = load_table(spec, settings)
    split = holdout_split(table[spec.time], 0.2, spec.horizon)
    train, holdout = table.iloc[split.train], table.iloc[split.valid]
    objective = {"binary": "binary", "count": "poisson", "regression": "regression"}[spec.task]
    started = time.perf_counter()
    model = fit("lightgbm", spec.task, {"objective": objective, "num_boost_round": 500},
                train[list(spec.features)], train[spec.target].to_numpy(float),
                train[spec.weight].to_numpy(float) if spec.weight else None)
    seconds = time.perf_counter() - started
    return seconds, score(spec, holdout, model.predict(holdout[list(spec.features)]))[spec.primary_metric]


def main() -> None:
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("URBAN_SAFETY_OPTUNA_STORAGE", None)
    project = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        settings = project.model_copy(update={"root": Path(tmp), "data_dir": project.data})
        print(f"cores: {os.cpu_count()}  feature tables: {settings.features_dir}")
        print(f"{'domain':<11} {'metric':<17} {'quick s':>8} {'quick':>9} {'baseline':>9} "
              f"{'peer s':>8} {'peer':>9}   peer = untuned LightGBM, 500 rounds, all training rows")
        total = 0.0
        for spec in domains().values():
            res = train_domain(spec, settings, "quick")
            total += res.seconds
            peer_s, peer_score = peer(spec, settings)
            m = spec.primary_metric
            print(f"{spec.name:<11} {m:<17} {res.seconds:8.1f} {res.scores.model[m]:9.5f} "
                  f"{res.scores.baseline[m]:9.5f} {peer_s:8.1f} {peer_score:9.5f}")
    verdict = "meets" if total < TARGET_S else "MISSES"
    print(f"total quick training: {total:.1f} s on {os.cpu_count()} cores ({verdict} the {TARGET_S} s target)")


if __name__ == "__main__":
    main()

"""Benchmark: what the declared monotone directions cost on the holdout, per domain.

For each domain, the same trials (each family at its usual settings, then random draws from the quick
search space, identical for both arms) are scored by the same time-ordered cross-validation with and
without the domain's monotone constraints; each arm's best trial is refitted on the tuning rows and scored
on the untouched holdout (the last 20% of the time span), exactly as `urban-safety train` does. Reads the
project's feature tables; MLflow runs go to a throw-away store.

    .venv/bin/python bench/monotone_cost.py [--trials 6]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from features.registry import domains
from training.evaluate import score
from training.models import fit
from training.splits import holdout_split, time_folds
from training.train import HOLDOUT_SHARE, load_table, tuning_rows
from training.tune import PROFILES, cv_objective, seed_study
from urban_safety.settings import Settings


def run_arm(spec, data, profile, seed: int, constrained: bool, params_list=None):
    """Best trial's (cv loss, holdout primary metric) and the trials' parameters, one arm."""
    X, y, w, folds, holdout = data
    sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    if params_list is None:
        seed_study(study, spec.task)
    else:
        for params in params_list:
            study.enqueue_trial(params)
    study.optimize(cv_objective(spec, X, y, w, folds, profile, seed, constrained=constrained),
                   n_trials=len(params_list) if params_list else profile.trials)
    best = study.best_trial
    params = dict(best.user_attrs["params"])
    params["num_boost_round"] = max(int(best.user_attrs["best_rounds"] * 1.1), 10)
    fitted = fit(best.params["family"], spec.task, params, X, y, w, seed=seed,
                 monotone=spec.monotone_vector() if constrained else None)
    pred = fitted.predict(holdout[list(spec.features)])
    return best.value, score(spec, holdout, pred)[spec.primary_metric], [t.params for t in study.trials]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=6)
    args = parser.parse_args()
    project = Settings()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        profile = dataclasses.replace(PROFILES["quick"], trials=args.trials, timeout_s=None)
        print(f"{'domain':<11} {'metric':<17} {'cv constr.':>11} {'cv free':>10} {'holdout constr.':>16} "
              f"{'holdout free':>13} {'cost':>9} {'s':>6}   same {args.trials} trials per arm")
        for spec in domains().values():
            started = time.perf_counter()
            table, _ = load_table(spec, project)
            gap = max(spec.horizon, pd.Timedelta(0))
            split = holdout_split(table[spec.time], HOLDOUT_SHARE, gap)
            y_all = table[spec.target].to_numpy(dtype=float)
            w_all = table[spec.weight].to_numpy(dtype=float) if spec.weight else np.ones(len(table))
            keep, w = tuning_rows(split.train, y_all, w_all, profile.max_rows, spec.task,
                                  np.random.default_rng(project.seed))
            train, holdout = table.iloc[keep].reset_index(drop=True), table.iloc[split.valid].reset_index(drop=True)
            data = (train[list(spec.features)], y_all[keep], w, time_folds(train[spec.time], profile.folds, gap),
                    holdout)
            cv_c, hold_c, trials = run_arm(spec, data, profile, project.seed, constrained=True)
            cv_f, hold_f, _ = run_arm(spec, data, profile, project.seed, constrained=False, params_list=trials)
            sign = 1 if spec.metric().higher_is_better else -1
            cost = sign * (hold_f - hold_c)  # > 0: the constraints cost this much on the holdout
            print(f"{spec.name:<11} {spec.primary_metric:<17} {cv_c:11.5f} {cv_f:10.5f} {hold_c:16.5f} "
                  f"{hold_f:13.5f} {cost:+9.5f} {time.perf_counter() - started:6.0f}")
        print("cost = how much worse the constrained model is on the holdout's primary metric (negative: better)")


if __name__ == "__main__":
    main()

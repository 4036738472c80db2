"""One Optuna study per domain over LightGBM and XGBoost, scored by time-ordered cross-validation.

The study lives in persistent storage (SQLite in ``mlruns/`` or any SQLAlchemy URL), so an interrupted
job resumes where it stopped and several processes can tune one study. Every trial is a nested MLflow
run under the training job's parent run.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import mlflow
import numpy as np
import optuna
import pandas as pd
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from features.metrics import BRIER, POISSON_DEVIANCE, RMSE, Metric
from features.registry import DomainSpec
from training.models import OBJECTIVES, fit, suggest
from training.splits import Split

# The loss each task is tuned on: proper scores, stable on rare events (the domain's headline metric,
# e.g. PR-AUC, decides promotion on the holdout instead).
TUNE_LOSS: dict[str, Metric] = {"binary": BRIER, "count": POISSON_DEVIANCE, "regression": RMSE}


@dataclass(frozen=True)
class Profile:
    name: str
    trials: int
    folds: int
    max_rows: int  # training rows used for tuning (a time-spread sample when the table is larger)
    max_rounds: int
    timeout_s: float | None


PROFILES = {
    "quick": Profile("quick", trials=10, folds=3, max_rows=120_000, max_rounds=300, timeout_s=45),
    "full": Profile("full", trials=60, folds=4, max_rows=2_000_000, max_rounds=2000, timeout_s=None),
}


def open_study(storage_url: str, name: str, seed: int) -> optuna.Study:
    """Create or resume the study ``name``; trials of a killed worker are failed after a heartbeat gap."""
    with warnings.catch_warnings():  # heartbeats are marked experimental; they are what resuming needs
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = RDBStorage(storage_url, heartbeat_interval=10, grace_period=30,
                             heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
    return optuna.create_study(
        study_name=name, storage=storage, load_if_exists=True, direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=4),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=20),
    )


def seed_study(study: optuna.Study, task: str) -> None:
    """A new study's first trials: each family at its libraries' usual settings, so that a study cut short
    by its timeout (a quick run on a busy machine) has still tried one sensible model of each kind."""
    if study.trials:
        return
    (lgb_objective, *_), (xgb_objective, *_), *_ = OBJECTIVES[task]
    study.enqueue_trial({"family": "lightgbm", "lgb_objective": lgb_objective, "lgb_learning_rate": 0.1,
                         "lgb_num_leaves": 31, "lgb_min_data_in_leaf": 20, "lgb_feature_fraction": 0.9,
                         "lgb_bagging_fraction": 0.9, "lgb_lambda_l2": 0.1})
    study.enqueue_trial({"family": "xgboost", "xgb_objective": xgb_objective, "xgb_eta": 0.1, "xgb_max_depth": 6,
                         "xgb_min_child_weight": 1.0, "xgb_subsample": 0.9, "xgb_colsample_bytree": 0.9,
                         "xgb_lambda": 1.0})


def cv_objective(spec: DomainSpec, X: pd.DataFrame, y: np.ndarray, w: np.ndarray, folds: list[Split],
                 profile: Profile, seed: int, constrained: bool = True) -> Callable[[optuna.Trial], float]:
    """The trial function: fit each fold, return the mean validation loss; pruning on the first fold.

    Every trial keeps the domain's declared monotone directions (``constrained=False`` drops them, to
    measure what they cost)."""
    loss = TUNE_LOSS[spec.task]
    monotone = spec.monotone_vector() if constrained else None

    def objective(trial: optuna.Trial) -> float:
        family, params = suggest(trial, spec.task, profile.max_rounds)
        trial.set_user_attr("params", params)
        parent = mlflow.active_run()
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True,
                              experiment_id=parent.info.experiment_id if parent else None):
            mlflow.log_params({"family": family, **params})
            scores, rounds = [], []
            try:
                for k, fold in enumerate(folds):
                    fitted = fit(family, spec.task, params, X.iloc[fold.train], y[fold.train], w[fold.train],
                                 X.iloc[fold.valid], y[fold.valid], w[fold.valid],
                                 trial=trial if k == 0 else None, seed=seed, monotone=monotone)
                    pred = fitted.predict(X.iloc[fold.valid])
                    scores.append(loss(y[fold.valid], pred, w[fold.valid]))
                    rounds.append(fitted.best_iteration)
            except optuna.TrialPruned:
                mlflow.set_tag("state", "pruned")
                raise
            value = float(np.mean(scores))
            trial.set_user_attr("best_rounds", int(np.mean(rounds)))
            mlflow.log_metrics({f"cv_{loss.name}": value, "best_rounds": float(np.mean(rounds))})
            mlflow.set_tag("state", "complete")
        return value

    return objective


def remaining_trials(study: optuna.Study, wanted: int) -> int:
    """Trials still to run: a resumed study counts the ones it already finished."""
    done = sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
               for t in study.trials)
    return max(wanted - done, 0)

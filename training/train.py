"""Train one domain: tune, refit the best trial, evaluate on the holdout, log to MLflow, decide the champion."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
from mlflow.models import infer_signature
from optuna.trial import TrialState

from features.errors import DataError
from features.registry import DomainSpec
from training.champion import Decision, register_and_decide
from training.evaluate import Scores, diagnostic_plot, evaluate, importance_plot
from training.models import Fitted, contributions, fit_parts
from training.splits import holdout_split, time_folds
from training.table import TrainingTable
from training.tracking import (
    LOCK_TIMEOUT_S,
    configure,
    ensure_experiment,
    fail_orphaned_runs,
    git_commit,
    owner_tags,
    training_lock,
)
from training.tune import PROFILES, Profile, cv_objective, open_study, remaining_trials, seed_study
from urban_safety.settings import Settings

HOLDOUT_SHARE = 0.2
#: Training rows the domain's baseline learns its rates from (a uniform sample beyond this: a rate's
#: estimate needs no more, and the rows are whole rows in memory).
HISTORY_ROWS = 5_000_000


@dataclass(frozen=True)
class TrainResult:
    domain: str
    run_id: str
    family: str
    trials: int  # finished trials in the study (this job's and earlier ones'), pruned included
    pruned: int
    fitted: Fitted
    holdout_pred: np.ndarray
    scores: Scores
    decision: Decision
    seconds: float


def load_table(spec: DomainSpec, settings: Settings) -> tuple[pd.DataFrame, str]:
    """The whole feature table in memory, in time order, and its digest (benchmarks on small tables)."""
    table = TrainingTable.open(spec, settings)
    return table.rows(np.arange(len(table))), table.sha256


def tuning_rows(rows: np.ndarray, y: np.ndarray, w: np.ndarray, limit: int, task: str,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """At most ``limit`` of ``rows`` with their weights. For events and counts every non-zero row is kept
    and zero rows are sampled and up-weighted, so rare events are not thinned and the weighted loss
    (hence calibration) is unchanged in expectation; regression rows are sampled uniformly."""
    if len(rows) <= limit:
        return rows, w[rows]
    if task == "regression":
        keep = np.sort(rng.choice(rows, limit, replace=False))
        return keep, w[keep]
    events, zeros = rows[y[rows] > 0], rows[y[rows] == 0]
    rate = max(limit - len(events), 1) / max(len(zeros), 1)
    kept_zeros = zeros[rng.random(len(zeros)) < rate]
    keep = np.sort(np.concatenate([events, kept_zeros]))
    weights = w[keep] * np.where(y[keep] > 0, 1.0, 1.0 / rate)
    return keep, weights


def train_domain(spec: DomainSpec, settings: Settings, profile: Profile | str = "quick",
                 trials: int | None = None, timeout: float | None = None,
                 lock_timeout: float = LOCK_TIMEOUT_S) -> TrainResult:
    """Run one training job for ``spec`` and return what it found and decided.

    On a SQLite store the job holds ``mlruns/train.lock`` while it tunes, logs and registers; another job
    waits for it up to ``lock_timeout`` seconds."""
    profile = PROFILES[profile] if isinstance(profile, str) else profile
    trials = trials or profile.trials
    timeout = timeout if timeout is not None else profile.timeout_s
    started = time.perf_counter()
    table = TrainingTable.open(spec, settings)
    data_hash = table.sha256
    gap = max(spec.horizon, pd.Timedelta(0))
    split = holdout_split(table.times, HOLDOUT_SHARE, gap)
    rng = np.random.default_rng(settings.seed)
    y_all, w_all = table.y, table.w
    keep, w = tuning_rows(split.train, y_all, w_all, profile.max_rows, spec.task, rng)
    train, holdout = table.rows(keep), table.rows(split.valid)
    X, y = train[list(spec.features)], y_all[keep]
    folds = time_folds(train[spec.time], profile.folds, gap)
    if not folds or holdout.empty:
        raise DataError(f"{spec.name}: too little data for {profile.folds} time-ordered folds and a holdout")

    # One job at a time on a SQLite store (a second one waits); then fail the runs of killed jobs.
    with training_lock(settings, lock_timeout):
        client = configure(settings)
        experiment_id = ensure_experiment(client, settings, spec.name)
        fail_orphaned_runs(client, experiment_id, spec.name)
        study_name = f"urban-safety-{spec.name}-{spec.feature_set_version}-{data_hash[:12]}"
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # The domain and the owning process are tags from the run's creation: a killed job is recognised.
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"{spec.name}-{profile.name}",
                              tags={"domain": spec.name, **owner_tags()}) as run:
            mlflow.set_tags({"feature_set_version": spec.feature_set_version,
                             "monotone": ",".join(f"{f}:{d:+d}" for f, d in spec.monotone.items()),
                             "data_sha256": data_hash, "git_commit": git_commit(settings.root),
                             "profile": profile.name, "optuna_study": study_name})
            mlflow.log_params({"rows_train": len(split.train), "rows_tuning": len(train),
                               "rows_holdout": len(holdout), "folds": len(folds), "gap": str(gap),
                               "holdout_from": str(holdout[spec.time].min())})
            study = open_study(settings.optuna_url, study_name, settings.seed)
            seed_study(study, spec.task)
            study.optimize(cv_objective(spec, X, y, w, folds, profile, settings.seed),
                           n_trials=remaining_trials(study, trials), timeout=timeout)
            states = [t.state for t in study.trials]
            complete, pruned = states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED)
            if not complete:
                raise DataError(f"{spec.name}: no Optuna trial completed (raise --timeout or --trials)")
            best = study.best_trial
            params = dict(best.user_attrs["params"])
            family = best.params["family"]
            params["num_boost_round"] = max(int(best.user_attrs["best_rounds"] * 1.1), 10)
            # The final model learns from the rows the cross-validation chose its settings on (rounds, leaf
            # sizes, regularisation are scale-dependent: on flood the same settings fitted on 1M rows instead
            # of 120k lost 40% of the holdout PR-AUC), read back part by part from the table.
            parts, fit_y, fit_w = table.feature_parts(keep, w)
            fitted = fit_parts(family, spec.task, params, parts, fit_y, fit_w, seed=settings.seed,
                               monotone=spec.monotone_vector())
            pred = fitted.predict(holdout[list(spec.features)])
            history = split.train if len(split.train) <= HISTORY_ROWS else \
                np.sort(rng.choice(split.train, HISTORY_ROWS, replace=False))
            scores = evaluate(spec, holdout, pred, settings.truth_dir, history=table.rows(history))

            mlflow.log_params({"family": family, **{f"best_{k}": v for k, v in params.items()}})
            mlflow.log_metrics({**scores.flat(), "cv_best_loss": best.value, "trials_complete": complete,
                                "trials_pruned": pruned})
            # Floats in the signature: integer columns could not carry a missing value at serving time.
            example = holdout[list(spec.features)].head(5).astype("float64")
            log = mlflow.lightgbm.log_model if family == "lightgbm" else mlflow.xgboost.log_model
            info = log(fitted.booster, name="model", input_example=example, pip_requirements=pip_requirements(family),
                       signature=infer_signature(example, fitted.predict(example)))
            _log_plots(spec, holdout, pred, fitted, family)
            decision = register_and_decide(client, spec, info.model_uri, run.info.run_id, holdout,
                                           scores.model[spec.primary_metric], settings.city_key)
            mlflow.set_tags({"registered_version": decision.version, "promoted": str(decision.promoted),
                             "decision_reason": decision.reason})
        return TrainResult(domain=spec.name, run_id=run.info.run_id, family=family, trials=complete + pruned,
                           pruned=pruned, fitted=fitted, holdout_pred=pred,
                           scores=scores, decision=decision, seconds=time.perf_counter() - started)


def pip_requirements(family: str) -> list[str]:
    """What the logged model needs, pinned to what trained it (no slow environment inference)."""
    from importlib.metadata import version

    lib = "lightgbm" if family == "lightgbm" else "xgboost-cpu"
    return [f"mlflow=={version('mlflow')}", f"{lib}=={version(lib)}", f"pandas=={version('pandas')}"]


def _log_plots(spec: DomainSpec, holdout: pd.DataFrame, pred: np.ndarray, fitted, family: str) -> None:
    sample = holdout[list(spec.features)].head(2000)
    gains = np.abs(contributions(family, fitted.booster, sample)[:, :-1]).mean(axis=0)
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.log_artifact(str(diagnostic_plot(spec, holdout, pred, Path(tmp) / "holdout_diagnostic.png")),
                            "plots")
        mlflow.log_artifact(str(importance_plot(list(spec.features), gains,
                                                f"{spec.name}: mean |contribution| (holdout)",
                                                Path(tmp) / "feature_importance.png")), "plots")

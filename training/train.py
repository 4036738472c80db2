"""Train one domain: tune, refit the best trial, evaluate on the holdout, log to MLflow, decide the champion."""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
from mlflow.models import infer_signature
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from features.errors import DataError
from features.registry import DomainSpec
from training.champion import Decision, register_and_decide
from training.evaluate import Scores, diagnostic_plot, evaluate, importance_plot
from training.models import Fitted, contributions, fit_parts
from training.splits import Split, holdout_split, time_folds
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
from training.tune import (
    PROFILES,
    Profile,
    cv_objective,
    open_study,
    remaining_trials,
    sampler_seed,
    shared_storage,
    wait_for_running,
)
from urban_safety.settings import Settings

HOLDOUT_SHARE = 0.2
# How long a job on a shared study waits for other workers' running trials before refitting (a trial of
# the full profile takes minutes; a dead worker's trial is failed after its heartbeat goes stale).
WORKER_WAIT_S = 15 * 60
#: Training rows the domain's baseline learns its rates from (a uniform sample beyond this: a rate's
#: estimate needs no more, and the rows are whole rows in memory).
HISTORY_ROWS = 5_000_000


@dataclass(frozen=True)
class TrainResult:
    domain: str
    run_id: str
    family: str
    trials: int  # finished trials in the study (this job's, earlier and other workers' ones), pruned included
    pruned: int
    best_trial: int  # number of the study's trial the final model was refitted from
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


@dataclass(frozen=True)
class Prepared:
    """One domain's training data as every training path sees it (tuning, the refit, a Dask refit)."""

    table: TrainingTable  # the feature table on disk: time, label and weight of every row in time order
    data_hash: str  # SHA-256 of the table's parts
    gap: pd.Timedelta
    split: Split  # positions in the time order: training period and holdout
    keep: np.ndarray  # positions of the tuning rows (n) in the time order
    train: pd.DataFrame  # the (possibly sampled) training rows, n rows
    holdout: pd.DataFrame
    X: pd.DataFrame  # n x len(spec.features)
    y: np.ndarray  # n labels
    w: np.ndarray  # n sample weights (up-weighted where zero rows were sampled)
    folds: list[Split]  # positions in ``train``


def prepare(spec: DomainSpec, settings: Settings, profile: Profile) -> Prepared:
    """Open ``spec``'s feature table and cut it into tuning rows, time-ordered folds and the holdout, reading
    whole rows only for those (the table stays on disk).

    Raises :class:`DataError` when the table is missing, of another feature set, or too small for
    ``profile.folds`` folds and a holdout."""
    table = TrainingTable.open(spec, settings)
    data_hash = table.sha256
    gap = max(spec.horizon, pd.Timedelta(0))
    split = holdout_split(table.times, HOLDOUT_SHARE, gap)
    rng = np.random.default_rng(settings.seed)
    y_all, w_all = table.y, table.w
    keep, w = tuning_rows(split.train, y_all, w_all, profile.max_rows, spec.task, rng)
    train, holdout = table.rows(keep), table.rows(split.valid)
    folds = time_folds(train[spec.time], profile.folds, gap)
    if not folds or holdout.empty:
        raise DataError(f"{spec.name}: too little data for {profile.folds} time-ordered folds and a holdout")
    return Prepared(table=table, data_hash=data_hash, gap=gap, split=split, keep=keep, train=train,
                    holdout=holdout, X=train[list(spec.features)], y=y_all[keep], w=w, folds=folds)


def best_params(study: optuna.Study) -> tuple[str, dict]:
    """The best trial's family and parameters for the final fit: its boosting rounds are the mean
    early-stopped rounds of its folds plus 10 % (the refit has no validation set to stop on)."""
    best = study.best_trial
    params = dict(best.user_attrs["params"])
    params["num_boost_round"] = max(int(best.user_attrs["best_rounds"] * 1.1), 10)
    return best.params["family"], params


def train_domain(spec: DomainSpec, settings: Settings, profile: Profile | str = "quick",
                 trials: int | None = None, timeout: float | None = None,
                 lock_timeout: float = LOCK_TIMEOUT_S, dask_workers: int | None = None,
                 scheduler: str | None = None) -> TrainResult:
    """Run one training job for ``spec`` and return what it found and decided.

    On a SQLite store the job holds ``mlruns/train.lock`` while it tunes, logs and registers; another job
    waits for it up to ``lock_timeout`` seconds. On a server store (``MLFLOW_TRACKING_URI`` a tracking
    server, the Optuna storage PostgreSQL) jobs run together and share the study's ``trials``: a job
    stops once the study has that many finished (the others' included; at most one in-flight trial per
    other worker more), then waits for the others' running trials so that all refit the study's best.

    The final model is fitted in this process, or with ``dask_workers`` on a local Dask cluster of that
    many one-thread workers, or on the Dask cluster at ``scheduler`` (``tcp://host:8786``); the logged
    model is a plain LightGBM/XGBoost booster either way."""
    profile = PROFILES[profile] if isinstance(profile, str) else profile
    if dask_workers is not None and scheduler is not None:
        raise ValueError("give dask_workers (a local cluster) or scheduler (an existing one), not both")
    trials = trials or profile.trials
    timeout = timeout if timeout is not None else profile.timeout_s
    started = time.perf_counter()
    data = prepare(spec, settings, profile)
    table, split, holdout, X, y, w = data.table, data.split, data.holdout, data.X, data.y, data.w
    folds, gap, data_hash = data.folds, data.gap, data.data_hash

    with contextlib.ExitStack() as stack:
        dask = None
        if dask_workers is not None or scheduler is not None:
            from training.distributed import dask_client

            # Before tuning: a wrong scheduler address fails in seconds, not after hours of trials.
            dask = stack.enter_context(dask_client(workers=dask_workers, scheduler=scheduler))
        # One job at a time on a SQLite store (a second one waits); then fail the runs of killed jobs.
        stack.enter_context(training_lock(settings, lock_timeout))
        client = configure(settings)
        experiment_id = ensure_experiment(client, settings, spec.name)
        fail_orphaned_runs(client, experiment_id, spec.name)
        study_name = f"urban-safety-{spec.name}-{spec.feature_set_version}-{data_hash[:12]}"
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # Opened before the run starts: an unreachable storage leaves no failed run behind.
        study = open_study(settings.optuna_url, study_name, sampler_seed(settings.seed, settings.optuna_url),
                           task=spec.task)
        # The domain and the owning process are tags from the run's creation: a killed job is recognised.
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"{spec.name}-{profile.name}",
                              tags={"domain": spec.name, **owner_tags()}) as run:
            mlflow.set_tags({"feature_set_version": spec.feature_set_version,
                             "monotone": ",".join(f"{f}:{d:+d}" for f, d in spec.monotone.items()),
                             "data_sha256": data_hash, "git_commit": git_commit(settings.root),
                             "profile": profile.name, "optuna_study": study_name})
            mlflow.log_params({"rows_train": len(split.train), "rows_tuning": len(X),
                               "rows_holdout": len(holdout), "folds": len(folds), "gap": str(gap),
                               "holdout_from": str(holdout[spec.time].min())})
            # n_trials bounds a lone job; the callback stops it once workers together have finished `trials`.
            done = MaxTrialsCallback(trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
            study.optimize(cv_objective(spec, X, y, w, folds, profile, settings.seed),
                           n_trials=remaining_trials(study, trials), timeout=timeout, callbacks=[done])
            if shared_storage(settings.optuna_url):  # other workers' last trials may still beat ours
                wait_for_running(study, WORKER_WAIT_S)
            states = [t.state for t in study.trials]
            complete, pruned = states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED)
            if not complete:
                raise DataError(f"{spec.name}: no Optuna trial completed (raise --timeout or --trials)")
            best = study.best_trial
            family, params = best_params(study)
            if dask is None:
                # The final model learns from the rows the cross-validation chose its settings on (rounds, leaf
                # sizes, regularisation are scale-dependent: on flood the same settings fitted on 1M rows
                # instead of 120k lost 40% of the holdout PR-AUC), read back part by part from the table.
                parts, fit_y, fit_w = table.feature_parts(data.keep, w)
                fitted = fit_parts(family, spec.task, params, parts, fit_y, fit_w, seed=settings.seed,
                                   monotone=spec.monotone_vector())
            else:
                from training.distributed import fit_dask

                fitted = fit_dask(dask, family, spec.task, params, X, y, w, seed=settings.seed,
                                  monotone=spec.monotone_vector())
                mlflow.set_tag("dask", scheduler or f"local:{dask_workers}")
            pred = fitted.predict(holdout[list(spec.features)])
            history = split.train if len(split.train) <= HISTORY_ROWS else np.sort(
                np.random.default_rng(settings.seed).choice(split.train, HISTORY_ROWS, replace=False))
            scores = evaluate(spec, holdout, pred, settings.truth_dir, history=table.rows(history))

            mlflow.log_params({"family": family, "best_trial": best.number,
                               **{f"best_{k}": v for k, v in params.items()}})
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
                           pruned=pruned, best_trial=best.number, fitted=fitted, holdout_pred=pred,
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

"""One Optuna study per domain over LightGBM and XGBoost, scored by time-ordered cross-validation.

The study lives in persistent storage (SQLite in ``mlruns/`` or any SQLAlchemy URL), so an interrupted
job resumes where it stopped and several processes can tune one study. Every trial is a nested MLflow
run under the training job's parent run.

Several workers on one study (a server storage such as PostgreSQL): each draws its own trials (its sampler
seed mixes in its process), only the worker that created the study queues the starting trials, and each
waits for the others' running trials before reading the best one, so that all of them refit the same.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import mlflow
import numpy as np
import optuna
import pandas as pd
from optuna.exceptions import DuplicatedStudyError
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, ProgrammingError, SQLAlchemyError

from features.errors import UrbanSafetyError
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


WORKER_ATTR = "worker"  # trial user attribute: "host:pid" of the process that ran the trial


class StorageError(UrbanSafetyError):
    """The Optuna storage URL is malformed or its database cannot be reached."""


def shared_storage(storage_url: str) -> bool:
    """True for a storage several training jobs may use at once (anything but a SQLite file)."""
    return not storage_url.startswith("sqlite:")


def safe_url(url: str) -> str:
    """``url`` with any password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def sampler_seed(seed: int, storage_url: str) -> int:
    """The TPE sampler's seed: ``seed`` itself on a one-job SQLite store (a rerun draws the same trials);
    mixed with host and process on a shared storage, where workers with one seed would draw the same
    random trials and duplicate each other's work."""
    if not shared_storage(storage_url):
        return seed
    words = [seed, os.getpid(), *socket.gethostname().encode()]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def open_study(storage_url: str, name: str, seed: int, task: str | None = None) -> optuna.Study:
    """Create or resume the study ``name``; trials of a killed worker are failed after a heartbeat gap.

    With ``task``, the process that creates the study queues its starting trials (:func:`seed_study`);
    a worker joining an existing study queues nothing, so two workers starting together do not queue
    them twice. Raises :class:`StorageError` naming the URL (password masked) when the storage URL is
    malformed or its server does not answer."""
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental; they are what resuming needs
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = RDBStorage(storage_url, heartbeat_interval=10, grace_period=30,
                                     heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
            break
        except (ArgumentError, SQLAlchemyError, ImportError, ValueError) as exc:
            # Workers starting together on an empty database race to create Optuna's tables; the loser's
            # CREATE fails on what the winner made, and its next attempt finds the tables there.
            if isinstance(exc, IntegrityError | ProgrammingError) and attempt < 2:
                time.sleep(0.5 * (attempt + 1))
                continue
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageError(f"cannot open the Optuna storage {safe_url(storage_url)} "
                               f"(URBAN_SAFETY_OPTUNA_STORAGE): {first}") from None
    options = dict(study_name=name, storage=storage, direction="minimize",
                   sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=4),
                   pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=20))
    try:
        study = optuna.create_study(**options)  # the study name is unique: one creator among racing workers
    except DuplicatedStudyError:
        return optuna.create_study(**options, load_if_exists=True)
    if task is not None:
        seed_study(study, task)
    return study


def wait_for_running(study: optuna.Study, timeout: float, poll: float = 0.5) -> int:
    """Wait until no trial of ``study`` is RUNNING (other workers' trials finishing), at most ``timeout``
    seconds; a trial whose worker died is failed once its heartbeat is stale. Returns the trials still
    running at the end (0 unless timed out)."""
    deadline = time.monotonic() + timeout
    while True:
        with warnings.catch_warnings():  # experimental like the heartbeats it reads
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(poll)


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
        trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
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

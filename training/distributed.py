"""The final fit of a domain on a Dask cluster, through LightGBM's and XGBoost's own Dask interfaces.

Only the fit is distributed: the rows, weights and hyper-parameters are the ones :func:`training.train.prepare`
and the Optuna study give the single-process fit (:func:`training.models.fit`), and the result is the same
kind of native booster, so evaluation, logging and serving do not know where it was trained. The rows are
split into one contiguous block per worker and each block is placed on its own worker, so every worker
takes part in building the trees (data-parallel histograms).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from features.errors import UrbanSafetyError
from training.models import Fitted, library_params

LABEL, WEIGHT = "__label", "__weight"


class ClusterUnavailable(UrbanSafetyError):
    """The Dask scheduler address does not answer, or the cluster has no workers."""


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None,
                timeout: float = 30.0) -> Iterator[object]:
    """A ``distributed.Client``: on a new local cluster of ``workers`` processes with one thread each
    (closed on exit), or on the running cluster at ``scheduler`` (e.g. ``tcp://10.0.0.5:8786``, left
    running on exit). Raises :class:`ClusterUnavailable` naming the address when no scheduler answers
    within ``timeout`` seconds or no worker has joined it."""
    from distributed import Client, LocalCluster

    if (workers is None) == (scheduler is None):
        raise ValueError("give either workers (a local cluster) or scheduler (an existing one)")
    if scheduler is None:
        if workers < 1:
            raise ValueError(f"a local Dask cluster needs at least one worker, not {workers}")
        # No dashboard: its port may be taken, and nothing here looks at it.
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield client
        return
    try:
        client = Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ClusterUnavailable(f"no Dask scheduler answers at {scheduler} (--scheduler) within {timeout:g} s: "
                                 f"{type(exc).__name__}: {exc}") from None
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise ClusterUnavailable(f"the Dask scheduler at {scheduler} has no worker after {timeout:g} s") from None
        yield client
    finally:
        client.close()


def spread(client, X: pd.DataFrame, y: np.ndarray, w: np.ndarray | None):
    """``(X, y, w)`` as Dask collections of one contiguous block per worker, each block held by its own
    worker. Returns ``(X, y, w, workers)``: a dask DataFrame (n x features), dask Series of labels and of
    weights (``None`` without ``w``), and the worker addresses in block order."""
    import dask.dataframe as dd

    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    if not workers:
        raise ClusterUnavailable("the Dask cluster has no worker")
    frame = X.reset_index(drop=True).assign(**{LABEL: np.asarray(y, dtype=float)})
    if w is not None:
        frame[WEIGHT] = np.asarray(w, dtype=float)
    bounds = np.linspace(0, len(frame), min(len(workers), len(frame)) + 1).astype(int)
    blocks = [frame.iloc[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    futures = [client.scatter(block, workers=[addr]) for block, addr in zip(blocks, workers, strict=False)]
    data = dd.from_delayed(futures, meta=frame.iloc[:0], divisions=[*bounds[:-1], bounds[-1] - 1],
                           verify_meta=False)
    return (data[list(X.columns)], data[LABEL], data[WEIGHT] if w is not None else None,
            workers[:len(blocks)])


def fit_dask(client, family: str, task: str, params: dict, X: pd.DataFrame, y: np.ndarray,
             w: np.ndarray | None, seed: int = 0, monotone: list[int] | None = None) -> Fitted:
    """Fit one booster on the cluster behind ``client`` without a validation set: ``params`` as the
    Optuna trial gives them (``num_boost_round`` included), ``X`` n x features, ``y`` and ``w`` n values.
    ``monotone`` as in :func:`training.models.fit`. Returns a :class:`Fitted` holding a native
    ``lightgbm.Booster`` or ``xgboost.Booster``."""
    if family not in ("lightgbm", "xgboost"):
        raise ValueError(f"unknown model family {family!r}")
    if monotone and len(monotone) != X.shape[1]:
        raise ValueError(f"{len(monotone)} monotone directions for {X.shape[1]} features")
    rounds, params = library_params(family, task, params, seed, 1, monotone)  # one thread per worker process
    dX, dy, dw, _ = spread(client, X, y, w)
    if family == "lightgbm":
        import lightgbm as lgb

        # The estimator carries the native parameters to lightgbm.train on each worker, where the native
        # names win over its own sklearn-style aliases; it sets each worker's threads itself.
        params.pop("num_threads")
        model_cls = lgb.DaskLGBMClassifier if task == "binary" else lgb.DaskLGBMRegressor
        model = model_cls(client=client, n_estimators=rounds, **params)
        model.fit(dX, dy, sample_weight=dw)
        booster = model.booster_
    else:
        import xgboost.dask as xgb_dask  # not imported with xgboost itself

        matrix = xgb_dask.DaskDMatrix(client, dX, dy, weight=dw)
        booster = xgb_dask.train(client, params, matrix, num_boost_round=rounds)["booster"]
    return Fitted(family=family, booster=booster, best_iteration=int(rounds), params=params)

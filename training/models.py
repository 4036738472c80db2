"""The two model families behind one small interface: search space, fit with early stopping, predict.

Both are used through their native APIs (``lightgbm.train``, ``xgboost.train``) so that the logged model
is the booster itself: probabilities and per-feature contributions come straight from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
import xgboost as xgb
from optuna_integration import LightGBMPruningCallback, XGBoostPruningCallback

FAMILIES = ("lightgbm", "xgboost")

# Per task: (LightGBM objectives, XGBoost objectives, LightGBM eval metric, XGBoost eval metric).
# The eval metric is the task's proper loss, used for early stopping and pruning.
OBJECTIVES = {
    "binary": (("binary",), ("binary:logistic",), "binary_logloss", "logloss"),
    "count": (("poisson", "tweedie"), ("count:poisson", "reg:tweedie"), "poisson", "poisson-nloglik"),
    "regression": (("regression",), ("reg:squarederror",), "l2", "rmse"),
}


@dataclass
class Fitted:
    family: str
    booster: lgb.Booster | xgb.Booster
    best_iteration: int
    params: dict

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return predict(self.family, self.booster, X)


def suggest(trial: optuna.Trial, task: str, max_rounds: int) -> tuple[str, dict]:
    """Draw the family, then that family's own hyper-parameters."""
    family = trial.suggest_categorical("family", FAMILIES)
    lgb_objs, xgb_objs, *_ = OBJECTIVES[task]
    if family == "lightgbm":
        params = {
            "objective": trial.suggest_categorical("lgb_objective", lgb_objs),
            "learning_rate": trial.suggest_float("lgb_learning_rate", 0.03, 0.3, log=True),
            "num_leaves": trial.suggest_int("lgb_num_leaves", 8, 128, log=True),
            "min_data_in_leaf": trial.suggest_int("lgb_min_data_in_leaf", 10, 400, log=True),
            "feature_fraction": trial.suggest_float("lgb_feature_fraction", 0.5, 1.0),
            "bagging_fraction": trial.suggest_float("lgb_bagging_fraction", 0.5, 1.0),
            "bagging_freq": 1,
            "lambda_l2": trial.suggest_float("lgb_lambda_l2", 1e-3, 10.0, log=True),
        }
        if params["objective"] == "tweedie":
            params["tweedie_variance_power"] = trial.suggest_float("lgb_tweedie_power", 1.05, 1.6)
    else:
        params = {
            "objective": trial.suggest_categorical("xgb_objective", xgb_objs),
            "eta": trial.suggest_float("xgb_eta", 0.03, 0.3, log=True),
            "max_depth": trial.suggest_int("xgb_max_depth", 3, 9),
            "min_child_weight": trial.suggest_float("xgb_min_child_weight", 0.5, 50.0, log=True),
            "subsample": trial.suggest_float("xgb_subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("xgb_colsample_bytree", 0.5, 1.0),
            "lambda": trial.suggest_float("xgb_lambda", 1e-3, 10.0, log=True),
        }
        if params["objective"] == "reg:tweedie":
            params["tweedie_variance_power"] = trial.suggest_float("xgb_tweedie_power", 1.05, 1.6)
    params["num_boost_round"] = max_rounds
    return family, params


def fit(family: str, task: str, params: dict, X: pd.DataFrame, y: np.ndarray, w: np.ndarray | None,
        X_valid: pd.DataFrame | None = None, y_valid: np.ndarray | None = None,
        w_valid: np.ndarray | None = None, trial: optuna.Trial | None = None, seed: int = 0,
        threads: int = 2, monotone: list[int] | None = None) -> Fitted:
    """Fit one booster; with a validation set, stop early and (given a trial) prune through callbacks.

    ``monotone``: one direction per column of ``X`` (+1 never lower, -1 never higher, 0 free), passed to
    LightGBM's ``monotone_constraints`` (a list in feature order) or XGBoost's (a tuple string).
    """
    if monotone and len(monotone) != X.shape[1]:
        raise ValueError(f"{len(monotone)} monotone directions for {X.shape[1]} features")
    rounds, params = library_params(family, task, params, seed, threads, monotone)
    _, _, lgb_metric, xgb_metric = OBJECTIVES[task]
    has_valid = X_valid is not None
    if family == "lightgbm":
        train = lgb.Dataset(X, y, weight=w, free_raw_data=False)
        callbacks, valid_sets = [], []
        if has_valid:
            valid_sets = [lgb.Dataset(X_valid, y_valid, weight=w_valid, reference=train)]
            callbacks.append(lgb.early_stopping(30, verbose=False))
            if trial is not None:
                callbacks.append(LightGBMPruningCallback(trial, lgb_metric, valid_name="valid_0"))
        booster = lgb.train(params, train, num_boost_round=rounds, valid_sets=valid_sets,
                            callbacks=callbacks)
        best = booster.best_iteration or rounds
    else:
        train = xgb.DMatrix(X, y, weight=w)
        evals, callbacks = [], []
        if has_valid:
            evals = [(xgb.DMatrix(X_valid, y_valid, weight=w_valid), "valid")]
            if trial is not None:
                callbacks.append(XGBoostPruningCallback(trial, f"valid-{xgb_metric}"))
        booster = xgb.train(params, train, num_boost_round=rounds, evals=evals,
                            early_stopping_rounds=30 if has_valid else None, callbacks=callbacks,
                            verbose_eval=False)
        best = (booster.best_iteration + 1) if has_valid else rounds
    return Fitted(family=family, booster=booster, best_iteration=int(best), params=params)


class _Batches(xgb.DataIter):
    """XGBoost's external-memory iterator over ``(X, y, w)`` batches (one per feature-table part)."""

    def __init__(self, batches):
        super().__init__()
        self._batches, self._it = batches, None

    def next(self, input_data) -> bool:
        if self._it is None:
            self._it = iter(self._batches())
        batch = next(self._it, None)
        if batch is None:
            return False
        X, y, w = batch
        input_data(data=X, label=y, weight=w)
        return True

    def reset(self) -> None:
        self._it = None


class _PartSequence(lgb.Sequence):
    """One part's rows for LightGBM's Dataset. LightGBM reads the parts in order twice (a row sample for
    the bins, then every row), so the parts share one slot: a part is loaded when first asked for and
    replaces the one held before; one part's matrix is in memory at a time."""

    batch_size = 65_536

    def __init__(self, load, rows: int, slot: dict):
        self._load, self._rows, self._slot = load, rows, slot

    def __len__(self) -> int:
        return self._rows

    def __getitem__(self, idx):
        if self._slot.get("part") is not self:
            self._slot.clear()  # let go of the previous part before loading this one
            self._slot.update(part=self, data=self._load())
        rows = self._slot["data"][idx]
        # The bin sample is taken row by row and must be float64; the batches may stay float32.
        return rows if isinstance(idx, slice) else rows.astype(np.float64)


def fit_parts(family: str, task: str, params: dict, parts: list, y: np.ndarray, w: np.ndarray | None,
              seed: int = 0, threads: int = 2, monotone: list[int] | None = None) -> Fitted:
    """Fit one booster (no early stopping: ``params["num_boost_round"]`` rounds) on rows that arrive in
    parts, never all in memory as a DataFrame: XGBoost's iterator into a ``QuantileDMatrix``, LightGBM's
    Dataset built from one ``Sequence`` per part.

    ``parts``: ``(rows, load)`` per part, ``load()`` giving that part's float32 feature matrix (rows,
    features) in training order; ``y`` and ``w``: the labels and weights of every part's rows, in order.
    """
    rounds, params = library_params(family, task, params, seed, threads, monotone)
    if family == "lightgbm":
        slot: dict = {}
        data = lgb.Dataset([_PartSequence(load, rows, slot) for rows, load in parts], label=y, weight=w)
        booster = lgb.train(params, data, num_boost_round=rounds)
    else:
        offsets = np.cumsum([0, *(rows for rows, _ in parts)])

        def batches():
            for (_, load), lo, hi in zip(parts, offsets[:-1], offsets[1:], strict=True):
                yield load(), y[lo:hi], None if w is None else w[lo:hi]

        data = xgb.QuantileDMatrix(_Batches(batches), max_bin=256)
        booster = xgb.train(params, data, num_boost_round=rounds, verbose_eval=False)
    return Fitted(family=family, booster=booster, best_iteration=rounds, params=params)


def library_params(family: str, task: str, params: dict, seed: int, threads: int,
                   monotone: list[int] | None) -> tuple[int, dict]:
    """(rounds, the library's parameters): the task's eval metric, seed, threads and ``monotone`` (one
    direction per feature) in each library's own form (LightGBM a list, XGBoost a tuple string)."""
    params = dict(params)
    if monotone and any(monotone):
        params["monotone_constraints"] = list(monotone) if family == "lightgbm" else \
            "(" + ",".join(str(int(d)) for d in monotone) + ")"
    rounds = params.pop("num_boost_round")
    _, _, lgb_metric, xgb_metric = OBJECTIVES[task]
    if family == "lightgbm":
        params.update(metric=lgb_metric, verbosity=-1, seed=seed, num_threads=threads, feature_pre_filter=False)
    else:
        params.update(eval_metric=xgb_metric, seed=seed, nthread=threads, tree_method="hist", verbosity=0)
    return rounds, params


def _matrix(X) -> np.ndarray:
    # Plain float64 arrays: the libraries' pandas conversion costs more than a small prediction itself.
    return X.to_numpy(dtype=np.float64, na_value=np.nan) if isinstance(X, pd.DataFrame) else np.asarray(X, float)


def predict(family: str, booster, X: pd.DataFrame) -> np.ndarray:
    """Predictions on the response scale (probability, expected count, value); columns in training order."""
    if family == "lightgbm":
        return booster.predict(_matrix(X), num_iteration=booster.best_iteration or None)
    best = getattr(booster, "best_iteration", None)
    rng = (0, best + 1) if best is not None else (0, 0)
    return booster.inplace_predict(_matrix(X), iteration_range=rng, validate_features=False)


def contributions(family: str, booster, X: pd.DataFrame) -> np.ndarray:
    """Per-feature contributions on the margin scale, one column per feature plus the bias last."""
    if family == "lightgbm":
        return booster.predict(_matrix(X), pred_contrib=True, num_iteration=booster.best_iteration or None)
    # Saabas-style contributions (XGBoost's approx_contribs): the same attribution idea as TreeSHAP at a
    # fraction of its cost, which matters for a per-request answer.
    # A DMatrix built with the default thread pool costs ~10 ms even for one row; one thread copies a
    # request's rows in microseconds.
    matrix = _matrix(X)
    return booster.predict(xgb.DMatrix(matrix, nthread=1 if len(matrix) <= 10_000 else -1), pred_contribs=True,
                           approx_contribs=True, validate_features=False)

"""Scoring functions that domains declare in their spec. Each takes ``(y, pred, w, rows)``.

``w`` is the sample weight (down-sampled zero rows carry more weight); ``rows`` is the holdout frame,
for metrics that group rows (fine dust grades combine PM10 and PM2.5 of one station-day).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

MetricFn = Callable[[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame], float]


@dataclass(frozen=True)
class Metric:
    name: str
    fn: MetricFn
    higher_is_better: bool

    def __call__(self, y, pred, w=None, rows=None) -> float:
        y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
        w = np.ones_like(y) if w is None else np.asarray(w, dtype=float)
        return float(self.fn(y, pred, w, rows))

    def better(self, a: float, b: float) -> bool:
        """Whether score ``a`` is strictly better than ``b``."""
        return a > b if self.higher_is_better else a < b


def _pr_auc(y, p, w, rows):
    return average_precision_score(y, p, sample_weight=w) if y.any() else float("nan")


def _roc_auc(y, p, w, rows):
    return roc_auc_score(y, p, sample_weight=w) if 0 < y.mean() < 1 else float("nan")


def _brier(y, p, w, rows):
    return np.average((p - y) ** 2, weights=w)


def _poisson_deviance(y, mu, w, rows):
    mu = np.clip(mu, 1e-9, None)
    term = np.where(y > 0, y * np.log(np.where(y > 0, y, 1) / mu), 0.0)
    return np.average(2 * (term - (y - mu)), weights=w)


def _top5_share(y, p, w, rows):
    """Share of all events that fall in the top 5% of (weighted) rows ranked by the prediction."""
    order = np.argsort(-p, kind="stable")
    cum_w = np.cumsum(w[order])
    top = order[cum_w <= 0.05 * cum_w[-1]]
    total = np.sum(y * w)
    return np.sum(y[top] * w[top]) / total if total > 0 else float("nan")


def _rmse(y, p, w, rows):
    return np.sqrt(np.average((p - y) ** 2, weights=w))


def _mae(y, p, w, rows):
    return np.average(np.abs(p - y), weights=w)


def _r2(y, p, w, rows):
    mean = np.average(y, weights=w)
    return 1 - np.sum(w * (y - p) ** 2) / np.sum(w * (y - mean) ** 2)


PR_AUC = Metric("pr_auc", _pr_auc, True)
ROC_AUC = Metric("roc_auc", _roc_auc, True)
BRIER = Metric("brier", _brier, False)
POISSON_DEVIANCE = Metric("poisson_deviance", _poisson_deviance, False)
TOP5_SHARE = Metric("top5_share", _top5_share, True)
RMSE = Metric("rmse", _rmse, False)
MAE = Metric("mae", _mae, False)
R2 = Metric("r2", _r2, True)

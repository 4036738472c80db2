"""Time-ordered splits: an untouched final holdout period and expanding-window folds with a gap.

The gap (at least the label horizon) keeps a training row's label window from overlapping the
validation period, so no fold learns from what it is scored on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # row positions
    valid: np.ndarray


def holdout_split(times: pd.Series, holdout_share: float, gap: timedelta) -> Split:
    """The last ``holdout_share`` of the time span is the holdout; rows within ``gap`` before it are dropped."""
    t = pd.to_datetime(times).to_numpy()
    start, end = t.min(), t.max()
    cut = start + (end - start) * (1 - holdout_share)
    valid = np.flatnonzero(t > cut)
    train = np.flatnonzero(t <= cut - np.timedelta64(gap))
    return Split(train=train, valid=valid)


def time_folds(times: pd.Series, n_folds: int, gap: timedelta, min_train_share: float = 0.4) -> list[Split]:
    """Expanding-window folds over ``times``: fold k trains on everything up to its cut minus ``gap``."""
    t = pd.to_datetime(times).to_numpy()
    start, end = t.min(), t.max()
    span = end - start
    edges = [start + span * (min_train_share + (1 - min_train_share) * k / n_folds) for k in range(n_folds + 1)]
    folds = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        valid = np.flatnonzero((t > lo) & (t <= hi))
        train = np.flatnonzero(t <= lo - np.timedelta64(gap))
        if len(valid) and len(train):
            folds.append(Split(train=train, valid=valid))
    return folds

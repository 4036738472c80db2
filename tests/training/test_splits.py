"""Time-ordered splits never let training see a row later than (or within the gap of) validation."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from training.splits import holdout_split, time_folds


@pytest.fixture
def times():
    rng = np.random.default_rng(0)
    hours = pd.date_range("2021-01-01", "2023-12-31 21:00", freq="3h")
    return pd.Series(rng.choice(hours, 5000)).sort_values(ignore_index=True)


@pytest.mark.parametrize("gap", [timedelta(0), timedelta(hours=3), timedelta(hours=31)])
@pytest.mark.parametrize("n_folds", [2, 3, 5])
def test_folds_train_strictly_before_valid_minus_gap(times, gap, n_folds):
    folds = time_folds(times, n_folds, gap)
    assert len(folds) == n_folds
    previous_end = None
    for fold in folds:
        train_max, valid_min = times.iloc[fold.train].max(), times.iloc[fold.valid].min()
        assert train_max + gap < valid_min or (gap == timedelta(0) and train_max < valid_min)
        assert not set(fold.train) & set(fold.valid)
        if previous_end is not None:  # expanding windows move forward in time
            assert times.iloc[fold.valid].min() > previous_end
        previous_end = times.iloc[fold.valid].max()


def test_holdout_is_the_final_period_and_untouched(times):
    gap = timedelta(hours=3)
    split = holdout_split(times, 0.2, gap)
    assert times.iloc[split.train].max() + gap < times.iloc[split.valid].min()
    assert times.iloc[split.valid].max() == times.max()
    span = times.max() - times.min()
    assert times.iloc[split.valid].min() - times.min() == pytest.approx(span * 0.8, abs=pd.Timedelta("4h"))
    # Folds are made from the training part only, so they never reach into the holdout.
    for fold in time_folds(times.iloc[split.train].reset_index(drop=True), 3, gap):
        assert fold.valid.max() < len(split.train)

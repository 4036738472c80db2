"""The declared metrics behave as their definitions say."""

from __future__ import annotations

import numpy as np
import pytest

from features.metrics import BRIER, MAE, POISSON_DEVIANCE, PR_AUC, R2, RMSE, ROC_AUC, TOP5_SHARE


def test_binary_metrics_reward_a_better_ranking_and_calibration():
    y = np.array([0, 0, 0, 1, 0, 1, 0, 0, 0, 1])
    good = np.where(y == 1, 0.8, 0.1)
    bad = np.full(10, 0.3)
    assert PR_AUC(y, good) == 1.0 and ROC_AUC(y, good) == 1.0
    assert BRIER(y, good) < BRIER(y, bad)
    assert BRIER.better(BRIER(y, good), BRIER(y, bad)) and PR_AUC.better(1.0, 0.5)


def test_poisson_deviance_is_zero_for_perfect_and_weights_count():
    y = np.array([0, 1, 2, 0])
    assert POISSON_DEVIANCE(y, y + 1e-12) == pytest.approx(0, abs=1e-6)
    mu = np.full(4, 0.75)
    assert POISSON_DEVIANCE(y, mu) > 0
    w = np.array([20, 1, 1, 20])
    assert POISSON_DEVIANCE(y, mu, w) != POISSON_DEVIANCE(y, mu)


def test_top5_share_counts_events_in_the_top_weighted_five_percent():
    y = np.zeros(100)
    y[:3] = 1  # three events, all in rows 0-2
    ranked_right = -np.arange(100.0)  # rows 0..4 are the top 5%
    ranked_wrong = np.arange(100.0)
    assert TOP5_SHARE(y, ranked_right) == 1.0
    assert TOP5_SHARE(y, ranked_wrong) == 0.0


def test_regression_metrics():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.0, 2.0, 3.0, 5.0])
    assert RMSE(y, p) == pytest.approx(0.5)
    assert MAE(y, p) == pytest.approx(0.25)
    assert R2(y, y) == pytest.approx(1.0) and R2(y, np.full(4, 2.5)) == pytest.approx(0.0)


def _dust_rows(pollutants, stations=(1, 2), days=4):
    import pandas as pd

    rows = [(s, p, pd.Timestamp("2024-01-01 17:00") + pd.Timedelta(days=d)) for s in stations for p in pollutants
            for d in range(days)]
    frame = pd.DataFrame(rows, columns=["station_code", "pollutant", "time"])
    frame["pm_next"] = np.where(frame["pollutant"] == 0, 90.0, 40.0)
    for c in ("own_today_mean", "own_yesterday_mean", "own_mean_72h"):
        frame[c] = np.nan
    return frame


@pytest.mark.parametrize("pollutants", [(0,), (1,), (0, 1)])
def test_fine_dust_metrics_and_baseline_cope_with_an_absent_pollutant(pollutants):
    from features.registry import get_domain

    spec = get_domain("fine_dust")
    rows = _dust_rows(pollutants)
    y = rows["pm_next"].to_numpy()
    for metric in spec.metrics:
        assert np.isfinite(metric(y, y, None, rows)) or metric.name == "far_bad" and pollutants == (1,)
    assert spec.metric("grade_accuracy")(y, y, None, rows) == 1.0
    history = _dust_rows(pollutants[:1], stations=(3,))
    assert np.isfinite(spec.baseline(rows, history)).all()


def test_no_truth_means_no_oracle_and_no_gap(tmp_path):
    from features.registry import domains
    from training.evaluate import Scores, oracle_values

    for spec in domains().values():
        assert oracle_values(spec, _dust_rows((0,)), tmp_path / "truth") is None
    scores = Scores(baseline={"rmse": 2.0}, model={"rmse": 1.0}, oracle={}, primary="rmse")
    assert np.isnan(scores.gap_closed) and "oracle_rmse" not in scores.flat()


def test_region_grade_accuracy_scores_the_city_mean_per_pollutant_as_the_national_forecast_is_verified():
    from features.registry import get_domain

    metric = get_domain("fine_dust").metric("region_grade_accuracy")
    # One day, two stations. PM10: observed 70 and 100 (city mean 85, 나쁨), forecast 85 at both (나쁨):
    # a hit for the region, though station one's own grade (보통) was missed. PM2.5: observed 20 at both
    # (보통), forecast 40 (나쁨): a miss. PM10 and PM2.5 count as two forecasts.
    import pandas as pd

    rows = pd.DataFrame({"station_code": [1, 1, 2, 2], "pollutant": [0, 1, 0, 1],
                         "time": pd.Timestamp("2024-01-01 17:00")})
    y = np.array([70.0, 20.0, 100.0, 20.0])
    assert metric(y, np.array([85.0, 40.0, 85.0, 40.0]), None, rows) == 0.5
    assert metric(y, np.array([85.0, 20.0, 85.0, 20.0]), None, rows) == 1.0
    assert get_domain("fine_dust").metric("grade_accuracy")(y, np.array([85.0, 20.0, 85.0, 20.0]), None, rows) == 0.5

"""The final fit on a real Dask cluster (a LocalCluster of two worker processes): LightGBM's and XGBoost's Dask
interfaces on the same rows and hyper-parameters as the single-process fit give the same holdout quality."""

from __future__ import annotations

import optuna
import pytest

from features.build import table_path
from features.registry import get_domain
from features.store import read_table
from training.champion import load_native
from training.distributed import ClusterUnavailable, dask_client, fit_dask, spread
from training.evaluate import score
from training.models import OBJECTIVES, fit, predict
from training.tracking import configure, registered_name
from training.train import best_params, prepare, train_domain
from training.tune import Profile

DOMAIN = "fine_dust"
TINY = Profile("tiny", trials=2, folds=2, max_rows=15_000, max_rounds=40, timeout_s=None)
# Data-parallel trees are built from merged per-worker histograms and sketches, and LightGBM bags rows on
# each worker, so they are close to, not equal to, one process's. Measured on the small data set (holdout
# RMSE ~6.9; persistence 8.8, oracle 2.3): LightGBM -2.0 % or +0.3 % (its result depends on which worker
# gets rank 0), XGBoost +0.4 %, the study's best trial -1.0 % or +1.3 %. The single-process model's own
# spread over 8 seeds is 2.0 % (LightGBM) and 4.2 % (XGBoost), and moves with the features (fine_dust-v4's
# best trial landed 3.2 % above its seed's single fit). So the cluster's score is checked against the
# single-process scores over SEEDS, widened by MARGIN: it must be as good as one process's fit, within the
# noise one process shows anyway. The cluster fit has noise of its own: the same LightGBM fit scored 6.53 and
# 6.69 in two runs (rank 0 on the other worker) against single-process 6.16-6.61. On the data of the real
# city outline (issue 22) XGBoost's cluster fit scored 6.86 against 6.36-6.62 in one process (+3.6 %): its
# quantile sketch is merged from the two workers' blocks, which puts some bin edges of long-tailed features
# apart from the one-pass sketch (tests/training/test_out_of_core.py counts them), hence 5 %; persistence,
# the score of a fit that learnt nothing, is ~30 % above.
SEEDS = range(6)
MARGIN = 0.05


def within_single_spread(spec, data, family, params, seed_of_study, dist_score) -> None:
    """Assert ``dist_score`` lies within the single-process holdout scores over :data:`SEEDS` (+- MARGIN)."""
    holdout = data.holdout[list(spec.features)]
    metric = spec.primary_metric
    scores = [score(spec, data.holdout, fit(family, spec.task, params, data.X, data.y, data.w, seed=s,
                                            monotone=spec.monotone_vector()).predict(holdout))[metric]
              for s in (seed_of_study, *SEEDS)]
    print(f"{family}: holdout {metric} single {min(scores):.5f}..{max(scores):.5f}, dask {dist_score:.5f}")
    assert min(scores) * (1 - MARGIN) <= dist_score <= max(scores) * (1 + MARGIN)


@pytest.fixture(scope="module")
def cluster():
    """A running two-worker Dask cluster, one thread per worker; closed even when a test fails."""
    from distributed import LocalCluster

    local = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        yield local
    finally:
        local.close()


@pytest.fixture
def store(small_tables, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("URBAN_SAFETY_OPTUNA_STORAGE", raising=False)
    return small_tables.model_copy(update={"root": tmp_path})


def usual_params(family: str, task: str) -> dict:
    """Each family at its libraries' usual settings (the study's first trials), 60 rounds."""
    lgb_objective, xgb_objective = OBJECTIVES[task][0][0], OBJECTIVES[task][1][0]
    if family == "lightgbm":
        return {"objective": lgb_objective, "learning_rate": 0.1, "num_leaves": 31, "min_data_in_leaf": 20,
                "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1, "lambda_l2": 0.1,
                "num_boost_round": 60}
    return {"objective": xgb_objective, "eta": 0.1, "max_depth": 6, "min_child_weight": 1.0, "subsample": 0.9,
            "colsample_bytree": 0.9, "lambda": 1.0, "num_boost_round": 60}


@pytest.mark.parametrize("family", ["lightgbm", "xgboost"])
def test_a_dask_fit_on_two_workers_matches_the_single_process_fit(store, cluster, family):
    spec = get_domain(DOMAIN)
    data = prepare(spec, store, TINY)
    params = usual_params(family, spec.task)
    holdout = data.holdout[list(spec.features)]
    with dask_client(scheduler=cluster.scheduler_address) as client:
        _, _, _, holders = spread(client, data.X, data.y, data.w)
        assert len(holders) == 2  # one block of rows on each worker: both take part
        dist = fit_dask(client, family, spec.task, params, data.X, data.y, data.w, seed=store.seed,
                        monotone=spec.monotone_vector())
    rounds = dist.booster.num_boosted_rounds() if family == "xgboost" else dist.booster.current_iteration()
    assert rounds == params["num_boost_round"]
    dist_score = score(spec, data.holdout, dist.predict(holdout))[spec.primary_metric]
    within_single_spread(spec, data, family, params, store.seed, dist_score)


def test_a_training_job_refits_the_study_best_on_the_cluster(store, cluster):
    spec = get_domain(DOMAIN)
    dist = train_domain(spec, store, TINY, scheduler=cluster.scheduler_address)
    # The single-process refit of the same best trial, on the same rows, as a job without a cluster does it.
    client = configure(store)
    study_name = client.get_run(dist.run_id).data.tags["optuna_study"]
    family, params = best_params(optuna.load_study(study_name=study_name, storage=store.optuna_url))
    data = prepare(spec, store, TINY)
    assert family == dist.family
    within_single_spread(spec, data, family, params, store.seed, dist.scores.model[spec.primary_metric])

    # Logged and registered as a plain booster, like the single-process model, and marked as a cluster fit.
    assert client.get_run(dist.run_id).data.tags["dask"] == cluster.scheduler_address
    family, booster = load_native(f"models:/{registered_name(DOMAIN)}/{dist.decision.version}")
    X = read_table(table_path(store.features_dir, DOMAIN)).tail(100)[list(spec.features)]
    assert family == dist.family
    assert predict(family, booster, X) == pytest.approx(dist.fitted.predict(X), rel=1e-6)


def test_an_unreachable_scheduler_is_named():
    unreachable = pytest.raises(ClusterUnavailable, match=r"no Dask scheduler answers at tcp://127\.0\.0\.1:9 ")
    with unreachable, dask_client(scheduler="tcp://127.0.0.1:9", timeout=1):
        pass

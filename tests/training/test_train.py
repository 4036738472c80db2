"""End-to-end training per domain into a temporary MLflow store, the champion rule, and resuming."""

from __future__ import annotations

import mlflow
import numpy as np
import optuna
import pytest
from mlflow.entities import RunStatus

from features.build import table_path
from features.registry import domains, get_domain
from features.store import read_table
from training import tune
from training.champion import ALIAS, load_native, promote, register_and_decide
from training.models import fit, predict
from training.tracking import configure, registered_name
from training.train import train_domain
from training.tune import Profile
from urban_safety.settings import Settings

TINY = Profile("tiny", trials=3, folds=2, max_rows=15_000, max_rounds=40, timeout_s=None)


@pytest.fixture
def store(small_tables, tmp_path, monkeypatch) -> Settings:
    """A fresh MLflow store and Optuna storage for one test."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("URBAN_SAFETY_OPTUNA_STORAGE", raising=False)
    return small_tables.model_copy(update={"root": tmp_path})


@pytest.mark.parametrize("domain", sorted(domains()))
def test_tiny_training_leaves_a_champion_that_predicts_like_the_model_in_memory(store, domain):
    spec = get_domain(domain)
    result = train_domain(spec, store, TINY)
    assert result.decision.promoted and result.decision.version == "1"

    client = configure(store)
    champion = client.get_model_version_by_alias(registered_name(domain), ALIAS)
    assert str(champion.version) == "1" and champion.tags["decision"] == "promoted"
    family, booster = load_native(f"models:/{registered_name(domain)}@{ALIAS}")
    assert family == result.family
    table = read_table(table_path(store.features_dir, domain))
    rows = table.sort_values(spec.time, kind="stable").tail(200)[list(spec.features)]
    np.testing.assert_allclose(predict(family, booster, rows), result.fitted.predict(rows), rtol=1e-6)

    run = client.get_run(result.run_id)
    for key in ("data_sha256", "git_commit", "feature_set_version", "optuna_study"):
        assert run.data.tags[key]
    primary = spec.primary_metric
    for prefix in ("holdout", "baseline", "oracle"):
        assert f"{prefix}_{primary}" in run.data.metrics
    if spec.breakdown:  # e.g. flood: the holdout scored per lead time as well
        column, label = spec.breakdown
        for value in table[column].unique():
            assert any(k.startswith("holdout_") and k.endswith(f"_{label.format(value)}") for k in run.data.metrics)
    nested = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert len(nested) == result.trials
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert artifacts == {"plots/holdout_diagnostic.png", "plots/feature_importance.png"}


def test_a_worse_model_is_registered_but_not_promoted_and_a_person_can_override(store):
    spec = get_domain("fine_dust")
    first = train_domain(spec, store, TINY)
    client = configure(store)

    # A model trained on shuffled labels: registered, scored on the same holdout, not promoted.
    table = read_table(table_path(store.features_dir, "fine_dust"))
    X = table[list(spec.features)]
    y = np.random.default_rng(0).permutation(table[spec.target].to_numpy())
    bad = fit("lightgbm", spec.task, {"objective": "regression", "num_boost_round": 20}, X, y, None)
    holdout = table.tail(500)
    with mlflow.start_run(experiment_id=run_experiment(client, first.run_id)) as run:
        info = mlflow.lightgbm.log_model(bad.booster, name="model")
    bad_score = spec.metric()(holdout[spec.target], bad.predict(holdout[list(spec.features)]))
    decision = register_and_decide(client, spec, info.model_uri, run.info.run_id, holdout, bad_score)
    assert not decision.promoted and "does not beat champion v1" in decision.reason
    assert str(client.get_model_version_by_alias(registered_name("fine_dust"), ALIAS).version) == "1"
    kept = client.get_model_version(registered_name("fine_dust"), decision.version)
    assert kept.tags["decision"] == "kept" and kept.tags["decision_reason"] == decision.reason

    note = promote(client, "fine_dust", decision.version, "testing the override")
    now = client.get_model_version_by_alias(registered_name("fine_dust"), ALIAS)
    assert str(now.version) == decision.version and now.tags["promoted_by"].startswith("manual:")
    assert "testing the override" in note and "replaced v1" in note


def run_experiment(client, run_id: str) -> str:
    return client.get_run(run_id).info.experiment_id


def test_an_interrupted_study_resumes_and_its_run_is_marked_failed(store, monkeypatch):
    spec = get_domain("fine_dust")
    calls = {"n": 0}
    real_fit = tune.fit

    def fit_then_interrupt(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2 * TINY.folds:  # two whole trials, then the machine "stops"
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(tune, "fit", fit_then_interrupt)
    profile = Profile("resume", trials=4, folds=TINY.folds, max_rows=TINY.max_rows, max_rounds=TINY.max_rounds,
                      timeout_s=None)
    with pytest.raises(KeyboardInterrupt):
        train_domain(spec, store, profile)
    client = configure(store)
    parent = client.search_runs([client.get_experiment_by_name("urban-safety-fine_dust").experiment_id],
                                "tags.domain = 'fine_dust'")[0]
    assert parent.info.status == RunStatus.to_string(RunStatus.FAILED)
    assert client.search_registered_models() == []  # nothing registered, no champion moved

    study_name = parent.data.tags["optuna_study"]
    before = optuna.load_study(study_name=study_name, storage=store.optuna_url).trials
    finished_before = [t for t in before if t.state.is_finished() and t.state != optuna.trial.TrialState.FAIL]
    assert len(finished_before) == 2

    monkeypatch.setattr(tune, "fit", real_fit)
    result = train_domain(spec, store, profile)
    after = optuna.load_study(study_name=study_name, storage=store.optuna_url).trials
    assert result.trials == 4  # two from before the interruption, two new
    assert [t.params for t in after[:2]] == [t.params for t in before[:2]]
    assert result.decision.promoted


@pytest.mark.parametrize("task", ["binary", "count", "regression"])
def test_a_new_study_first_tries_each_family_at_usual_settings_and_a_resumed_one_does_not(task):
    from training.models import suggest

    def objective(trial):
        suggest(trial, task, max_rounds=10)
        return 0.0

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    tune.seed_study(study, task)
    study.optimize(objective, n_trials=3)
    first, second, third = study.trials
    assert (first.params["family"], first.params["lgb_num_leaves"]) == ("lightgbm", 31)
    assert (second.params["family"], second.params["xgb_max_depth"]) == ("xgboost", 6)
    assert third.system_attrs.get("fixed_params") is None  # the sampler's own from here on
    tune.seed_study(study, task)  # resumed: nothing more queued
    study.optimize(objective, n_trials=1)
    assert study.trials[3].system_attrs.get("fixed_params") is None

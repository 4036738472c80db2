"""Faults of training jobs on the default SQLite store: two jobs at once, a job killed mid-study, a busy lock."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from filelock import FileLock
from mlflow.entities import RunStatus

from features.registry import get_domain
from tests.training.jobs import release_together, wait_for
from training.tracking import (
    FAILURE_TAG,
    HOST_TAG,
    PID_TAG,
    StoreBusy,
    configure,
    ensure_experiment,
    fail_orphaned_runs,
    owner_tags,
    registered_name,
    training_lock,
    uses_local_store,
)
from training.train import train_domain
from training.tune import Profile
from urban_safety.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "fine_dust"
TINY = Profile("tiny", trials=2, folds=2, max_rows=15_000, max_rounds=40, timeout_s=None)

# A training job in its own process. It signals that it has imported everything, then waits for the
# "go" file so that two of them call train_domain at the same moment. With a "hang" argument the job
# hangs in the second trial (the first one has finished), waiting to be killed.
JOB = """
import json, sys, time
from pathlib import Path
settings_json, domain, profile_json, ready, go, hang = sys.argv[1:7]
from features.registry import get_domain
from training import tune
from training.train import train_domain
from urban_safety.settings import Settings
settings = Settings.model_validate_json(settings_json)
profile = tune.Profile(**json.loads(profile_json))
if hang == "hang":
    real_fit, calls = tune.fit, [0]
    def fit_then_hang(*args, **kwargs):
        calls[0] += 1
        if calls[0] > profile.folds:
            time.sleep(600)
        return real_fit(*args, **kwargs)
    tune.fit = fit_then_hang
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.01)
result = train_domain(get_domain(domain), settings, profile, lock_timeout=300)
print("trained", result.run_id, result.decision.version, flush=True)
"""


@pytest.fixture
def store(small_tables, tmp_path, monkeypatch) -> Settings:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("URBAN_SAFETY_OPTUNA_STORAGE", raising=False)
    return small_tables.model_copy(update={"root": tmp_path / "project"})


def start_job(settings: Settings, profile: Profile, folder: Path, name: str, hang: bool = False) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "URBAN_SAFETY_OPTUNA_STORAGE")}
    args = [sys.executable, "-c", JOB, settings.model_dump_json(), DOMAIN, json.dumps(dataclasses.asdict(profile)),
            str(folder / f"{name}.ready"), str(folder / "go"), "hang" if hang else "run"]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as con:
        return con.execute("PRAGMA integrity_check").fetchone()[0]


def parent_runs(client, domain: str):
    experiment = client.get_experiment_by_name(f"urban-safety-{domain}")
    return client.search_runs([experiment.experiment_id], f"tags.domain = '{domain}'", order_by=["start_time ASC"])


def test_two_jobs_at_once_take_turns_and_leave_a_sound_store(store, tmp_path):
    jobs = [start_job(store, TINY, tmp_path, f"job{i}") for i in range(2)]
    outputs = release_together(jobs, [tmp_path / f"job{i}.ready" for i in range(2)], tmp_path / "go", 240, 240)
    for job, (out, err) in zip(jobs, outputs, strict=True):
        assert job.returncode == 0, err[-3000:]
        assert out.startswith("trained ")
    assert sum("waiting up to" in err for _, err in outputs) == 1  # the second job said that it waits

    client = configure(store)
    versions = client.search_model_versions(f"name = '{registered_name(DOMAIN)}'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    first, second = parent_runs(client, DOMAIN)
    assert {first.info.status, second.info.status} == {"FINISHED"}
    assert first.info.end_time <= second.info.start_time  # one after the other, not interleaved
    assert {v.run_id for v in versions} == {first.info.run_id, second.info.run_id}
    for db in ("mlflow.db", "optuna.db"):
        assert integrity(store.mlruns_dir / db) == "ok"


def complete_trials(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet, or busy
        return 0


def test_a_killed_job_is_marked_failed_by_the_next_one_which_resumes_its_study(store, tmp_path):
    profile = dataclasses.replace(TINY, name="killed", trials=3)
    (tmp_path / "go").touch()
    job = start_job(store, profile, tmp_path, "killed", hang=True)
    try:
        wait_for(lambda: complete_trials(store.mlruns_dir / "optuna.db") >= 1, 120, "a finished trial", [job])
    finally:
        job.send_signal(signal.SIGKILL)
        job.communicate(timeout=30)
    assert job.returncode == -signal.SIGKILL

    client = configure(store)
    (killed,) = parent_runs(client, DOMAIN)
    assert killed.info.status == "RUNNING"  # nothing could end it
    assert killed.data.tags[PID_TAG] == str(job.pid)
    assert client.search_registered_models() == []  # the killed job registered nothing, moved no champion
    study_name = killed.data.tags["optuna_study"]
    before = optuna.load_study(study_name=study_name, storage=store.optuna_url).trials
    done_before = [t for t in before if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done_before) == 1

    result = train_domain(get_domain(DOMAIN), store, profile, lock_timeout=30)  # the lock died with the job

    old, new = parent_runs(client, DOMAIN)
    assert old.info.run_id == killed.info.run_id and new.info.run_id == result.run_id
    assert old.info.status == "FAILED" and f"process {job.pid}" in old.data.tags[FAILURE_TAG]
    assert new.info.status == "FINISHED" and FAILURE_TAG not in new.data.tags
    orphans = client.search_runs([old.info.experiment_id], f"tags.mlflow.parentRunId = '{old.info.run_id}' "
                                                           "and attributes.status = 'RUNNING'")
    assert orphans == []  # the killed job's open trial run was failed with it

    after = optuna.load_study(study_name=study_name, storage=store.optuna_url).trials
    finished = [t for t in after if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert result.trials == len(finished) == profile.trials  # the old trial counted, only the rest were run
    assert done_before[0].number in {t.number for t in finished}
    assert after[done_before[0].number].params == done_before[0].params

    versions = client.search_model_versions(f"name = '{registered_name(DOMAIN)}'")
    assert [(str(v.version), v.run_id) for v in versions] == [("1", result.run_id)]
    assert result.decision.promoted and result.decision.reason == "first model of this domain"


def test_a_job_that_cannot_get_the_lock_says_so_and_fails_clearly(store, caplog):
    lock_path = store.mlruns_dir / "train.lock"
    lock_path.parent.mkdir(parents=True)
    busy = pytest.raises(StoreBusy, match="another training job held .*train.lock for more than 0.3 s")
    with FileLock(lock_path), caplog.at_level(logging.WARNING, "urban_safety.training"), busy:
        train_domain(get_domain(DOMAIN), store, TINY, lock_timeout=0.3)
    assert "waiting up to 0.3 s" in caplog.text
    assert not (store.mlruns_dir / "mlflow.db").exists()  # it touched nothing


def test_a_server_store_takes_no_lock(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    server = store.model_copy(update={"optuna_storage": "postgresql://optuna@db.example/optuna"})
    assert not uses_local_store(server) and uses_local_store(store)
    lock_path = store.mlruns_dir / "train.lock"
    lock_path.parent.mkdir(parents=True)
    with FileLock(lock_path), training_lock(server, timeout=0) as held:
        assert held is None


def test_only_runs_of_dead_processes_on_this_host_are_failed(store):
    client = configure(store)
    experiment = ensure_experiment(client, store, DOMAIN)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    me = owner_tags()
    cases = {"dead here": {**me, PID_TAG: str(gone.pid)}, "alive here": me,
             "other host": {HOST_TAG: "elsewhere", PID_TAG: str(gone.pid)}, "untagged": {}}
    runs = {name: client.create_run(experiment, tags={"domain": DOMAIN, **tags}).info.run_id
            for name, tags in cases.items()}
    trial = client.create_run(experiment, tags={"mlflow.parentRunId": runs["dead here"]}).info.run_id

    assert fail_orphaned_runs(client, experiment, DOMAIN) == [runs["dead here"]]
    status = {name: client.get_run(run_id).info.status for name, run_id in runs.items()}
    assert status == {"dead here": "FAILED", "alive here": "RUNNING", "other host": "RUNNING", "untagged": "RUNNING"}
    assert client.get_run(trial).info.status == RunStatus.to_string(RunStatus.FAILED)
    assert "ended without finishing" in client.get_run(runs["dead here"]).data.tags[FAILURE_TAG]

"""Training beyond one machine, against real servers: an MLflow tracking server on PostgreSQL with an artifact
folder, and one Optuna study in PostgreSQL tuned by two worker processes at once.

PostgreSQL runs at ``URBAN_SAFETY_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``, trust auth;
``scripts/test.sh`` starts Debian's server where none answers). Each Optuna test gets a database of its own;
the tracking server (slow to start: it migrates its schema) serves the module from one fresh database. All
are dropped afterwards, and the server is stopped even when a test fails.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import mlflow
import optuna
import psycopg
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from features.build import table_path
from features.registry import get_domain
from features.store import read_table
from tests.serving.conftest import free_port, wait_ready
from tests.training.jobs import release_together
from training.champion import ALIAS, load_native
from training.models import predict
from training.tracking import registered_name
from training.train import train_domain
from training.tune import WORKER_ATTR, Profile
from urban_safety.cli import app
from urban_safety.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("URBAN_SAFETY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
DOMAIN = "fine_dust"
# Fewer rounds than the pruner's 20 warm-up steps: no trial can be pruned, so every one must be COMPLETE.
TINY = Profile("tiny", trials=2, folds=2, max_rows=15_000, max_rounds=18, timeout_s=None)
SHARED = Profile("shared", trials=4, folds=2, max_rows=15_000, max_rounds=18, timeout_s=None)


def pg_unavailable() -> str | None:
    """None when the PostgreSQL server answers, else why not."""
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"no PostgreSQL server at {PG_URL}: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}"


def db_url(name: str, driver: str = "postgresql+psycopg") -> str:
    """The test server's URL for database ``name`` (SQLAlchemy form with ``driver``)."""
    base = psycopg.conninfo.conninfo_to_dict(PG_URL)
    user, host, port = base.get("user", "postgres"), base.get("host", "127.0.0.1"), base.get("port", 5432)
    return f"{driver}://{user}@{host}:{port}/{name}"


@pytest.fixture(scope="module")
def pg_databases():
    """A factory of fresh databases (unique names), each dropped at the end of the module."""
    if why := pg_unavailable():
        pytest.skip(why)
    made: list[str] = []

    def new(purpose: str) -> str:
        name = f"us_{purpose}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return name

    try:
        yield new
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            for name in made:  # FORCE: a worker killed mid-test may have left a connection open
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclasses.dataclass(frozen=True)
class Server:
    uri: str  # http://127.0.0.1:<port>
    database: str  # the backend store's database
    artifacts: Path  # --artifacts-destination


def stop(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session, with its children (uvicorn, MLflow's job runner)."""
    if proc.poll() is None:
        with_group = os.getpgid(proc.pid) == proc.pid
        (os.killpg if with_group else os.kill)(proc.pid, signal.SIGTERM)
        try:  # uvicorn waits for idle keep-alive connections on SIGTERM; nothing here needs a clean stop
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            (os.killpg if with_group else os.kill)(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    else:  # its children may outlive it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def mlflow_server(pg_databases, tmp_path_factory) -> Server:
    """``mlflow server`` on a fresh PostgreSQL database, proxying artifacts to a temporary folder."""
    database = pg_databases("mlflow")
    folder = tmp_path_factory.mktemp("mlflow_server")
    artifacts = folder / "artifacts"
    artifacts.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", db_url(database),
               "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    log = folder / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_ready(uri, proc, log, seconds=180, path="/health")
        yield Server(uri=uri, database=database, artifacts=artifacts)
    finally:
        stop(proc)


@pytest.fixture
def on_servers(small_tables, mlflow_server, pg_databases, tmp_path, monkeypatch) -> Settings:
    """Settings whose MLflow store is the tracking server and whose Optuna storage is a fresh database."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    previous = mlflow.get_tracking_uri()
    settings = small_tables.model_copy(update={"root": tmp_path / "project",
                                               "optuna_storage": db_url(pg_databases("optuna"))})
    yield settings
    mlflow.set_tracking_uri(previous)  # the next test's store is its own
    mlflow.set_registry_uri(previous)


def test_training_logs_runs_models_and_artifacts_to_a_tracking_server_on_postgresql(on_servers, mlflow_server):
    spec = get_domain(DOMAIN)
    result = train_domain(spec, on_servers, TINY)
    assert not (on_servers.mlruns_dir / "mlflow.db").exists()  # nothing went to the local default store

    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["domain"] == DOMAIN
    primary = spec.primary_metric
    assert run.data.metrics[f"holdout_{primary}"] == pytest.approx(result.scores.model[primary])
    assert {f"baseline_{primary}", "cv_best_loss", "trials_complete"} <= set(run.data.metrics)
    trials = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert len(trials) == result.trials == TINY.trials

    version = client.get_model_version(registered_name(DOMAIN), result.decision.version)
    assert version.run_id == result.run_id and version.tags["decision"] == "promoted"
    champion = client.get_model_version_by_alias(registered_name(DOMAIN), ALIAS)
    assert champion.version == version.version

    # The server keeps its records in PostgreSQL ...
    with psycopg.connect(db_url(mlflow_server.database, "postgresql")) as conn:
        status = conn.execute("SELECT status FROM runs WHERE run_uuid = %s", (result.run_id,)).fetchone()
        versions = conn.execute("SELECT version FROM model_versions WHERE run_id = %s", (result.run_id,)).fetchall()
    assert status == ("FINISHED",) and versions == [(int(version.version),)]
    # ... and the artifacts in its artifact folder, uploaded through its proxy.
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    plots = mlflow_server.artifacts / run.info.experiment_id / result.run_id / "artifacts" / "plots"
    assert {p.name for p in plots.iterdir()} == {"holdout_diagnostic.png", "feature_importance.png"}
    models = [p.parent for p in mlflow_server.artifacts.rglob("MLmodel")]
    assert len(models) == 1 and any(p.suffix in (".txt", ".ubj", ".json") for p in models[0].iterdir())

    # The champion, downloaded back through the server, predicts like the model in memory.
    family, booster = load_native(f"models:/{registered_name(DOMAIN)}@{ALIAS}")
    X = read_table(table_path(on_servers.features_dir, DOMAIN)).tail(100)[list(spec.features)]
    assert family == result.family
    assert predict(family, booster, X) == pytest.approx(result.fitted.predict(X), rel=1e-6)


# One training job in its own process, as `urban-safety train` on another machine would be. It says that it
# has imported everything, waits for the "go" file so that both jobs start together, and prints its result.
WORKER = """
import json, sys, time
from pathlib import Path
settings_json, domain, profile_json, ready, go = sys.argv[1:6]
from features.registry import get_domain
from training import tune
from training.train import train_domain
from urban_safety.settings import Settings
settings = Settings.model_validate_json(settings_json)
profile = tune.Profile(**json.loads(profile_json))
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.01)
result = train_domain(get_domain(domain), settings, profile)
print(json.dumps({"run_id": result.run_id, "best_trial": result.best_trial, "version": result.decision.version}))
"""


def test_two_workers_tune_one_postgresql_study_without_losing_or_repeating_a_trial(on_servers, mlflow_server,
                                                                                   tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.uri}
    profile = json.dumps(dataclasses.asdict(SHARED))
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, on_servers.model_dump_json(), DOMAIN, profile,
                                 str(tmp_path / f"w{i}.ready"), str(tmp_path / "go")],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
    outputs = release_together(workers, [tmp_path / f"w{i}.ready" for i in range(2)], tmp_path / "go", 120, 240)
    for w, (_, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]

    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    runs = [client.get_run(r["run_id"]) for r in results]
    (study_name,) = {run.data.tags["optuna_study"] for run in runs}  # both worked on one study
    trials = optuna.load_study(study_name=study_name, storage=on_servers.optuna_url).get_trials()
    numbers = sorted(t.number for t in trials)
    assert numbers == list(range(len(trials)))  # none lost, none numbered twice
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    # The jobs share the study's target; one may finish a trial it had started when the other reached it.
    assert SHARED.trials <= len(trials) <= SHARED.trials + 1

    # Each trial was run by one of the two workers, and each worker logged exactly its own trials.
    by_worker = collections.Counter(t.user_attrs[WORKER_ATTR].rsplit(":", 1)[1] for t in trials)
    assert set(by_worker) == {str(w.pid) for w in workers}
    for w, run in zip(workers, runs, strict=True):
        nested = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
        assert len(nested) == by_worker[str(w.pid)]
    assert sum(by_worker.values()) == len(trials)
    # No work done twice: the starting trials were queued once, and the workers' samplers differ.
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == len(params)

    best = optuna.load_study(study_name=study_name, storage=on_servers.optuna_url).best_trial.number
    assert [r["best_trial"] for r in results] == [best, best]  # both refitted the study's best trial
    assert [run.data.params["best_trial"] for run in runs] == [str(best)] * 2
    versions = {v.run_id for v in client.search_model_versions(f"name = '{registered_name(DOMAIN)}'")}
    assert {r["run_id"] for r in results} <= versions  # each registered its model


def test_unreachable_servers_are_named_in_one_line_without_a_trace(small_tables, tmp_path):
    env = {"URBAN_SAFETY_DATA_DIR": str(small_tables.data), "URBAN_SAFETY_GRID_M": str(small_tables.grid_m),
           "URBAN_SAFETY_YEARS": "1", "URBAN_SAFETY_START": small_tables.start.isoformat(),
           "URBAN_SAFETY_SEED": str(small_tables.seed), "URBAN_SAFETY_ROOT": str(tmp_path), "COLUMNS": "300"}
    nobody = f"127.0.0.1:{free_port()}"
    cases = [({"MLFLOW_TRACKING_URI": f"http://{nobody}"},
              f"no MLflow tracking server answers at http://{nobody} (MLFLOW_TRACKING_URI)"),
             ({"URBAN_SAFETY_OPTUNA_STORAGE": f"postgresql+psycopg://postgres:secret@{nobody}/optuna"},
              f"cannot open the Optuna storage postgresql+psycopg://postgres:***@{nobody}/optuna"),
             ({"URBAN_SAFETY_OPTUNA_STORAGE": "postgres-sql://db/optuna"},
              "cannot open the Optuna storage postgres-sql://db/optuna")]
    for extra, message in cases:
        result = CliRunner().invoke(app, ["train", "--domain", DOMAIN, "--trials", "1"],
                                    env={"MLFLOW_TRACKING_URI": "", "URBAN_SAFETY_OPTUNA_STORAGE": "", **env, **extra})
        flat = " ".join(result.output.split())
        assert result.exit_code == 1, result.output
        assert message in flat and "Traceback" not in result.output and "secret" not in result.output

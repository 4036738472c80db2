"""A real `bentoml serve` process over tiny champions of every domain, started once for the serving tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from features.registry import domains
from training.train import train_domain
from training.tune import Profile

ROOT = Path(__file__).resolve().parents[2]
BODY_TIMEOUT_S = 2  # the served test process's stalled-body timeout (the default is 10 s)
STREAM_S = 10  # the served test process's /alerts/stream connection length (the default is 45 s)
TINY = Profile("tiny", trials=2, folds=2, max_rows=15_000, max_rounds=30, timeout_s=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_server(proc: subprocess.Popen, seconds: float = 30, hard: bool = False) -> None:
    """End a BentoML server and its workers: SIGTERM (SIGKILL with ``hard``), then SIGKILL whatever is left
    after ``seconds``. The workers run in sessions of their own and outlive a killed arbiter, so they are
    found as its children before it goes."""
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
    _, alive = psutil.wait_procs(family, timeout=seconds)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    proc.wait(timeout=seconds)


def wait_ready(url: str, proc: subprocess.Popen, log: Path | None = None, seconds: float = 300,
               path: str = "/readyz") -> None:
    """Block until ``url`` + ``path`` answers 200; fail with the server's log if it exits or takes too long."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-3000:] if log else proc.returncode}")
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"server not ready in {seconds:.0f} s: {log.read_text()[-3000:] if log else ''}")


def project_env(base: Path, name: str, config: str, boundary: str) -> dict:
    """A city of its own under ``base``: its TOML and boundary GeoJSON written, and the environment that gives
    it its own data folder, project root, BentoML home and MLflow registry (whatever store other tests of the
    session pointed MLflow at)."""
    (base / f"{name}.toml").write_text(config, encoding="utf-8")
    (base / f"{name}.geojson").write_text(boundary, encoding="utf-8")
    (base / "project" / "mlruns").mkdir(parents=True)
    return {"URBAN_SAFETY_CITY": str(base / f"{name}.toml"), "URBAN_SAFETY_DATA_DIR": str(base / "data"),
            "URBAN_SAFETY_ROOT": str(base / "project"), "BENTOML_HOME": str(base / "bentoml"), "COLUMNS": "250",
            "MLFLOW_TRACKING_URI": f"sqlite:///{base / 'project' / 'mlruns' / 'mlflow.db'}"}


def cli(env: dict):
    """``run(*args)``: the CLI in-process under ``env``; asserts exit 0 and returns the output on one line."""
    from typer.testing import CliRunner

    from urban_safety.cli import app

    runner = CliRunner()

    def run(*args) -> str:
        result = runner.invoke(app, list(args), env=env)
        flat = " ".join(result.output.split())
        assert result.exit_code == 0, flat
        return flat
    return run


@contextlib.contextmanager
def serve_city(env: dict, log_path: Path):
    """``urban-safety serve --prepare-only`` then a real ``bentoml serve`` for the city ``env`` configures;
    yields its URL once ``/readyz`` answers 200, and stops it after."""
    serve_env = {**os.environ, **env}
    prepared = subprocess.run([sys.executable, "-m", "urban_safety.cli", "serve", "--prepare-only"], env=serve_env,
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "serving.service:RiskService", "--host",
                                 "127.0.0.1", "--port", str(port)], env=serve_env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log_path)
        yield url
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def http(served):
    """An HTTP client of the served process."""
    with httpx.Client(base_url=served, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def catalogue(http) -> dict:
    """GET /domains of the served process."""
    return http.get("/domains").json()


@pytest.fixture(scope="session")
def served(small_tables, tmp_path_factory):
    """Train tiny champions, import them into a private BentoML home, start the server; yield its URL."""
    bentoml_home = tmp_path_factory.mktemp("bentoml")
    env_keep = {k: os.environ.get(k) for k in ("BENTOML_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["BENTOML_HOME"] = str(bentoml_home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        for spec in domains().values():
            train_domain(spec, small_tables, TINY)
        # BentoML reads BENTOML_HOME when first used, so the import runs in its own process.
        env = {**os.environ, "URBAN_SAFETY_DATA_DIR": str(small_tables.data), "URBAN_SAFETY_ROOT": str(small_tables.root),
               "URBAN_SAFETY_GRID_M": str(small_tables.grid_m), "URBAN_SAFETY_YEARS": "1",
               "URBAN_SAFETY_START": str(small_tables.start), "URBAN_SAFETY_SEED": str(small_tables.seed),
               "URBAN_SAFETY_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
               # A stream connection's length: long enough for a test's events, short enough that a fuzzed
               # GET /alerts/stream does not hold the suite for the 45 s a dashboard gets.
               "URBAN_SAFETY_ALERT_STREAM_S": str(STREAM_S)}
        subprocess.run([sys.executable, "-m", "urban_safety.cli", "serve", "--prepare-only"], env=env, check=True,
                       cwd=ROOT, capture_output=True)
        port = free_port()
        log = open(tmp_path_factory.mktemp("logs") / "server.log", "w")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "serving.service:RiskService",
                                 "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc, Path(log.name))
            yield url
        finally:
            stop_server(proc)
    finally:
        for k, v in env_keep.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

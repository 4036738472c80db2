"""The two browser UIs over the project's stores: MLflow's (runs, registry) and optuna-dashboard (studies).

Both read the same stores as training: MLflow's tracking store (``Settings.tracking_uri``: SQLite in
``mlruns/`` or ``MLFLOW_TRACKING_URI``) and Optuna's storage (``Settings.optuna_url``: SQLite in
``mlruns/`` or ``URBAN_SAFETY_OPTUNA_STORAGE``, e.g. PostgreSQL). When ``MLFLOW_TRACKING_URI`` is already
an MLflow server (http/https), that server *is* the UI and only its address is printed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from features.errors import UrbanSafetyError
from urban_safety.settings import Settings


class UIFailed(UrbanSafetyError):
    """A UI process exited or did not answer in time."""


@dataclass(frozen=True)
class UI:
    name: str
    url: str
    command: tuple[str, ...] | None  # None: an existing server, nothing to start
    env: tuple[tuple[str, str], ...] = ()  # added to the environment of the process


def _tool(name: str) -> str:
    """The console script of this environment (next to the interpreter), else the one on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def plan(settings: Settings, host: str = "127.0.0.1", mlflow_port: int = 5000,
         optuna_port: int = 8080) -> list[UI]:
    """What to start (or only show) for the MLflow UI and optuna-dashboard on the configured stores."""
    tracking = settings.tracking_uri
    if tracking.startswith(("http://", "https://")):
        mlflow_ui = UI("MLflow", tracking, None)
    else:
        # One worker: a browsing UI for a few people, and the machine's cores belong to training and serving.
        command = [_tool("mlflow"), "ui", "--backend-store-uri", tracking, "--host", host, "--port",
                   str(mlflow_port), "--workers", "1"]
        if tracking.startswith("sqlite:"):
            # New experiments of the local store keep artifacts in mlruns/artifacts, as training does.
            command += ["--default-artifact-root", (settings.mlruns_dir / "artifacts").resolve().as_uri()]
        # No job runner: it serves GenAI evaluation jobs (a dozen huey workers), not browsing runs.
        mlflow_ui = UI("MLflow", f"http://{host}:{mlflow_port}", tuple(command),
                       (("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false"),))
    optuna_ui = UI("optuna-dashboard", f"http://{host}:{optuna_port}",
                   (_tool("optuna-dashboard"), settings.optuna_url, "--host", host, "--port", str(optuna_port)))
    return [mlflow_ui, optuna_ui]


def prepare_stores(settings: Settings) -> None:
    """Create the local store folder and Optuna's schema if missing (optuna-dashboard will not create it)."""
    import optuna

    for url in (settings.tracking_uri, settings.optuna_url):
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    optuna.storages.RDBStorage(settings.optuna_url)


def wait_until_up(url: str, proc: subprocess.Popen | None, timeout_s: float = 120.0) -> None:
    """Poll ``url`` until it answers HTTP (any status below 500); fail if ``proc`` exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise UIFailed(f"{url}: the process exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status < 500:
                    return
        except urllib.error.HTTPError as error:
            if error.code < 500:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise UIFailed(f"{url} did not answer within {timeout_s:.0f} s")


def start(uis: list[UI]) -> list[subprocess.Popen]:
    """Start every UI that needs a process and wait until each answers; stops them all on failure."""
    procs: list[subprocess.Popen] = []
    try:
        for ui in uis:
            if ui.command is not None:
                procs.append(subprocess.Popen(ui.command, env={**os.environ, **dict(ui.env)},
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                              start_new_session=True))
        running = iter(procs)
        for ui in uis:
            wait_until_up(ui.url, next(running) if ui.command is not None else None)
    except BaseException:
        stop(procs)
        raise
    return procs


def stop(procs: list[subprocess.Popen], grace_s: float = 10.0) -> None:
    """Terminate the UI processes (and their workers: each leads its own process group)."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

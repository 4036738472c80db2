"""MLflow set-up: the tracking store, experiments with artifacts under ``mlruns/``, and run provenance.

Also the two guards around a training job on a local store: a file lock that serializes jobs sharing
the SQLite files (SQLite takes one writer; two jobs at once would hit "database is locked" or worse), and
the clean-up of parent runs whose process was killed (they would otherwise stay RUNNING forever).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import mlflow
from filelock import FileLock, Timeout
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from features.errors import UrbanSafetyError
from urban_safety.settings import Settings

log = logging.getLogger("urban_safety.training")

LOCK_TIMEOUT_S = 3 * 3600  # a full-profile job can take hours; a waiting job gives up after this
HOST_TAG, PID_TAG, FAILURE_TAG = "host", "pid", "failure_reason"


class StoreBusy(UrbanSafetyError):
    """Another training job kept the local store's lock for longer than this job would wait."""


class TrackingUnavailable(UrbanSafetyError):
    """``MLFLOW_TRACKING_URI`` names a tracking server that does not answer."""


def check_server(uri: str, timeout: float = 10.0) -> None:
    """For an ``http(s)://`` tracking URI, ask the server's ``/health`` once (``timeout`` seconds) and raise
    :class:`TrackingUnavailable` naming it when it does not answer OK; other URIs are left alone. (MLflow's
    own client would retry for minutes before failing with a long trace.)"""
    if not uri.startswith(("http://", "https://")):
        return
    shown = re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", uri)  # no password in a message
    try:
        response = httpx.get(uri.rstrip("/") + "/health", timeout=timeout)
    except httpx.HTTPError as exc:
        raise TrackingUnavailable(f"no MLflow tracking server answers at {shown} (MLFLOW_TRACKING_URI): "
                                  f"{type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise TrackingUnavailable(f"the MLflow tracking server at {shown} (MLFLOW_TRACKING_URI) is not healthy: "
                                  f"HTTP {response.status_code} on /health")


def city_suffix(city_key: str | None = None) -> str:
    """"" for the default city, else ``-<city key>``; None: the configured city's (``URBAN_SAFETY_CITY``)."""
    from urban_safety.settings import get_settings

    key = get_settings().city_key if city_key is None else city_key
    return f"-{key}" if key else ""


def experiment_name(domain: str, city_key: str | None = None) -> str:
    """``urban-safety-<domain>``, qualified by the city for any but the default: ``urban-safety-flood-daejeon``
    (one store may hold every city's runs without mixing them)."""
    return f"urban-safety-{domain}{city_suffix(city_key)}"


def registered_name(domain: str, city_key: str | None = None) -> str:
    """The registered model of a domain's champion, named as its experiment (:func:`experiment_name`)."""
    return experiment_name(domain, city_key)


def configure(settings: Settings) -> MlflowClient:
    """Point MLflow at the project's store (creating ``mlruns/`` for the default SQLite one); a tracking
    server must answer first (:class:`TrackingUnavailable` otherwise)."""
    uri = settings.tracking_uri
    check_server(uri)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(client: MlflowClient, settings: Settings, domain: str) -> str:
    """The domain's experiment id; a new one keeps its artifacts in ``mlruns/artifacts`` for a local store."""
    name = experiment_name(domain, settings.city_key)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if settings.tracking_uri.startswith("sqlite:"):
        location = (settings.mlruns_dir / "artifacts").resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException as exc:  # another worker on the same server created it a moment ago
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id


def git_commit(root: Path) -> str:
    """The checkout's commit, with ``-dirty`` when tracked files have changes; ``unknown`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def uses_local_store(settings: Settings) -> bool:
    """True when MLflow or Optuna keeps its data in SQLite, which takes one training job at a time."""
    return settings.tracking_uri.startswith("sqlite:") or settings.optuna_url.startswith("sqlite:")


@contextmanager
def training_lock(settings: Settings, timeout: float = LOCK_TIMEOUT_S) -> Iterator[Path | None]:
    """Hold ``<mlruns>/train.lock`` for one job on a SQLite store (nothing for a server store, where jobs
    may run together). A second job says that it waits and fails with :class:`StoreBusy` after ``timeout``
    seconds. The lock is an OS lock (flock): a killed job releases it with its process."""
    if not uses_local_store(settings):
        yield None
        return
    path = settings.mlruns_dir / "train.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("another training job is using the store in %s: waiting up to %g s for %s",
                    settings.mlruns_dir, timeout, path)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise StoreBusy(f"another training job held {path} for more than {timeout:g} s; let it finish "
                            "(or stop it) and run again") from None
    try:
        yield path
    finally:
        lock.release()


def owner_tags() -> dict[str, str]:
    """Tags naming the process that runs a job, so a later job can tell whether it is still alive."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    return True


def fail_orphaned_runs(client: MlflowClient, experiment_id: str, domain: str) -> list[str]:
    """Mark FAILED the RUNNING parent runs of ``domain`` (and their RUNNING trial runs) started on this
    host by a process that no longer exists: a job killed with SIGKILL or by a power cut could not end
    its run. Runs of other hosts are left alone (their process cannot be checked from here). Returns
    the ids of the parent runs it failed."""
    host, failed = socket.gethostname(), []
    running = client.search_runs([experiment_id], f"tags.domain = '{domain}' and attributes.status = 'RUNNING'")
    for run in running:
        tags = run.data.tags
        if "mlflow.parentRunId" in tags or tags.get(HOST_TAG) != host or not tags.get(PID_TAG, "").isdigit():
            continue
        pid = int(tags[PID_TAG])
        if _alive(pid):
            continue
        reason = (f"process {pid} on {host} ended without finishing the run (killed?); marked failed by the "
                  f"next training job of {domain} (process {os.getpid()})")
        trials = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}' "
                                                     "and attributes.status = 'RUNNING'")
        for child in [*trials, run]:
            client.set_tag(child.info.run_id, FAILURE_TAG, reason)
            client.set_terminated(child.info.run_id, status="FAILED")
        log.warning("run %s of %s: %s", run.info.run_id, domain, reason)
        failed.append(run.info.run_id)
    return failed

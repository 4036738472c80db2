"""MLflow set-up: the tracking store, experiments with artifacts under ``mlruns/``, and run provenance."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from urban_safety.settings import Settings


def experiment_name(domain: str) -> str:
    return f"urban-safety-{domain}"


def registered_name(domain: str) -> str:
    return f"urban-safety-{domain}"


def configure(settings: Settings) -> MlflowClient:
    """Point MLflow at the project's store (creating ``mlruns/`` for the default SQLite one)."""
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(client: MlflowClient, settings: Settings, domain: str) -> str:
    """The domain's experiment id; a new one keeps its artifacts in ``mlruns/artifacts`` for a local store."""
    name = experiment_name(domain)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if settings.tracking_uri.startswith("sqlite:"):
        location = (settings.mlruns_dir / "artifacts").resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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

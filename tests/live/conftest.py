"""Observation stores to test against: an embedded SQLite file, and the real PostgreSQL server.

PostgreSQL runs at ``URBAN_SAFETY_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``, trust
auth, as on the project's machines; ``scripts/test.sh`` installs and starts Debian's server where it is
missing and it can). Each test gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("URBAN_SAFETY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_url() -> str:
    return PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)


def pg_available() -> str | None:
    """None when the server answers, else why not."""
    try:
        with sa.create_engine(_pg_url()).connect() as conn:
            conn.exec_driver_sql("select 1")
        return None
    except Exception as exc:  # no server, no driver, no database
        return f"no PostgreSQL at {PG_URL}: {type(exc).__name__}: {str(exc).splitlines()[0]}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh, empty store URL of each engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'live.db'}"
        return
    why = pg_available()
    if why:
        pytest.skip(why)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(_pg_url())
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    yield f"{_pg_url()}?options=-csearch_path%3D{schema}"
    from live.db import database

    database.cache_clear()
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


@pytest.fixture(scope="session")
def tiny_champions(small_tables, tmp_path_factory):
    """A project folder whose MLflow store (``mlruns/``) holds tiny champions of every domain, trained once per
    session on the small city: a module copies it (``shutil.copytree``) as its ``URBAN_SAFETY_ROOT`` instead of
    training its own. Treat as read-only (the copies' registry points at the artifacts here)."""
    from features.registry import domains
    from tests.serving.conftest import TINY
    from training.train import train_domain

    root = tmp_path_factory.mktemp("tiny-champions")
    settings = small_tables.model_copy(update={"root": root})
    kept = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        for spec in domains().values():
            train_domain(spec, settings, TINY)
    finally:
        if kept is not None:
            os.environ["MLFLOW_TRACKING_URI"] = kept
    return root

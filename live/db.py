"""The one database behind live operation: observations, ingest batches, cycle maps and alerts.

The embedded default is SQLite under ``data/`` (no server: Python ships it; WAL lets every service worker
read while one writer appends). A PostgreSQL URL (``URBAN_SAFETY_STORE_URL=postgresql://...``) selects
PostgreSQL for several replicas. Tables are SQLAlchemy Core tables on :data:`METADATA`, declared by the
module that owns them; :func:`database` creates what is missing.
"""

from __future__ import annotations

import importlib
import os
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from features.clock import KST  # noqa: F401  (KST re-exported)
from features.clock import now_kst as clock_now

METADATA = sa.MetaData()
#: Every time the live tables record is naive KST from :func:`now_kst`: the one clock of
#: ``features/clock.py`` (the wall clock unless configured for a test or replay).
TABLE_MODULES = ("live.store", "live.cycle", "live.alerts", "live.monitor")


def now_kst() -> datetime:
    """The clock's time in KST, naive, as the live tables record times (:func:`features.clock.now_kst`)."""
    return clock_now()


def store_url(settings) -> str:
    """``URBAN_SAFETY_STORE_URL`` if set (any SQLAlchemy URL; ``postgresql://`` uses psycopg 3), else SQLite
    at ``<data>/live.db``."""
    url = os.environ.get("URBAN_SAFETY_STORE_URL") or f"sqlite:///{Path(settings.data) / 'live.db'}"
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, nor it them
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; WAL keeps every commit atomic
    cur.execute("PRAGMA busy_timeout=30000")  # a second writer waits its turn instead of failing
    cur.close()
    # SQLAlchemy's documented recipe: let it issue BEGIN itself, so a writer can take the lock up front.
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn) -> None:
    # A writer reads what it merges into: BEGIN IMMEDIATE takes the write lock before that read, so two
    # writers queue (busy_timeout) instead of deadlocking on the upgrade. Readers start plain transactions.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("writer") else "BEGIN")


def writing(engine: sa.Engine):
    """A transaction that writes: serialised with every other writer (SQLite and PostgreSQL alike)."""
    return engine.execution_options(writer=True).begin()


#: The grid whose cells the store's maps and alerts name: one row, ``key = 'grid'``.
STORE_GRID = sa.Table("store_grid", METADATA, sa.Column("key", sa.String(16), primary_key=True),
                      sa.Column("grid", sa.String(80), nullable=False))
CELL_TABLES = ("cycle_maps", "alerts")  # tables whose rows name cells
#: Indexes a store made before may hold and that no longer say what is true: one open alert per (domain,
#: lead) became one per (domain, lead, subject) when earthquakes got alerts of their own.
RETIRED_INDEXES = ("alerts_one_open",)


def grid_key(grid) -> str:
    """``<city>-<size>:<16 hex of the SHA-256 of the cell ids in order>``: what a store's cells belong to."""
    import hashlib

    digest = hashlib.sha256("\n".join(grid.cells["cell_id"]).encode()).hexdigest()[:16]
    return f"{grid.city.code}-{grid.size_m}:{digest}"


def claim_grid(engine: sa.Engine, grid, where: str) -> None:
    """Record that the store at ``where`` holds state of ``grid``, or raise :class:`DataError` when it holds
    another grid's (another city or cell size, or one made before the city's real outline): its maps and
    alerts name cells that no longer exist, so the store is refused, never mixed."""
    from features.errors import DataError

    key = grid_key(grid)
    with writing(engine) as conn:
        held = conn.execute(sa.select(STORE_GRID.c.grid).where(STORE_GRID.c.key == "grid")).scalar()
        if held is None:
            names = set(sa.inspect(conn).get_table_names())
            used = any(conn.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar()
                       for t in CELL_TABLES if t in names)
            if not used:
                conn.execute(STORE_GRID.insert().values(key="grid", grid=key))
                return
            held = "a grid from before the store recorded its grid (before the real city outlines)"
        if held != key:
            raise DataError(f"the live store {where} holds maps and alerts of {held}, not of the configured grid "
                            f"{key}: its cells no longer exist. Start afresh: stop the service, move the store "
                            "aside (or drop its database), and start again (observations are re-read from the "
                            "raw files and the inbox)")


@lru_cache(maxsize=8)
def database(url: str) -> sa.Engine:
    """The engine for ``url`` (one per process and URL), with every table of :data:`METADATA` created."""
    for module in TABLE_MODULES:  # declare every table before creating them
        importlib.import_module(module)

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    METADATA.create_all(engine)
    _add_new_columns(engine)
    with writing(engine) as conn:
        for name in RETIRED_INDEXES:
            conn.exec_driver_sql(f'DROP INDEX IF EXISTS "{name}"')
    return engine


def _add_new_columns(engine: sa.Engine) -> None:
    """Columns and indexes declared since a store was created, added to it (nullable columns only:
    ``create_all`` makes missing tables, never missing columns or indexes). A store from before a column
    reads it as NULL in old rows."""
    inspector = sa.inspect(engine)
    with writing(engine) as conn:
        for table in METADATA.sorted_tables:
            held = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in held and column.nullable:
                    kind = column.type.compile(dialect=engine.dialect)
                    conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')
            for index in table.indexes:  # IF NOT EXISTS: reflection does not see an index on an expression
                conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))

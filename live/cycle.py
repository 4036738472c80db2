"""The live cycle: take new observations, re-score every cell of every domain, keep the maps, raise alerts.

Each cycle's whole-city maps are kept (``cycle_maps``: GeoJSON bytes, zlib-compressed) so a dashboard can
replay the last 24 hours; ``cycles`` records when it ran, the data time it answered for and how long each
step took.
"""

from __future__ import annotations

import sqlalchemy as sa

from live.db import METADATA

CYCLES = sa.Table(
    "cycles", METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("started_at", sa.DateTime, nullable=False),  # wall clock, KST
    sa.Column("store_version", sa.BigInteger, nullable=False),  # the observations it saw
    sa.Column("data_time", sa.DateTime),  # the newest hour it answered for
    sa.Column("seconds", sa.Float),  # new data -> refreshed maps, wall time
    sa.Column("timings", sa.Text),  # JSON: {"ingest": s, "flood": s, ...}
)
CYCLE_MAPS = sa.Table(
    "cycle_maps", METADATA,
    sa.Column("cycle", sa.BigInteger, primary_key=True),
    sa.Column("domain", sa.Text, primary_key=True),
    sa.Column("lead_hours", sa.Integer, primary_key=True),  # 0 where the domain has no lead
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("levels", sa.Text, nullable=False),  # JSON: {"Normal": n, ..., "unknown": n}
    sa.Column("geojson", sa.LargeBinary, nullable=False),  # zlib-compressed /risk_map body
)

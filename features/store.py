"""Feature tables on disk: Parquet with the domain and feature-set version in the file's metadata.

Writes are atomic: a table is written to a temporary file in the same folder and renamed over the old
one, so a failed or interrupted build leaves the previous table intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

META_KEY = b"urban_safety"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_table(frame: pd.DataFrame, path: Path, meta: dict) -> Path:
    """Write ``frame`` to ``path`` atomically with ``meta`` (JSON) in the Parquet schema metadata."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           META_KEY: json.dumps(meta).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def read_meta(path: Path) -> dict:
    """The metadata written with a table, without reading its rows."""
    return json.loads(pq.read_schema(path).metadata.get(META_KEY, b"{}"))


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)

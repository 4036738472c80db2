"""Feature tables on disk: a domain's table is a set of Parquet parts under ``features/<domain>/``.

A table is built and written part by part (a time span or a set of scenarios each), so building it never
holds more than one part in memory, and it is read back the same way (:func:`iter_parts`), or only the
columns asked for (:func:`read_columns`). Floating-point columns are stored as float32: measurements and
features carry far fewer than float32's seven significant digits, and it halves memory and disk.

Writes are atomic: the parts go to a new build folder beside the current one, and ``manifest.json`` (the
domain, its feature-set version, the build folder and its parts, each with its file name, row count and the
SHA-256 of its file, hashed once right after it is written) is replaced onto the new build only when
every part is written; then the old build folder is removed. A failed or interrupted build leaves the
previous table intact and removes its own folder. Manifests written before parts carried their SHA-256
have entries without it; readers hash those parts' files instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "manifest.json"
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
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the file is the product's, readable as any it writes
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_table(frame: pd.DataFrame, path: Path, meta: dict) -> Path:
    """Write one small table (the generator's truth) to a single Parquet file, atomically, with ``meta``
    (JSON) in the schema metadata; the values as they are."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def file_sha256(path: Path) -> str:
    """The SHA-256 (hex) of the file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def compact(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its float64 columns as float32 (other columns untouched)."""
    wide = [c for c, t in frame.dtypes.items() if t == np.float64]
    return frame.astype(dict.fromkeys(wide, np.float32)) if wide else frame


def write_parts(parts: Iterable[pd.DataFrame], folder: Path, meta: dict) -> list[dict]:
    """Write every frame of ``parts`` as one Parquet part of the table in ``folder``, then commit the table.

    Returns the manifest's part entries (``file``, ``rows``, ``sha256`` of the written file, which identifies
    the table's contents for training without reading the parts again). Empty frames are skipped. Whatever
    goes wrong (the iterator raising, a full disk, an interrupt), the previous table stays as it was.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    build = folder / f"build-{uuid.uuid4().hex[:12]}"
    build.mkdir()
    try:
        entries = []
        for frame in parts:
            if frame.empty:
                continue
            name = f"part-{len(entries):05d}.parquet"
            table = pa.Table.from_pandas(compact(frame), preserve_index=False)
            pq.write_table(table, build / name, compression="zstd")
            entries.append({"file": name, "rows": len(frame), "sha256": file_sha256(build / name)})
        manifest = {**meta, "build": build.name, "parts": entries}
        with atomic_path(folder / MANIFEST) as tmp:
            tmp.write_text(json.dumps(manifest, indent=1))
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    for old in folder.glob("build-*"):  # the previous build, and any an interrupted one left behind
        if old != build:
            shutil.rmtree(old, ignore_errors=True)
    return entries


def exists(folder: Path) -> bool:
    """Whether a table has been committed in ``folder``."""
    return (Path(folder) / MANIFEST).exists()


def read_meta(folder: Path) -> dict:
    """The table's manifest (its metadata and parts) without reading any rows."""
    return json.loads((Path(folder) / MANIFEST).read_text())


def part_files(folder: Path, meta: dict | None = None) -> list[Path]:
    """The parts' files of the table in ``folder``, as its manifest ``meta`` (read when None) lists them."""
    meta = read_meta(folder) if meta is None else meta
    return [Path(folder) / meta["build"] / p["file"] for p in meta["parts"]]


def locate(part_rows, stored: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """For sorted stored row numbers ``stored`` of a table whose parts hold ``part_rows`` rows each:
    ``(part index, row numbers within the part)`` of every part holding some of them, in order."""
    edges = np.cumsum([0, *part_rows])
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        a, b = np.searchsorted(stored, [lo, hi])
        if a < b:
            yield k, stored[a:b] - lo


def take(files: list[Path], part_rows, stored: np.ndarray, columns: list[str] | None = None) -> pd.DataFrame:
    """The rows at sorted stored row numbers ``stored`` (or their ``columns``), in that order, reading only
    the parts holding them (``files`` and ``part_rows`` as the manifest lists them)."""
    frames = [pd.read_parquet(files[k], columns=columns).iloc[local] for k, local in locate(part_rows, stored)]
    if not frames:
        return pd.read_parquet(files[0], columns=columns).iloc[:0].reset_index(drop=True)
    return pd.concat(frames, ignore_index=True)


def iter_parts(folder: Path, columns: list[str] | None = None, meta: dict | None = None) -> Iterator[pd.DataFrame]:
    """The table's parts in order (the order they were built: time order for every domain); ``meta``: the
    manifest already read (one build throughout), else it is read."""
    for path in part_files(folder, meta):
        yield pd.read_parquet(path, columns=columns)


def read_columns(folder: Path, columns: list[str], meta: dict | None = None) -> pd.DataFrame:
    """Only ``columns`` of every part, concatenated (a few columns of a large table fit in memory)."""
    return pd.concat(list(iter_parts(folder, columns, meta)), ignore_index=True)


def read_table(folder: Path) -> pd.DataFrame:
    """The whole table in memory (small tables, tests and benchmarks)."""
    return pd.concat(list(iter_parts(folder)), ignore_index=True)


def sample(folder: Path, n: int, columns: list[str], seed: int = 0) -> pd.DataFrame:
    """``n`` rows drawn uniformly without replacement (all rows if fewer), reading only the parts holding them."""
    meta = read_meta(folder)
    rows = [p["rows"] for p in meta["parts"]]
    total = sum(rows)
    picked = np.sort(np.random.default_rng(seed).choice(total, min(n, total), replace=False))
    return take(part_files(folder, meta), rows, picked, columns)

"""Build a domain's feature table from the raw sources, part by part, and write it atomically."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from features.errors import DataError
from features.registry import DomainSpec
from features.sources import Sources
from features.store import write_parts

#: Rows a domain's builder puts in one part (about 0.4 GB of float32 features at 50 columns): what bounds
#: a build's memory, whatever the size of the city.
ROWS_PER_PART = 2_000_000


@dataclass(frozen=True)
class BuildResult:
    domain: str
    path: Path
    rows: int
    columns: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    positives: float  # label sum (events, accidents) or mean for regression targets
    seconds: float
    unknown: int = 0  # rows left out for a missing essential input
    parts: int = 1


def table_path(features_dir: Path, domain: str) -> Path:
    """The folder holding a domain's table (its manifest and parts)."""
    return Path(features_dir) / domain


def table_parts(spec: DomainSpec, sources: Sources, rows_per_part: int = ROWS_PER_PART) -> Iterator[pd.DataFrame]:
    """The domain's training table in parts: its builder's parts, or its whole table as one part."""
    if spec.build_parts is not None:
        yield from spec.build_parts(sources, rows_per_part)
    else:
        yield spec.build_table(sources)


def build_features(spec: DomainSpec, sources: Sources, features_dir: Path,
                   rows_per_part: int = ROWS_PER_PART) -> BuildResult:
    """Build ``spec``'s training table from ``sources`` into ``<features_dir>/<domain>/``, one part at a time."""
    started = time.perf_counter()
    if getattr(sources, "city", None) is not None:  # inputs the city has no station for: not applicable
        spec = spec.for_city(sources.city)
    tally = {"rows": 0, "unknown": 0, "target": 0.0, "start": None, "end": None, "columns": 0}

    def checked() -> Iterator[pd.DataFrame]:
        for table in table_parts(spec, sources, rows_per_part):
            missing = [c for c in (*spec.keys, spec.time, *spec.features, spec.target) if c not in table.columns]
            if missing:
                raise DataError(f"{spec.name} builder did not produce columns {missing}")
            # The service answers a row missing an essential input as unknown; a model must not learn otherwise.
            if spec.essential:
                unknown = table[list(spec.essential)].isna().any(axis=1).to_numpy()
                tally["unknown"] += int(unknown.sum())
                table = table.loc[~unknown].reset_index(drop=True)
            if table.empty:
                continue
            times = table[spec.time]
            tally["rows"] += len(table)
            tally["columns"] = table.shape[1]
            tally["target"] += float(table[spec.target].sum())
            tally["start"] = times.min() if tally["start"] is None else min(tally["start"], times.min())
            tally["end"] = times.max() if tally["end"] is None else max(tally["end"], times.max())
            yield table
        if not tally["rows"]:
            raise DataError(f"{spec.name}: the feature table is empty (is the raw data for {spec.sources} there?)")

    meta = {
        "domain": spec.name,
        "feature_set_version": spec.feature_set_version,
        "keys": list(spec.keys),
        "time": spec.time,
        "features": list(spec.features),
        "target": spec.target,
        "weight": spec.weight,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = table_path(features_dir, spec.name)
    parts = write_parts(checked(), path, meta)
    rows = tally["rows"]
    return BuildResult(
        domain=spec.name, path=path, rows=rows, columns=tally["columns"], start=tally["start"], end=tally["end"],
        positives=tally["target"] if spec.task != "regression" else tally["target"] / rows,
        seconds=time.perf_counter() - started, unknown=tally["unknown"], parts=len(parts),
    )

"""Build a domain's feature table from the raw sources and write it atomically."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from features.errors import DataError
from features.registry import DomainSpec
from features.sources import Sources
from features.store import write_table


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


def table_path(features_dir: Path, domain: str) -> Path:
    return Path(features_dir) / f"{domain}.parquet"


def build_features(spec: DomainSpec, sources: Sources, features_dir: Path) -> BuildResult:
    """Build ``spec``'s training table from ``sources`` and write ``<features_dir>/<domain>.parquet``."""
    started = time.perf_counter()
    if getattr(sources, "city", None) is not None:  # inputs the city has no station for: not applicable
        spec = spec.for_city(sources.city)
    table = spec.build_table(sources)
    missing = [c for c in (*spec.keys, spec.time, *spec.features, spec.target) if c not in table.columns]
    if missing:
        raise DataError(f"{spec.name} builder did not produce columns {missing}")
    # The service answers a row missing an essential input as unknown; a model must not learn otherwise.
    unknown = table[list(spec.essential)].isna().any(axis=1).to_numpy() if spec.essential else None
    if unknown is not None and unknown.any():
        table = table.loc[~unknown].reset_index(drop=True)
    if table.empty:
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
    path = write_table(table, table_path(features_dir, spec.name), meta)
    times = table[spec.time]
    target = table[spec.target]
    return BuildResult(
        domain=spec.name, path=path, rows=len(table), columns=table.shape[1],
        start=times.min(), end=times.max(),
        positives=float(target.sum() if spec.task != "regression" else target.mean()),
        seconds=time.perf_counter() - started, unknown=int(unknown.sum()) if unknown is not None else 0,
    )

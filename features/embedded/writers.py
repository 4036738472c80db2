"""Writing raw files exactly as the source formats say (header, file name pattern, encoding)."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np
import pandas as pd

from features.sources.formats import FORMATS, SourceFormat
from features.store import write_table


def write_csv(frame: pd.DataFrame, raw_dir: Path, source: str, name: str) -> int:
    """Write one raw file of ``source`` into ``raw_dir/<source>/name``; returns its row count.

    The header must equal the format's columns, in order, and the name must match its glob, so a
    generator bug fails here rather than in a loader.
    """
    fmt: SourceFormat = FORMATS[source]
    if tuple(frame.columns) != fmt.columns:
        raise ValueError(f"{source}: columns {list(frame.columns)} differ from the format {list(fmt.columns)}")
    if not fnmatch.fnmatch(name, fmt.pattern):
        raise ValueError(f"{source}: file name {name!r} does not match {fmt.pattern!r}")
    folder = raw_dir / source
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / name, index=False, encoding=fmt.encoding, na_rep="", lineterminator="\n")
    return len(frame)


def write_by_year(frame: pd.DataFrame, years, raw_dir: Path, source: str, template: str,
                  all_years=()) -> dict:
    """Split ``frame`` by ``years`` (one value per row) into ``template.format(year=...)`` files.

    Years in ``all_years`` without rows still get a file with just the header (e.g. a year without floods).
    """
    summary = {"files": 0, "rows": 0}
    years = pd.Series(np.asarray(years), index=frame.index)
    for year in sorted(set(years.unique()) | set(all_years)):
        rows = write_csv(frame.loc[years == year], raw_dir, source, template.format(year=year))
        summary["files"] += 1
        summary["rows"] += rows
    return summary


def write_truth(frame: pd.DataFrame, truth_dir: Path, name: str, meta: dict) -> int:
    """Write one truth table (Parquet) for evaluation."""
    truth_dir.mkdir(parents=True, exist_ok=True)
    write_table(frame.reset_index(drop=True), truth_dir / name, {"truth": name, **meta})
    return len(frame)

"""A domain's feature table as training reads it: a few columns of every row, whole rows only where needed.

The table is stored in parts (``features.store``); training never holds it whole. It reads the time,
label and weight of every row (:meth:`TrainingTable.open`), puts the rows in time order, and then takes
whole rows by position for the tuning sample, the holdout and the baseline's history (:meth:`rows`), or
streams the feature matrix part by part for the final fit (:meth:`feature_parts`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.build import table_path
from features.errors import DataError
from features.registry import DomainSpec
from features.store import MANIFEST, file_sha256, locate, part_files, read_columns, read_meta, take
from urban_safety.settings import Settings


def table_sha256(path: Path, meta: dict) -> str:
    """The digest of the table's contents: SHA-256 over its parts' SHA-256 hex digests in order, each as the
    manifest ``meta`` records it, or hashed from the part's file for a manifest written before parts carried
    one. Equal parts give an equal digest, whichever build folder holds them."""
    return hashlib.sha256("".join(p.get("sha256") or file_sha256(path / meta["build"] / p["file"])
                                  for p in meta["parts"]).encode()).hexdigest()


@dataclass
class TrainingTable:
    spec: DomainSpec
    path: Path
    sha256: str  # of the parts' contents: a new build of the same rows keeps the study
    order: np.ndarray  # stored row number of each row in time order
    times: pd.Series  # in time order
    y: np.ndarray  # label, in time order
    w: np.ndarray  # weight (1 without a weight column), in time order
    part_rows: np.ndarray  # rows per stored part
    files: list[Path]  # the parts' files, from the manifest read once at open (one build throughout)

    @classmethod
    def open(cls, spec: DomainSpec, settings: Settings) -> TrainingTable:
        """The domain's table with its time, label and weight read; DataError when it is missing or was
        built by another feature-set version (both say which command rebuilds it)."""
        path = table_path(settings.features_dir, spec.name)
        rebuild = f"`urban-safety features build --domain {spec.name}`"
        if not (path / MANIFEST).exists():
            raise DataError(f"no feature table in {path}: run {rebuild}")
        meta = read_meta(path)
        version = meta.get("feature_set_version")
        if version != spec.feature_set_version:
            raise DataError(f"{path} has feature set {version}, the code expects {spec.feature_set_version}: "
                            f"rebuild it with {rebuild}")
        columns = [spec.time, spec.target, *([spec.weight] if spec.weight else [])]
        index = read_columns(path, columns, meta)
        order = np.argsort(index[spec.time].to_numpy(), kind="stable")
        return cls(spec=spec, path=path, sha256=table_sha256(path, meta), order=order,
                   times=index[spec.time].iloc[order].reset_index(drop=True),
                   y=index[spec.target].to_numpy(dtype=float)[order],
                   w=index[spec.weight].to_numpy(dtype=float)[order] if spec.weight else np.ones(len(order)),
                   part_rows=np.array([p["rows"] for p in meta["parts"]]), files=part_files(path, meta))

    def __len__(self) -> int:
        return len(self.order)

    def rows(self, positions: np.ndarray, columns: list[str] | None = None) -> pd.DataFrame:
        """Whole rows (or ``columns``) at ``positions`` of the time order, in that order; only the parts
        holding them are read."""
        stored = self.order[np.asarray(positions, dtype=np.int64)]
        by_stored = np.argsort(stored, kind="stable")
        taken = take(self.files, self.part_rows, stored[by_stored], columns)
        back = np.empty_like(by_stored)
        back[by_stored] = np.arange(len(by_stored))
        return taken.iloc[back].reset_index(drop=True)

    def feature_parts(self, positions: np.ndarray, weights: np.ndarray) -> tuple[list, np.ndarray, np.ndarray]:
        """The rows at ``positions`` (of the time order) with their ``weights``, as ``(rows, load)`` per part
        for :func:`training.models.fit_parts` and the labels and weights in that same (stored) order."""
        stored = self.order[np.asarray(positions, dtype=np.int64)]
        by_stored = np.argsort(stored, kind="stable")
        stored = stored[by_stored]
        features = list(self.spec.features)
        parts = [(len(local), lambda path=self.files[k], local=local: pd.read_parquet(path, columns=features)
                  .to_numpy(dtype=np.float32, na_value=np.nan)[local]) for k, local in locate(self.part_rows, stored)]
        positions = np.asarray(positions)[by_stored]
        return parts, self.y[positions], np.asarray(weights, dtype=float)[by_stored]

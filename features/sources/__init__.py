"""Loaders for every raw source, shared by the embedded data and real exports.

Each loader module registers one function per source with :func:`loader`; :func:`load_files` validates
its output against the canonical schema and turns every failure into a :class:`DataError` naming the
file, row and column. :class:`Sources` is the lazily loaded bundle the feature builders read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path

import pandas as pd

from features.errors import DataError
from features.sources.formats import FORMATS, SIDECARS

LoaderFn = Callable[[Path], pd.DataFrame]
LOADERS: dict[str, LoaderFn] = {}


def loader(source: str) -> Callable[[LoaderFn], LoaderFn]:
    """Register ``fn(path) -> canonical frame`` as the loader of one source."""

    def register(fn: LoaderFn) -> LoaderFn:
        LOADERS[source] = fn
        return fn

    return register


def _ensure_registered() -> None:
    # Importing the modules registers their loaders; done lazily so importing this package is cheap.
    from features.sources import loaders  # noqa: F401


def source_files(raw_dir: Path, source: str) -> list[Path]:
    """The files of one source in the raw folder, sorted by name (a Shapefile's sidecars travel with its .shp)."""
    fmt = FORMATS[source]
    return sorted(f for f in (raw_dir / source).glob(fmt.pattern)
                  if f.is_file() and f.suffix.lower() not in SIDECARS)


def files_stamp(files: Iterable[Path]) -> str:
    """What identifies these files' contents cheaply: names, sizes and modification times (a hex digest)."""
    import hashlib

    return hashlib.sha256("".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns};" for f in files)
                          .encode()).hexdigest()


def missing_sources(raw_dir: Path, names: Iterable[str]) -> list[str]:
    """The sources among ``names`` with no file in the raw folder, each with the file pattern it needs."""
    return [f"{name} ({FORMATS[name].pattern} in {Path(raw_dir) / name})" for name in names
            if not source_files(Path(raw_dir), name)]


def load_files(source: str, files: Iterable[Path]) -> pd.DataFrame:
    """Load and validate files of one source into its canonical frame (raises :class:`DataError`)."""
    _ensure_registered()
    if source not in LOADERS:
        raise DataError(f"unknown source {source!r}; known: {', '.join(sorted(LOADERS))}")
    frames = [LOADERS[source](Path(f)) for f in files]
    if not frames:
        raise DataError(f"no files for source {source!r}")
    if len(frames) == 1:
        return frames[0]
    # Row numbers are a file's own (and pandas compares attrs when it concatenates).
    return pd.concat([_data_only(f) for f in frames], ignore_index=True)


def _data_only(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without what its loader noted about the file's rows (``attrs`` rows and dropped: for checks
    of one file, not the data)."""
    for name in ("rows", "dropped"):
        frame.attrs.pop(name, None)
    return frame


class Sources:
    """Canonical frames of every source under one raw folder, loaded on first use and kept."""

    def __init__(self, raw_dir: Path, city):
        self.raw_dir = Path(raw_dir)
        self.city = city
        self._frames: dict[str, pd.DataFrame] = {}

    @classmethod
    def from_settings(cls, settings) -> Sources:
        """The configured city's sources; a :class:`DataError` when the data folder holds another city's."""
        from features.city import check_data_city

        check_data_city(settings.data, settings.city_config)
        return cls(settings.raw_dir, settings.city_config)

    @classmethod
    def from_frames(cls, frames: dict[str, pd.DataFrame], city) -> Sources:
        """Sources held in memory (the service's snapshot): no raw folder behind them."""
        src = cls(Path("<in memory>"), city)
        src._frames = dict(frames)
        return src

    def loaded(self, names: Iterable[str]) -> dict[str, pd.DataFrame]:
        """The canonical frames of ``names`` that exist, loading them if needed (missing ones skipped)."""
        out = {}
        for name in names:
            try:
                out[name] = self[name]
            except DataError:
                continue
        return out

    def available(self, source: str) -> bool:
        """Whether ``source`` is held (in memory) or has files in the raw folder."""
        return source in self._frames or bool(source_files(self.raw_dir, source))

    def __getitem__(self, source: str) -> pd.DataFrame:
        if source not in self._frames:
            files = source_files(self.raw_dir, source)
            if not files:
                raise DataError(
                    f"no {source} files in {self.raw_dir / source} "
                    "(run `urban-safety data generate` or `urban-safety data import`)"
                )
            self._frames[source] = self._resolve(source, _data_only(load_files(source, files)))
        return self._frames[source]

    def _optional(self, source: str) -> pd.DataFrame | None:
        return self[source] if source_files(self.raw_dir, source) else None

    def _resolve(self, source: str, frame: pd.DataFrame) -> pd.DataFrame:
        """What the feature builders read: stations matched to the city by code or name, buildings placed."""
        if source == "airkorea":
            from features.sources.stations import usable_air

            return usable_air(frame, self.city)
        if source == "buildings":
            from features.sources.placement import placed

            return placed(frame, self._optional("parcels"), self._optional("addresses"))
        return frame

    def override(self, source: str, frame: pd.DataFrame) -> Sources:
        """A copy whose ``source`` frame is replaced (tests and what-if requests use this)."""
        return self.replaced({source: frame})

    def replaced(self, frames: dict[str, pd.DataFrame]) -> Sources:
        """A copy with these frames (already resolved) in place of its own; the grid is shared."""
        from features.timeseries import carry_memo

        copy = Sources(self.raw_dir, self.city)
        copy._frames = {**self._frames, **frames}
        copy.__dict__.update({k: v for k, v in self.__dict__.items() if k == "grid"})
        carry_memo(self, copy, frames)  # what reads none of the replaced frames (the building stock) stays
        return copy

    def resolve(self, source: str, frame: pd.DataFrame) -> pd.DataFrame:
        """A canonical frame as the builders read it (air stations matched to the city; see ``_resolve``)."""
        return self._resolve(source, frame)

    @cached_property
    def grid(self):
        from features.grid import build_grid

        return build_grid(self.city)

    @property
    def static(self) -> pd.DataFrame:
        """Static layers joined to the grid: one row per cell, indexed by ``cell_id``."""
        cells = self.grid.cells.set_index("cell_id")
        return cells.join(self["static"].set_index("cell_id"), how="left")

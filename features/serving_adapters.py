"""Shared pieces of the domains' serving adapters (:class:`features.registry.Serving`).

A domain's ``requests`` turns (cells, time, the client's conditions) into feature-builder requests,
its ``combine`` turns rows and predictions into one answer per cell, and its ``now`` says up to when
the held observations reach. The helpers here know nothing about any domain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from features.errors import DataError


def given(conditions: Mapping | None, names: Iterable[str]) -> dict:
    """The conditions among ``names`` that the client gave (absent or None = read from observations)."""
    conditions = conditions or {}
    return {name: conditions[name] for name in names if conditions.get(name) is not None}


def as_float(value) -> float:
    """A condition value as a float column value (booleans as 0/1)."""
    return float(value)


def cell_requests(cells: pd.DataFrame, columns: Mapping[str, object], before: Iterable[str] = ()) -> pd.DataFrame:
    """One request per cell: ``cell_id`` and each of ``columns`` (a constant, or an array per cell).

    Columns named in ``before`` come before ``cell_id`` (e.g. a key listed first in the spec).
    """
    n = len(cells)
    before = [c for c in before if c in columns]
    data: dict[str, object] = {}
    for name in [*before, "cell_id", *(c for c in columns if c not in before)]:
        if name == "cell_id":
            data[name] = cells["cell_id"].to_numpy()
            continue
        value = columns[name]
        if isinstance(value, pd.Timestamp):
            value = value.as_unit("ns").to_datetime64()
        data[name] = np.full(n, value) if np.ndim(value) == 0 else np.asarray(value)
    return pd.DataFrame(data)


def per_cell(rows: pd.DataFrame, value, cause=None, details=None, notes=None) -> pd.DataFrame:
    """The ``combine`` answer for rows that are already one per cell: cell_id, value, cause, details and
    notes (a list of sentences per cell on the fallbacks its inputs used, or None)."""
    n = len(rows)
    return pd.DataFrame({
        "cell_id": rows["cell_id"].to_numpy(),
        "value": np.asarray(value, dtype=float),
        "cause": np.full(n, None, dtype=object) if cause is None else np.asarray(cause, dtype=object),
        "details": np.full(n, None, dtype=object) if details is None else objects(details),
        "notes": np.full(n, None, dtype=object) if notes is None else objects(list(notes)),
    })


def join_notes(notes: list[np.ndarray], n: int) -> np.ndarray:
    """Per row, the list of the non-empty sentences among ``notes`` (arrays of str or None), or None."""
    out = np.full(n, None, dtype=object)
    for column in notes:
        for i in np.flatnonzero(pd.notna(column)):
            out[i] = [*(out[i] or []), column[i]]
    return out


def objects(items) -> np.ndarray:
    """A 1-d object array of ``items`` (dicts stay dicts; numpy would otherwise try to nest them)."""
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


def records(columns: Mapping[str, np.ndarray], digits: int = 3) -> list[dict]:
    """Row-wise dicts of numeric columns rounded to ``digits`` (NaN -> None), for ``details``."""
    names = list(columns)
    values = [np.round(np.asarray(columns[k], dtype=float), digits).tolist() for k in names]
    return [{k: (None if v != v else v) for k, v in zip(names, row, strict=True)}
            for row in zip(*values, strict=True)]


def last_time(frame: pd.DataFrame, time: str = "time", values: Iterable[str] | None = None) -> pd.Timestamp:
    """Latest ``time`` of a row with any of ``values`` present (any row when ``values`` is None)."""
    if values is not None:
        cols = [c for c in values if c in frame.columns]
        frame = frame.loc[frame[cols].notna().any(axis=1)] if cols else frame.iloc[:0]
    latest = pd.to_datetime(frame[time]).max() if len(frame) else pd.NaT
    if pd.isna(latest):
        raise DataError(f"no observations with {', '.join(values or [time])} to serve from")
    return pd.Timestamp(latest)

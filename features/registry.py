"""The domain registry: each domain is one declarative :class:`DomainSpec` in ``features/domains/``.

Shared code (the CLI, training, serving) loops over :func:`domains` and never tests a domain's name.
A fifth domain is one new module in ``features/domains/`` that calls :func:`register`.

The one feature code path: ``build_rows(sources, requests)`` turns *requests* (entity keys, the
prediction time and the domain's condition columns) into feature rows. The training table is
``build_table(sources)``, which derives requests from the observations and calls the same
``build_rows``; the service passes a client's requests to the same function.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import numpy as np
import pandas as pd

from features.metrics import Metric

Task = Literal["binary", "count", "regression"]

# The Korean four-step alert scale, lowest first: (Korean, English). Score bands 0-25, 25-50, 50-75, 75-100.
LEVELS = (("관심", "interest"), ("주의", "caution"), ("경계", "alert"), ("심각", "serious"))


@dataclass(frozen=True)
class Condition:
    """One field of a domain's request conditions, as the API documents and validates it."""

    name: str
    unit: str
    description: str
    example: float | int | bool | str
    minimum: float | None = None
    maximum: float | None = None
    kind: Literal["float", "int", "bool", "date"] = "float"
    required: bool = False  # optional fields are read from the observations the service holds


@dataclass(frozen=True)
class Levels:
    """Value -> 0-100 score: piecewise linear through ``breaks`` (the values scoring 0, 25, 50, 75, 100),
    on a log scale for probabilities and rates. The level is the score's quarter."""

    breaks: tuple[float, float, float, float, float]
    log: bool = False

    def score(self, values) -> np.ndarray:
        v = np.asarray(values, dtype=float)
        b = np.asarray(self.breaks, dtype=float)
        if self.log:
            v, b = np.log10(np.clip(v, b[0], None)), np.log10(b)
        return np.interp(v, b, [0.0, 25.0, 50.0, 75.0, 100.0])

    @staticmethod
    def level(scores) -> np.ndarray:
        """Index into :data:`LEVELS` for each score."""
        return np.clip(np.asarray(scores, dtype=float) // 25, 0, 3).astype(int)


@dataclass(frozen=True)
class Serving:
    """What the service needs to turn a client's request into feature rows and rows back into answers.

    ``requests(sources, cells, at, conditions)``: ``cells`` has cell_id, lat, lon (one row per asked
    location); returns feature-builder requests (the spec's keys, time and condition columns) plus a
    ``cell_id`` column saying which cell each row answers. Conditions the client left out are absent from
    ``conditions`` and read from the observations held, as the training table did.
    ``combine(rows, pred)``: one row per cell_id with ``value`` and optionally ``cause`` and ``details``
    (a dict per row, e.g. both PM values and the grade).
    ``now(sources)``: the default prediction time, the latest time the held observations support.
    """

    conditions: tuple[Condition, ...]
    levels: Levels
    value: str  # what the value is, e.g. "probability of flooding in the next 3 h"
    unit: str
    requests: Callable[..., pd.DataFrame]
    combine: Callable[..., pd.DataFrame]
    now: Callable[..., pd.Timestamp]
    scenarios: tuple[tuple[str, dict], ...] = ()  # ready (label, conditions) for dashboards, via GET /domains


@dataclass(frozen=True)
class DomainSpec:
    name: str  # registry key, module name, MLflow experiment suffix, API enum value
    title: str
    task: Task
    target: str  # label column in the feature table
    keys: tuple[str, ...]  # entity key columns, e.g. ("cell_id",)
    time: str  # column holding the prediction (issue) time: features use only data up to it
    horizon: timedelta  # how far ahead the label looks
    features: tuple[str, ...]  # model input columns, in order
    conditions: tuple[str, ...]  # request columns a caller supplies (besides keys and time)
    sources: tuple[str, ...]  # raw sources the builder reads
    feature_set_version: str
    build_table: Callable[..., pd.DataFrame]  # (sources) -> keys, time, conditions, features, target[, weight]
    build_rows: Callable[..., pd.DataFrame]  # (sources, requests) -> requests + features
    weight: str | None = None  # sample-weight column (e.g. for down-sampled zero rows)
    # Evaluation: metrics on the holdout, the one promotion compares on, the domain's baseline
    # (table rows -> predictions) and the oracle (table rows, truth folder -> true expected values).
    metrics: tuple[Metric, ...] = ()
    primary_metric: str = ""
    baseline: Callable[..., np.ndarray] | None = None
    oracle: Callable[..., np.ndarray] | None = None
    serving: Serving | None = None
    extra: dict = field(default_factory=dict)  # units, cause, grades: what serving needs to explain a score

    def metric(self, name: str | None = None) -> Metric:
        """A declared metric by name (the primary one by default)."""
        name = name or self.primary_metric
        return next(m for m in self.metrics if m.name == name)


_REGISTRY: dict[str, DomainSpec] = {}


def register(spec: DomainSpec) -> DomainSpec:
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"domain {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _discover() -> None:
    import features.domains as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{pkg.__name__}.{info.name}")


def domains() -> dict[str, DomainSpec]:
    """Every registered domain, by name, in a stable order."""
    if not _REGISTRY:
        _discover()
    return dict(sorted(_REGISTRY.items()))


def get_domain(name: str) -> DomainSpec:
    all_domains = domains()
    if name not in all_domains:
        raise KeyError(f"unknown domain {name!r}; known: {', '.join(all_domains)}")
    return all_domains[name]

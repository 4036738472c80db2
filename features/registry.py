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

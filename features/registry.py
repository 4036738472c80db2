"""The domain registry: each domain is one declarative :class:`DomainSpec` in ``features/domains/``.

Shared code (the CLI, training, serving) loops over :func:`domains` and never tests a domain's name.
A fifth domain is one new package in ``features/domains/`` whose ``__init__`` calls :func:`register`
(features, evaluation and serving in modules of their own).

The one feature code path: ``build_rows(sources, requests)`` turns *requests* (entity keys, the
prediction time and the domain's condition columns) into feature rows. The training table is
``build_table(sources)``, which derives requests from the observations and calls the same
``build_rows``; the service passes a client's requests to the same function.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Iterator
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
    kind: Literal["float", "int", "bool", "date", "str"] = "float"
    required: bool = False  # optional fields are read from the observations the service holds
    choices: tuple | None = None  # the only values allowed (within minimum..maximum), e.g. lead times
    # A float field that also takes its source's text categories (KMA's PCP "1mm 미만"): str -> float, raising
    # DataError for text it does not know. The number it gives is then checked against minimum..maximum.
    text: Callable[[str], float] | None = None
    # A choice about what the answer reports (e.g. whose population casualties count), not a request
    # column of ``build_rows``: it is not one of the spec's ``conditions`` and never a model input.
    answer_only: bool = False


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
        """Index into :data:`LEVELS` for each score; -1 where the score is unknown (NaN)."""
        scores = np.asarray(scores, dtype=float)
        return np.where(np.isnan(scores), -1, np.clip(np.nan_to_num(scores) // 25, 0, 3)).astype(int)

    def publish(self, values) -> tuple[np.ndarray, np.ndarray]:
        """Scores as published (rounded to 0.1) and the level of each *published* score, so that a value
        scoring 49.98 is shown as 50.0 with the level of 50 (NaN score and level -1 for an unknown value)."""
        scores = np.round(self.score(values), 1)
        return scores, self.level(scores)


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
    # The earliest time the held observations support (``at`` before it is refused like ``at`` after ``now``);
    # None: no lower bound beyond the engine's own.
    first: Callable[..., pd.Timestamp] | None = None
    # ``live(sources, now) -> dict | None``: the conditions an unattended live cycle scores the city with at
    # ``now`` ({} when the observations suffice, the default; None: nothing to score, e.g. no recent event).
    live: Callable[..., dict | None] | None = None
    # ``check(sources, conditions)``: checks between conditions and the city the field ranges cannot make
    # (an epicentre too far from it for the ground-motion model); DataError naming the field, a 400.
    check: Callable[..., None] | None = None
    # ``align(hour) -> time``: the domain's answer time for a complete observation hour (traffic's 3-hour slot
    # start, fine dust's 17:00 issue); the hour itself by default.
    align: Callable[[pd.Timestamp], pd.Timestamp] = lambda hour: hour


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
    # Sources read when present but never required to build the table (earthquake: the catalogue, for the
    # live cycle's latest event and the retrofit ranking); the embedded generator writes them with the domain.
    optional_sources: tuple[str, ...] = ()
    # (sources, rows_per_part) -> the training table in parts of about that many rows (time spans or sets of
    # scenarios), so a large city's table is never whole in memory; None: ``build_table`` is the one part.
    build_parts: Callable[..., Iterator[pd.DataFrame]] | None = None
    # Evaluation: metrics on the holdout, the one promotion compares on, the domain's baseline
    # (table rows -> predictions) and the oracle (table rows, truth folder -> true expected values).
    metrics: tuple[Metric, ...] = ()
    primary_metric: str = ""
    baseline: Callable[..., np.ndarray] | None = None
    oracle: Callable[..., np.ndarray] | None = None
    serving: Serving | None = None
    # Physics, declared: +1 where more of a feature never lowers the prediction, -1 where it never raises it.
    # Training passes these to the boosters' monotone constraints; the API's property tests check them.
    monotone: dict[str, int] = field(default_factory=dict)
    # Inputs without which an answer is not given: a row missing one is left out of the training table and
    # answered ``unknown`` by the service (after the domain's documented fallbacks), never scored.
    essential: tuple[str, ...] = ()
    # Features that stand in for a forecast of the target period (e.g. tomorrow's weather): the request
    # gives them at prediction time; the training table reads them from the period's own observations,
    # degraded by a forecast error, so point-in-time checks leave them out.
    forecast: tuple[str, ...] = ()
    # Holdout metrics are also reported per value of this column, named by the format, e.g.
    # ("lead_hours", "lead{:g}h") -> ``holdout_pr_auc_lead6h``; None: overall only.
    breakdown: tuple[str, str] | None = None
    extra: dict = field(default_factory=dict)  # units, cause, grades: what serving needs to explain a score
    # Features read from a source a city may have no station for (flood: the tide gauge), by source. In a
    # city without it they are not applicable: see :meth:`for_city`.
    source_features: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Set by :meth:`for_city`: each not-applicable feature and why (the source the city lacks).
    not_applicable: dict[str, str] = field(default_factory=dict)
    # Features whose distribution moving is not drift, and why: scenario conditions the question chooses (the
    # earthquake's magnitude, flood's lead) and calendar positions (day of year, hour). The monitor
    # (live/monitor.py) lists them as exempt with the reason, never as a finding.
    not_drift: dict[str, str] = field(default_factory=dict)
    # Products of the domain that need fewer sources than its model (traffic's hotspot ranking reads the
    # accident records alone): a city without a station for the model's other sources still runs them, and
    # the model is skipped for want of data, saying so.
    products: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        named = set(self.monotone) | set(self.essential) | set(self.forecast) | set(self.breakdown[:1] if self.breakdown else ())
        named |= {f for fs in self.source_features.values() for f in fs} | set(self.not_drift)
        unknown = sorted(named - set(self.features))
        if unknown:
            raise ValueError(f"domain {self.name!r}: monotone/essential/forecast/breakdown/not_drift name "
                             f"non-features {unknown}")
        if any(d not in (-1, 1) for d in self.monotone.values()):
            raise ValueError(f"domain {self.name!r}: monotone directions must be +1 or -1")

    def for_city(self, city) -> DomainSpec:
        """This domain as ``city`` runs it (a copy; the registered spec is unchanged).

        A source the city has no station for (``city.lacks(source)``, e.g. no tide gauge inland) is *not
        applicable*, not missing: it leaves :attr:`sources` (no data is expected, none is invented), the
        features read from it (:attr:`source_features`) leave :attr:`essential` (they are NaN in every row,
        so the model trains and answers without them) and are listed in :attr:`not_applicable` with the
        reason (the service refuses a request that gives one, with a 400 naming the field and the city).
        Ready scenarios are the city's own for this domain (``[[scenarios.<domain>]]``) when it lists any,
        else the domain's, without not-applicable conditions.
        """
        absent = {src: why for src in self.sources if (why := city.lacks(src))}
        na = {f: absent[src] for src, fs in self.source_features.items() if src in absent for f in fs}
        serving = self.serving
        if serving is not None:
            own = city.scenarios.get(self.name)
            ready = tuple((s.label, dict(s.conditions)) for s in own) if own is not None else serving.scenarios
            ready = tuple((label, {k: v for k, v in values.items() if k not in na}) for label, values in ready)
            serving = dataclasses.replace(serving, scenarios=ready)
        return dataclasses.replace(self, sources=tuple(s for s in self.sources if s not in absent),
                                   essential=tuple(f for f in self.essential if f not in na),
                                   not_applicable={**self.not_applicable, **na}, serving=serving)

    def monotone_vector(self) -> list[int]:
        """The declared directions aligned with :attr:`features` (0: unconstrained)."""
        return [self.monotone.get(f, 0) for f in self.features]

    def metric(self, name: str | None = None) -> Metric:
        """A declared metric by name (the primary one by default)."""
        name = name or self.primary_metric
        return next(m for m in self.metrics if m.name == name)


_REGISTRY: dict[str, DomainSpec] = {}
_DISCOVERED = False


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
    """Every registered domain, by name, in a stable order (importing one domain's module first registers
    that one only: every module is imported on the first call)."""
    global _DISCOVERED
    if not _DISCOVERED:
        _discover()
        _DISCOVERED = True
    return dict(sorted(_REGISTRY.items()))


def get_domain(name: str) -> DomainSpec:
    all_domains = domains()
    if name not in all_domains:
        raise KeyError(f"unknown domain {name!r}; known: {', '.join(all_domains)}")
    return all_domains[name]

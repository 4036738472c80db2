"""The prediction engine behind the API: plain Python, no BentoML, so it is tested and benchmarked directly.

It holds the sources snapshot (static layers and the observations the service knows), one booster per
domain, and answers the API's questions through the same feature builders that made the training tables.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError

from features.clock import clock
from features.errors import DataError, UrbanSafetyError
from features.grid import EARTH_M_PER_DEG
from features.registry import LEVELS, Condition, DomainSpec, domains
from features.sources import Sources
from features.sources.timing import RULES, awaited_after, complete_hour
from live.db import KST, now_kst
from live.store import (
    EVENT_SOURCES,
    HOURLY_SOURCES,
    LOOKAHEAD,
    STALE_AFTER,
    merge_rows,
    observed_times,
    reported_hours,
)
from serving.availability import domain_times
from serving.errors import ApiError
from training.models import contributions, predict

MAX_LOCATIONS = 500
MAX_RECORDS = 10_000
# Times and dates the engine accepts: pandas holds times as int64 nanoseconds (1677-09-21 .. 2262-04-11), and
# the feature builders step back a year or more from `at`, so anything outside these is a 400, not an overflow.
EARLIEST_AT = pd.Timestamp("1900-01-01")
DATE_RANGE = (date(1900, 1, 1), date(2199, 12, 31))
CACHE_ENTRIES = 2048
CITY_ENTRIES = 32  # whole-city /risk answers held (about 1.5 MB each at 2,208 cells)
CITY_COST_GUESS_S = 0.2  # until measured
# Held /risk_map bytes per worker: a 100 m GeoJSON map is ~19 MB (a compact one ~1.3 MB), so a count of
# entries alone would let a day of live cycles hold gigabytes.
MAP_CACHE_BYTES = 256 * 1024 * 1024
MAP_FORMATS = ("geojson", "compact")  # /risk_map answers: a GeoJSON FeatureCollection, or arrays in /grid order
TOP_FACTORS = 5
PLACE_KEYS = ("district", "district_code", "dong", "dong_code")
CELL_COLUMNS = ("cell_id", "lat", "lon", "district", "district_code", "dong", "dong_code")  # an answer's cell
# JSON types are strict: a boolean is no number of millimetres, "yes" no boolean (a date stays an ISO string).
KINDS = {"float": Annotated[float, Strict()], "int": Annotated[int, Strict()], "bool": Annotated[bool, Strict()],
         "date": date, "str": Annotated[str, Strict()]}


@dataclass
class LoadedModel:
    family: str
    booster: Any
    info: dict  # registry_version, run_id, trained_at, metrics, feature_set_version, features

    @property
    def version(self) -> str:
        return f"{self.info.get('registered_model', '?')} v{self.info.get('registry_version', '?')}"


def conditions_model(spec: DomainSpec) -> type[BaseModel]:
    """A pydantic model of the domain's conditions: typed, ranged, unknown fields refused."""
    fields = {}
    for c in spec.serving.conditions:
        kind = KINDS[c.kind]
        constraint = {"ge": c.minimum, "le": c.maximum} if c.kind in ("float", "int") else \
            {"ge": DATE_RANGE[0], "le": DATE_RANGE[1]} if c.kind == "date" else {}
        if c.kind == "float":
            constraint["allow_inf_nan"] = False
        if c.text:  # numbers or the source's text categories, checked against the range once converted
            number = {"type": "number", **{k: v for k, v in (("minimum", c.minimum), ("maximum", c.maximum))
                                           if v is not None}}
            kind = Annotated[kind, BeforeValidator(_from_text(c.text)), Field(**constraint),
                             WithJsonSchema({"anyOf": [number, {"type": "string"}]})]
            constraint = {}
        if c.choices:  # the choices are the range: a refusal names them, not a bound
            enum = [*c.choices, *([] if c.required else [None])]
            kind, constraint = Annotated[kind, _one_of(c.choices)], {"json_schema_extra": {"enum": enum}}
        default = ... if c.required else None
        fields[c.name] = (kind if c.required else kind | None,
                          Field(default, description=f"{c.description} [{c.unit}]", examples=[c.example],
                                **{k: v for k, v in constraint.items() if v is not None}))
    return create_model(f"{spec.name.title().replace('_', '')}Conditions",
                        __config__=ConfigDict(extra="forbid"), **fields)


def _from_text(parse):
    """A converter of text values through ``parse`` (numbers pass untouched to the strict check); text it
    does not know is refused with its message."""
    def convert(value):
        if not isinstance(value, str):
            return value
        try:
            return parse(value)
        except UrbanSafetyError as exc:
            raise PydanticCustomError("value_error", "{reason}", {"reason": str(exc)}) from None

    return convert


def _one_of(choices: tuple) -> AfterValidator:
    """A validator accepting only ``choices`` (after the kind's strict type check)."""
    allowed = ", ".join(map(str, choices[:-1])) + f" or {choices[-1]}" if len(choices) > 1 else str(choices[0])

    def check(value):
        if value not in choices:
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": allowed})
        return value

    return AfterValidator(check)


def condition_schema(c: Condition) -> dict:
    low, high = (d.isoformat() for d in DATE_RANGE) if c.kind == "date" else (c.minimum, c.maximum)
    return {"name": c.name, "unit": c.unit, "description": c.description, "type": c.kind,
            "minimum": low, "maximum": high, "example": c.example, "required": c.required,
            **({"choices": list(c.choices)} if c.choices else {}),
            **({"accepts_text": True} if c.text else {})}


@dataclass
class Engine:
    sources: Sources
    models: dict[str, LoadedModel]
    problems: dict[str, str] = field(default_factory=dict)  # domain -> why its model is not loaded
    city_cost_guess_s: float = CITY_COST_GUESS_S  # a whole-city /risk build's cost until one is measured
    store: Any = None  # live.store.ObservationStore the engine follows (None: the snapshot only)
    version: int = 0  # the store's version the held observations include
    recorder: Any = None  # live.monitor.Recorder: a sample of every answer's rows, for drift monitoring

    def __post_init__(self) -> None:
        # Each domain as this city runs it: inputs from a source it has no station for are not applicable.
        city = self.sources.city
        self.specs = {name: spec.for_city(city) for name, spec in domains().items() if spec.serving is not None}
        self._loaded, self._load_problems = dict(self.models), dict(self.problems)
        self.grid = self.sources.grid
        self._position = {cid: i for i, cid in enumerate(self.grid.cells["cell_id"])}
        self._cell_frame = self.grid.cells[list(CELL_COLUMNS)].reset_index(drop=True)
        self._conditions = {name: conditions_model(spec) for name, spec in self.specs.items()}
        self._feature_heads = _feature_heads(self.grid)
        self._stale: set[str] = set()
        self._hold(self.sources)
        # Answers depend only on the question, the held data and the models, all fixed for this engine's
        # life. Whole-city maps are kept as bytes. A /risk question (domain, time, conditions) is built for
        # the cells asked about until the time spent on it reaches what building every cell once costs;
        # then every cell is built and kept (rent or buy: never more than twice the better choice in
        # hindsight), so the cells a department asks about one by one during a storm are looked up.
        # Costs are this thread's CPU time: wall time would count the waits of a busy server.
        self._maps = LruCache(CACHE_ENTRIES, MAP_CACHE_BYTES)  # (domain, time, conditions, format) -> /risk_map bytes
        self._tables = LruCache(CITY_ENTRIES)  # (domain, time, conditions) -> every cell's map entry, as arrays
        self._spent = LruCache(CACHE_ENTRIES)  # question -> seconds spent building its cells so far
        self._city = LruCache(CITY_ENTRIES)  # question -> every cell's answer, by grid position
        self._city_cost = dict.fromkeys(self.specs, self.city_cost_guess_s)  # domain -> last whole-city build, s
        self._building: dict[tuple, threading.Lock] = {}  # question -> lock held while its city is built
        self._lock = threading.Lock()
        self._following = threading.Lock()

    def _hold(self, sources: Sources, observed: dict[str, np.ndarray] | None = None,
              changed: set[str] | None = None) -> None:
        """Take ``sources`` as the held observations: the times each domain answers for, which domains can
        answer at all (a partial city: those it does not run or holds no data for answer 503 with the reason)
        and when each live source was observed (``observed``: already known, else read from the frames).

        ``changed``: the sources that took new rows (None: everything is new). A serving domain reading one
        keeps its newest and first times as bounds (new rows never remove a value: the newest only grows)
        and recomputes them when an answer needs more (:meth:`_times_of`), so a late row that moves no
        default time costs no recomputation."""
        if changed is None:
            now, unavailable = domain_times(sources, self.specs)
            stale: set[str] = set()
        else:
            again = {n: spec for n, spec in self.specs.items() if n in self.unavailable}
            now, unavailable = domain_times(sources, again)
            now = {**self._latest, **now}
            stale = self._stale | {n for n in self._latest if changed & set(self.specs[n].sources)}
        first = {name: self._first[name] if name in stale else self._first_of(sources, name) for name in now}
        if observed is None:
            observed = {s: observed_times(s, sources.loaded([s])[s]) for s in HOURLY_SOURCES if sources.available(s)}
        self.sources, self._latest, self._first, self._observed = sources, now, first, observed
        self._stale = stale
        self._reported = reported_hours(sources) if changed is None else \
            {**self._reported, **reported_hours(sources, [c for c in HOURLY_SOURCES if c in changed])}
        self._held, self._second = object(), {}  # a new held state: per-second answers start afresh
        self.unavailable = unavailable
        self.problems = {**self._load_problems, **unavailable}
        self.models = {name: m for name, m in self._loaded.items() if name not in unavailable}

    def _first_of(self, sources: Sources, name: str) -> pd.Timestamp:
        first = self.specs[name].serving.first
        return max(EARLIEST_AT, pd.Timestamp(first(sources))) if first else EARLIEST_AT

    def _times_of(self, name: str) -> pd.Timestamp:
        """The newest time ``name``'s held observations support, recomputed if new rows came in since."""
        if name in self._stale:
            sources = self.sources
            self._latest[name] = pd.Timestamp(self.specs[name].serving.now(sources))
            self._first[name] = self._first_of(sources, name)
            self._stale.discard(name)
        return self._latest[name]

    # --- following the observation store ---------------------------------------------------------
    def follow(self) -> list:
        """Take the observations the store received since the held version; drop exactly the cached answers
        that read them (their domain reads the source, and they answer for a time at or after the new rows,
        less how far ahead the source is read). Returns the store's changes (empty when none)."""
        if self.store is None:
            return []
        with self._following:
            version, changes = self.store.changes(self.version)
            frames, observed = {}, dict(self._observed)
            for change in changes:
                if change.source in EVENT_SOURCES:  # no domain reads them as observations: live/impact.py does
                    continue
                rows = change.rows
                try:
                    rows = self.sources.resolve(change.source, rows)
                except UrbanSafetyError:  # e.g. air rows of stations the city does not list: nothing to take
                    continue
                held = self.sources.loaded([change.source]).get(change.source)
                frames[change.source] = rows if held is None else merge_rows(held, rows, change.source)
                # The store never empties a held value: observation times only grow.
                observed[change.source] = np.union1d(observed.get(change.source, np.array([], "datetime64[ns]")),
                                                     observed_times(change.source, rows))
            if frames:
                self._hold(self.sources.replaced(frames), observed, set(frames))
                for change in changes:
                    since = change.first - LOOKAHEAD.get(change.source, pd.Timedelta(0))
                    hit = {name for name, spec in self.specs.items() if change.source in spec.sources}
                    for cache in (self._maps, self._tables, self._spent, self._city):
                        cache.drop(lambda key, hit=hit, since=since: key[0] in hit and key[1] >= since)
            self.version = version
            return changes

    def inputs(self, spec: DomainSpec, at: pd.Timestamp) -> dict:
        """Per live source the domain reads: its newest observation at or before ``at`` and whether that is
        older than the source's cadence allows (``stale``)."""
        out = {}
        for source in spec.sources:
            times = self._observed.get(source)
            if times is None:
                continue
            i = np.searchsorted(times, np.datetime64(at, "ns"), side="right")
            last = pd.Timestamp(times[i - 1]) if i else None
            out[source] = {"observed_at": last.isoformat() if last is not None else None,
                           "stale": last is None or at - last > STALE_AFTER[source]}
        return out

    def _freshness(self, spec: DomainSpec, when: pd.Timestamp) -> dict:
        inputs = self.inputs(spec, when)
        return {"inputs": inputs, "stale": sorted(s for s, v in inputs.items() if v["stale"])}

    def freshness(self, now: datetime | None = None) -> dict:
        """Per live source: its newest observation, its age now (wall clock, KST) and whether it is stale."""
        now = pd.Timestamp(now or now_kst())
        out = {}
        for source, times in self._observed.items():
            newest = pd.Timestamp(times[-1]) if len(times) else None
            age = (now - newest).total_seconds() if newest is not None else None
            out[source] = {"newest": newest.isoformat() if newest is not None else None,
                           "age_s": age, "stale": age is None or age > STALE_AFTER[source].total_seconds()}
        return out

    # --- state -------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Every domain the city can serve has its model, and something serves (a model or a product)."""
        serving = bool(self.models) or "serving" in self.products().values()
        return serving and all(name in self.models for name in self._latest)

    def products(self) -> dict[str, str]:
        """Each product a domain declares (``DomainSpec.products``): "serving" when the city runs the domain
        and holds the sources the product reads, else why not."""
        out = {}
        for name, spec in self.specs.items():
            for product, needs in spec.products.items():
                missing = [s for s in needs if not self.sources.available(s)]
                out[product] = (f"{self.sources.city.name} does not run {name}" if not self.sources.city.runs(name)
                                else f"no data: it needs {', '.join(missing)}" if missing else "serving")
        return out

    def times(self, domain: str) -> tuple[pd.Timestamp, pd.Timestamp]:
        """``(first, now)`` of a domain the service answers for: the earliest time the held observations
        support and the default ``at`` (the newest complete hour, :meth:`data_time`), both naive KST.
        ApiError 400 for a domain the service does not know, 503 (with the reason) for one this city cannot
        serve (:meth:`spec`)."""
        self.spec(domain)
        return self._first[domain], self.data_time(domain)[0]

    def data_time(self, domain: str, now: datetime | None = None) -> tuple[pd.Timestamp, dict]:
        """The default time of ``domain`` and what is still awaited (``{source: [{hour, missing, until}]}``).

        The default is the newest *complete* hour (``features.sources.timing.complete_hour``): every live
        source the domain reads has reported it for every station the city needs, or that source's lateness
        window has passed; then the domain's own step applies (traffic's 3-hour slot, fine dust's 17:00
        issue), never later than the newest time its held observations support. ``now``: the clock's."""
        if now is None:  # the same for every question within one second of the clock and one held state
            return self._per_second(("data_time", domain), lambda: self.data_time(domain, now_kst()))
        spec = self.specs[domain]
        reports = self._reports(spec)
        hour, awaited = complete_hour(reports, now) if reports else (None, {})
        if hour is None:
            return self._times_of(domain), awaited
        aligned = pd.Timestamp(spec.serving.align(hour))
        latest = self._latest[domain] if self._latest[domain] >= aligned else self._times_of(domain)
        return min(latest, aligned), awaited

    def awaited(self, spec: DomainSpec, when: pd.Timestamp) -> dict:
        """What the answer for ``when`` still waits for, per source (``{}``: a complete hour)."""
        def compute() -> dict:
            reports = self._reports(spec)
            if not reports:
                return {}
            top = max((r.newest for r in reports if r.newest is not None), default=when)
            return awaited_after(reports, when.floor("h"), max(top, when.floor("h")), now_kst())
        return self._per_second(("awaited", spec.name, when), compute)

    def _reports(self, spec: DomainSpec) -> list:
        """Who reported the recent hours of each live source ``spec`` reads."""
        return [self._reported[s] for s in spec.sources if s in self._reported]

    def _per_second(self, key: tuple, compute):
        """``compute()``, kept for the rest of the clock's current second while the held data stand (what is
        complete or awaited moves with the clock in minutes, not per request)."""
        second, held = int(clock().timestamp()), self._held
        hit = self._second.get(key)
        if hit is not None and hit[0] == second and hit[1] is held:
            return hit[2]
        value = compute()
        if len(self._second) > CACHE_ENTRIES:  # many distinct times asked within one held state
            self._second.clear()
        self._second[key] = (second, held, value)
        return value

    def availability(self) -> dict[str, str]:
        """Each domain: "serving", or why not."""
        return {name: "serving" if name in self.models else self.problems.get(name, "no model loaded")
                for name in self.specs}

    def _model(self, domain: str) -> LoadedModel:
        if domain not in self.models:
            reason = self.problems.get(domain, "no model loaded")
            raise ApiError(503, ["domain"], f"the {domain} model is not available: {reason}", "unavailable")
        return self.models[domain]

    def spec(self, domain: str) -> DomainSpec:
        """The domain as this city runs it; ApiError 400 for a domain the service does not know, 503 (with
        the reason) for one it cannot serve."""
        if domain not in self.specs:
            raise ApiError(400, ["domain"], f"unknown domain {domain!r}; known: {', '.join(self.specs)}")
        if domain in self.unavailable:
            raise ApiError(503, ["domain"], f"the {domain} domain is not available: {self.unavailable[domain]}",
                           "unavailable")
        return self.specs[domain]

    # --- request parts -------------------------------------------------------------------------
    def locate(self, locations: list[dict]) -> np.ndarray:
        """Position in the grid of each location's cell ({lat, lon} or {cell_id}), in order."""
        if not locations:
            raise ApiError(400, ["locations"], "give at least one location")
        if len(locations) > MAX_LOCATIONS:
            raise ApiError(413, ["locations"], f"{len(locations)} locations; at most {MAX_LOCATIONS} per request "
                           "(use /risk_map for the whole city)", "too_large")
        positions = np.empty(len(locations), dtype=np.int64)
        points = [i for i, loc in enumerate(locations) if loc.get("cell_id") is None]
        if points:
            lat = np.array([locations[i]["lat"] for i in points], dtype=float)
            lon = np.array([locations[i]["lon"] for i in points], dtype=float)
            positions[points] = self.grid.locate(lat, lon)
        for i, loc in enumerate(locations):
            if loc.get("cell_id") is not None:
                if loc["cell_id"] not in self._position:
                    raise ApiError(404, ["locations", i, "cell_id"], f"unknown cell {loc['cell_id']!r}", "not_found")
                positions[i] = self._position[loc["cell_id"]]
            elif positions[i] < 0:
                raise ApiError(400, ["locations", i], f"point ({loc['lat']}, {loc['lon']}) is outside "
                               f"{self.grid.city.name}'s land grid", "outside_city")
        return positions

    def _places_of(self, locations: list[dict]) -> list[str]:
        """Each location's own 구 and 법정동 (JSON): a point's from where it lies (it may differ from its cell's
        centre near a boundary), a cell's from its centre."""
        points = [i for i, loc in enumerate(locations) if loc.get("cell_id") is None]
        out = [self._cell_place[self._position[loc["cell_id"]]] if loc.get("cell_id") is not None else ""
               for loc in locations]
        if points:
            found = self.grid.city.places().assign([locations[i]["lat"] for i in points],
                                                   [locations[i]["lon"] for i in points])
            for j, i in enumerate(points):
                out[i] = json.dumps({k: found[k][j] for k in PLACE_KEYS}, ensure_ascii=False)
        return out

    @cached_property
    def _cell_place(self) -> list[str]:
        cells = self.grid.cells
        return [json.dumps(dict(zip(PLACE_KEYS, row, strict=True)), ensure_ascii=False)
                for row in zip(*(cells[k].astype(str).tolist() for k in PLACE_KEYS), strict=True)]

    def _cells(self, positions) -> pd.DataFrame:
        return self._cell_frame.take(positions).reset_index(drop=True)

    def conditions(self, spec: DomainSpec, given: dict | None) -> dict:
        try:
            parsed = self._conditions[spec.name].model_validate(given or {})
        except ValidationError as exc:
            errs = exc.errors(include_context=False, include_input=False, include_url=False)
            first = errs[0]
            raise ApiError(400, ["conditions", *first["loc"]], first["msg"], first["type"]) from None
        values = parsed.model_dump(exclude_none=True)
        for name in values.keys() & spec.not_applicable.keys():
            raise ApiError(400, ["conditions", name], f"not applicable in {self.grid.city.name}: "
                           f"{spec.not_applicable[name]}; leave it out", "not_applicable")
        if spec.serving.check is not None:
            try:
                spec.serving.check(self.sources, values)
            except DataError as exc:
                raise ApiError(400, ["conditions", exc.column or ""], exc.message, "out_of_range") from None
        return values

    def at(self, spec: DomainSpec, at: datetime | None) -> pd.Timestamp:
        """``at`` as naive KST, within the times the held observations support for the domain."""
        if at is None:
            return self.data_time(spec.name)[0]
        now, first = self._times_of(spec.name), self._first[spec.name]
        try:  # years 1 and 9999 overflow on the way, or in nanoseconds
            local = at.astimezone(KST).replace(tzinfo=None) if isinstance(at, datetime) and at.tzinfo else at
            ts = pd.Timestamp(local).as_unit("ns")
        except (OverflowError, ValueError):  # pandas' OutOfBoundsDatetime is a ValueError
            ts = None
        if ts is None or ts < first:
            shown = at.isoformat() if isinstance(at, datetime) else at
            raise ApiError(400, ["at"], f"{shown} is before the observations the service holds for {spec.name}: "
                           f"it answers from {first:%Y-%m-%d %H:%M} to {now:%Y-%m-%d %H:%M} (KST)")
        if ts > now:
            raise ApiError(400, ["at"], f"{ts:%Y-%m-%d %H:%M} is after the newest observations the service "
                           f"holds for {spec.name} ({now:%Y-%m-%d %H:%M}); omit `at` to use that time")
        return ts

    def _predict(self, spec: DomainSpec, model: LoadedModel, cells: pd.DataFrame, at: pd.Timestamp,
                 conditions: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
        sources = self.sources  # one snapshot for the whole answer, whatever follow() swaps in meanwhile
        requests = spec.serving.requests(sources, cells, at, conditions)
        rows = spec.build_rows(sources, requests)
        X = rows[list(spec.features)]
        pred, _ = self._predict_rows(spec, model, X)
        if self.recorder is not None:
            self.recorder.add(spec.name, at, X, pred)
        answers = spec.serving.combine(rows, pred).set_index("cell_id")
        answers["missing"] = _missing_by_cell(spec, rows).reindex(answers.index)
        return rows, answers

    @staticmethod
    def _predict_rows(spec: DomainSpec, model: LoadedModel, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Predictions, NaN for rows missing an essential input (missing data is never a risk: the booster's
        default branches are not asked), and that mask."""
        unknown = X[list(spec.essential)].isna().any(axis=1).to_numpy() if spec.essential else np.zeros(len(X), bool)
        pred = np.full(len(X), np.nan)
        if (~unknown).any():
            pred[~unknown] = predict(model.family, model.booster, X.loc[~unknown])
        return pred, unknown

    # --- the API's questions -----------------------------------------------------------------
    def risk(self, domain: str, locations: list[dict], at: datetime | None, conditions: dict | None,
             build: bool = True) -> bytes | None:
        """Per location: cell, score, level, value, top factors, cause, model version (JSON bytes).
        With ``build=False``: None unless every cell's answer to this question is held (a quick lookup)."""
        spec = self.spec(domain)
        positions = self.locate(locations)
        conds, when = self.conditions(spec, conditions), self.at(spec, at)
        model = self._model(domain)
        key = (domain, when, _frozen(conds))
        answers = self._city.get(key)
        if answers is None and not build:
            return None
        if answers is None:
            spent, start = self._spent.get(key) or 0.0, time.thread_time()
            if spent < self._city_cost[domain]:
                unique = np.unique(positions)
                answers = dict(zip(unique.tolist(), self._risk_answers(spec, model, self._cells(unique), when,
                                                                       conds), strict=True))
                self._spent.put(key, spent + time.thread_time() - start)
            else:
                answers = self._build_city(spec, model, key, when, conds)
        head = json.dumps({"domain": domain, "at": when.isoformat(), "value_meaning": spec.serving.value,
                           "model_version": model.version, "conditions": _shown(conds), **self._freshness(spec, when),
                           "awaited": self.awaited(spec, when)}, ensure_ascii=False)[:-1]
        places = self._places_of(locations)
        results = ",".join(f'{{"query":{json.dumps({k: v for k, v in q.items() if v is not None})},'
                           f'"place":{place},{answers[p]}}}'
                           for q, p, place in zip(locations, positions.tolist(), places, strict=True))
        return f'{head},"results":[{results}]}}'.encode()

    def _build_city(self, spec: DomainSpec, model: LoadedModel, key: tuple, when: pd.Timestamp,
                    conds: dict) -> list[str]:
        """Every cell's answer to the question ``key``, built by one thread while the others asking wait."""
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:
            answers = self._city.get(key)
            if answers is None:
                start, everywhere = time.thread_time(), self._cells(np.arange(len(self.grid.cells)))
                answers = self._city.put(key, self._risk_answers(spec, model, everywhere, when, conds))
                self._city_cost[spec.name] = time.thread_time() - start
        with self._lock:
            self._building.pop(key, None)
        return answers

    def _risk_answers(self, spec: DomainSpec, model: LoadedModel, cells: pd.DataFrame, when: pd.Timestamp,
                      conds: dict) -> list[str]:
        """Each cell's answer as the inside of a JSON object, in the order of ``cells`` (distinct cells)."""
        rows, answers = self._predict(spec, model, cells, when, conds)
        factors = self._top_factors(spec, model, rows)
        values, n = answers["value"].to_numpy(float), len(answers)
        scores, levels = spec.serving.levels.publish(values)
        causes = answers["cause"].tolist() if "cause" in answers else [None] * n
        details = answers["details"].tolist() if "details" in answers else [None] * n
        notes = answers["notes"].tolist() if "notes" in answers else [None] * n
        missing = answers["missing"].tolist()
        row_of = {cid: i for i, cid in enumerate(answers.index.tolist())}
        results = []
        for cid, lat, lon, district, district_code, dong, dong_code in zip(
                *(cells[c].tolist() for c in CELL_COLUMNS), strict=True):
            i = row_of[cid]
            known = levels[i] >= 0
            cell_notes = list(notes[i] or [])
            if missing[i] and known:  # e.g. one pollutant of two: the answer stands on the other
                cell_notes.append(f"answered without {', '.join(missing[i])} (no data)")
            results.append(json.dumps({
                "cell_id": cid, "lat": lat, "lon": lon, "district": district, "district_code": str(district_code),
                "dong": dong, "dong_code": dong_code, "status": "scored" if known else "unknown",
                "score": float(scores[i]) if known else None,
                "level": LEVELS[levels[i]][0] if known else None, "level_en": LEVELS[levels[i]][1] if known else None,
                "value": _num(values[i]), "unit": spec.serving.unit,
                **({} if known else {"reason": _unknown_reason(missing[i], when)}),
                "top_factors": factors.get(cid, []) if known else [],
                "cause": causes[i] if known and isinstance(causes[i], str) else None,
                "details": details[i] if isinstance(details[i], dict) else None,
                "notes": cell_notes, "model_version": model.version,
            }, ensure_ascii=False)[1:-1])
        return results

    def risk_map(self, domain: str, at: datetime | None, conditions: dict | None, fmt: str = "geojson") -> bytes:
        """Every cell's score, level and value as JSON bytes, in ``fmt``:

        - ``geojson``: a FeatureCollection, one polygon Feature per cell with ``status, score, level,
          level_en, value, cause`` (``reason`` for unknown cells) and the ``metadata`` head (``at``: the hour
          shown; ``awaited``: per source, the stations whose rows for that hour or the next are still awaited,
          and until when, see :meth:`data_time`);
        - ``compact``: the same head and per-cell arrays in the order of :meth:`grid_info` (see
          :meth:`_compact_map`), about a tenth of the bytes.
        """
        if fmt not in MAP_FORMATS:
            raise ApiError(400, ["format"], f"unknown map format {fmt!r}; give one of {', '.join(MAP_FORMATS)}")
        spec = self.spec(domain)
        conds, when = self.conditions(spec, conditions), self.at(spec, at)
        model = self._model(domain)
        question = (domain, when, _frozen(conds))
        # What is awaited changes with the clock, not with the map: it is spliced into the held map's metadata,
        # and the spliced bytes are held with it until it changes.
        awaited = json.dumps({"awaited": self.awaited(spec, when)}, ensure_ascii=False)[1:-1].encode() + b","
        held = self._maps.get((*question, fmt))
        if held is not None and held[0] == awaited:
            return held[1]
        if held is not None:
            body = held[1][:held[2]] + held[1][held[2] + len(held[0]):]
        else:
            table = self._tables.get(question)
            if table is None:  # both formats are written from one prediction of the city
                table = self._tables.put(question, self._map_table(spec, model, when, conds))
            body = self._risk_map(table) if fmt == "geojson" else self._compact_map(table)
        cut = body.index(b'"metadata":{') + len(b'"metadata":{')
        return self._maps.put((*question, fmt), (awaited, body[:cut] + awaited + body[cut:], cut))[1]

    def _map_table(self, spec: DomainSpec, model: LoadedModel, when: pd.Timestamp, conds: dict) -> dict:
        """Every cell's map entry in grid order (values, published scores, level codes -1..3, causes,
        unknown reasons) and the answer's metadata head."""
        _, answers = self._predict(spec, model, self._cell_frame, when, conds)
        answers = answers.reindex(self._cell_frame["cell_id"])
        values = answers["value"].to_numpy(float)
        scores, levels = spec.serving.levels.publish(values)
        causes = answers["cause"].tolist() if "cause" in answers else [None] * len(values)
        causes = [c if lv >= 0 and isinstance(c, str) else None for c, lv in zip(causes, levels, strict=True)]
        reasons = [None if lv >= 0 else _unknown_reason(m, when)
                   for lv, m in zip(levels, answers["missing"].tolist(), strict=True)]
        counts = np.bincount(levels + 1, minlength=len(LEVELS) + 1)
        metadata = {"domain": spec.name, "at": when.isoformat(), "unit": spec.serving.unit,
                    "value_meaning": spec.serving.value, "model_version": model.version,
                    "conditions": _shown(conds), **self._freshness(spec, when), "cells": len(values),
                    "unknown": int(counts[0]),
                    "levels": {en: int(k) for (_, en), k in zip(LEVELS, counts[1:], strict=True)},
                    "grid": {"id": self.grid_id, "version": self.grid_version}}
        return {"values": values, "scores": scores, "levels": levels, "causes": causes, "reasons": reasons,
                "metadata": metadata}

    def _risk_map(self, table: dict) -> bytes:
        parts = [
            f'{head}"status":"scored","score":{s:.1f},{_LEVEL_JSON[lv]},"value":{json.dumps(_num(v))},'
            f'"cause":{json.dumps(c)}}}}}' if lv >= 0 else
            f'{head}"status":"unknown","score":null,"level":null,"level_en":null,"value":null,"cause":null,'
            f'"reason":{json.dumps(r)}}}}}'
            for head, v, s, lv, c, r in zip(self._feature_heads, table["values"], table["scores"], table["levels"],
                                            table["causes"], table["reasons"], strict=True)
        ]
        head = json.dumps(table["metadata"], ensure_ascii=False)
        return (f'{{"type":"FeatureCollection","metadata":{head},"features":[' + ",".join(parts) + "]}").encode()

    @staticmethod
    def _compact_map(table: dict) -> bytes:
        """The compact map: ``{"format": "compact", "metadata": {as GeoJSON's, with grid id and version},
        "levels": [[ko, en] x 4], "causes": [text], "reasons": [text], "score": [0-100 | null],
        "level": [0-3 | -1], "value": [number | null], "unknown": [0 | 1], "cause": [index into causes | -1],
        "reason": [index into reasons | -1]}``; arrays hold one entry per cell in ``GET /grid``'s order."""
        levels = table["levels"]
        known = levels >= 0
        causes, cause_codes = _codes(table["causes"])
        reasons, reason_codes = _codes(table["reasons"])
        body = {
            "format": "compact", "metadata": table["metadata"], "levels": [list(level) for level in LEVELS],
            "causes": causes, "reasons": reasons,
            # Python's round, as the GeoJSON's text: the same numbers to the last digit
            "score": [round(s, 1) if k else None for s, k in zip(table["scores"].tolist(), known.tolist(), strict=True)],
            "level": levels.tolist(),
            "value": [_num(v) if k else None for v, k in zip(table["values"].tolist(), known.tolist(), strict=True)],
            "unknown": (~known).astype(int).tolist(), "cause": cause_codes, "reason": reason_codes,
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    # --- the grid, for clients that keep it and fetch compact maps ----------------------------------
    @property
    def grid_id(self) -> str:
        """``<city code>-<cell size in m>``, e.g. ``ICN-500``."""
        return f"{self.grid.city.code}-{self.grid.size_m}"

    @property
    def grid_version(self) -> str:
        """16 hex digits of the SHA-256 of the grid's geometry and cell order (what a client caches by)."""
        return self._grid_parts[0]

    def grid_info(self) -> bytes:
        """``GET /grid`` as JSON bytes (see :meth:`_grid_body`)."""
        return self._grid_parts[1]

    @cached_property
    def _grid_parts(self) -> tuple[str, bytes]:
        body = self._grid_body()
        version = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        text = json.dumps({"id": self.grid_id, "version": version, **body}, ensure_ascii=False, separators=(",", ":"))
        return version, text.encode()

    def _grid_body(self) -> dict:
        """The grid's cells in the order compact maps use: ``cell_id``, ``row``, ``col``, centre ``lat``/``lon``
        (WGS84 degrees), ``district`` (index into ``districts``), and the projection that places them.

        Cell (row, col) is the square whose south-west corner is ``lon = lon_min + col * size_m /
        m_per_deg_lon``, ``lat = lat_min + row * size_m / m_per_deg_lat`` and whose north-east corner is
        at (row + 1, col + 1): a local equirectangular projection scaled at ``lat0``, the same rings the
        GeoJSON map draws (to 6 decimals)."""
        g, cells = self.grid, self.grid.cells
        districts, district_index = _codes(cells["district"].tolist())
        dongs, dong_index = _codes(cells["dong_code"].tolist())
        codes_of = dict(zip(cells["district"], cells["district_code"].astype(str), strict=True))
        dong_names = dict(zip(cells["dong_code"], cells["dong"], strict=True))
        return {"city": g.city.name, "crs": "EPSG:4326", "size_m": g.size_m, "cells": len(cells),
                "projection": {"kind": "local equirectangular", "lon_min": g.lon_min, "lat_min": g.lat_min,
                               "lat0": g.lat0, "m_per_deg_lat": EARTH_M_PER_DEG,
                               "m_per_deg_lon": EARTH_M_PER_DEG * float(np.cos(np.radians(g.lat0)))},
                "n_rows": g.n_rows, "n_cols": g.n_cols, "districts": districts,
                "district_codes": [codes_of[d] for d in districts],
                "dongs": [dong_names[d] for d in dongs], "dong_codes": dongs,
                "cell_id": cells["cell_id"].tolist(), "row": cells["row"].tolist(), "col": cells["col"].tolist(),
                "lat": cells["lat"].tolist(), "lon": cells["lon"].tolist(), "district": district_index,
                "dong": dong_index}

    def predict_records(self, domain: str, records: list[dict]) -> dict:
        """Raw model outputs for feature rows given as {feature: value} objects."""
        spec = self.spec(domain)
        if not records:
            raise ApiError(400, ["records"], "give at least one record")
        if len(records) > MAX_RECORDS:
            raise ApiError(413, ["records"], f"{len(records)} records; at most {MAX_RECORDS} per request",
                           "too_large")
        wanted = set(spec.features)
        for i, rec in enumerate(records):
            if rec.keys() != wanted:
                missing, extra = sorted(wanted - rec.keys()), sorted(rec.keys() - wanted)
                what = (f"missing feature(s) {', '.join(missing)}" if missing else "") + \
                       ("; " if missing and extra else "") + \
                       (f"unknown feature(s) {', '.join(extra)}" if extra else "")
                raise ApiError(400, ["records", i], f"{what} (expected the {len(wanted)} features listed by "
                               f"GET /domains)", "feature_mismatch")
        model = self._model(domain)
        X = pd.DataFrame.from_records(records, columns=list(spec.features)).astype("float64")
        infinite = np.isinf(X.to_numpy())
        if infinite.any():  # NaN is a missing value like null; an infinity is no value a feature can have
            i, j = (int(k) for k in np.argwhere(infinite)[0])
            raise ApiError(400, ["records", i, spec.features[j]], "must be a finite number (or null when missing)",
                           "finite_number")
        pred, unknown = self._predict_rows(spec, model, X)
        if self.recorder is not None:
            self.recorder.add(spec.name, None, X, pred)
        return {"domain": domain, "model_version": model.version, "predictions": [_num(p) for p in pred],
                "unknown_rows": np.flatnonzero(unknown).tolist(),
                **({"unknown_reason": f"a record without {' or '.join(spec.essential)} gets no prediction (null)"}
                   if unknown.any() else {})}

    def _top_factors(self, spec: DomainSpec, model: LoadedModel, rows: pd.DataFrame) -> dict[str, list]:
        """The largest contributions (model margin scale) of each cell's first row."""
        first = rows.drop_duplicates("cell_id")
        contrib = contributions(model.family, model.booster, first[list(spec.features)])[:, :-1]
        out = {}
        for cid, row in zip(first["cell_id"], contrib, strict=True):
            top = np.argsort(-np.abs(row))[:TOP_FACTORS]
            out[cid] = [{"feature": spec.features[j], "contribution": round(float(row[j]), 4)} for j in top]
        return out

    # --- descriptions ----------------------------------------------------------------------------
    def _default_info(self, name: str) -> dict:
        if name not in self._latest:
            return {"default_at": None}
        when, awaited = self.data_time(name)
        return {"default_at": when.isoformat(), "latest_at": self._times_of(name).isoformat(), "awaited": awaited}

    def models_info(self) -> dict:
        out = {}
        for name in self.specs:
            if name in self.models:
                out[name] = {"status": "serving", "model_version": self.models[name].version,
                             **self.models[name].info}
            else:
                out[name] = {"status": "unavailable", "reason": self.problems.get(name, "no model loaded")}
        return {"ready": self.ready, "domains": out}

    def domains_info(self) -> dict:
        out = {}
        for name, spec in self.specs.items():
            s = spec.serving
            out[name] = {
                "title": spec.title, "value": s.value, "unit": s.unit, "horizon_hours": spec.horizon.total_seconds() / 3600,
                **self._default_info(name),
                "earliest_at": self._first[name].isoformat() if name in self._first else None,
                "available": name not in self.unavailable,
                "monotone": dict(spec.monotone), "essential": list(spec.essential),
                "conditions": [{**condition_schema(c), "applicable": c.name not in spec.not_applicable}
                               for c in s.conditions],
                "not_applicable": dict(spec.not_applicable),
                "levels": [{"level": ko, "level_en": en, "score_from": 25 * i, "score_to": 25 * (i + 1),
                            "value_from": s.levels.breaks[i], "value_to": s.levels.breaks[i + 1]}
                           for i, (ko, en) in enumerate(LEVELS)],
                "features": list(spec.features),
                "scenarios": [{"label": label, "conditions": values} for label, values in s.scenarios],
            }
        rules = {source: RULES[source].describe() for source in HOURLY_SOURCES}
        return {"city": self.grid.city.name, "cells": len(self._cell_frame), "grid_m": self.grid.size_m,
                "time_rules": rules, "observations_since": self.grid.city.observations_since.isoformat(),
                "limits": {"locations": MAX_LOCATIONS, "records": MAX_RECORDS,
                           "earliest_at": EARLIEST_AT.isoformat()}, "domains": out}


class LruCache:
    """A small thread-safe least-recently-used map of at most ``size`` entries and, when ``max_bytes`` is
    given, at most that many bytes of ``bytes`` values."""

    def __init__(self, size: int, max_bytes: int | None = None):
        self.size, self.max_bytes, self._data, self._lock = size, max_bytes, OrderedDict(), threading.Lock()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def drop(self, doomed) -> int:
        """Remove the entries whose key ``doomed(key)`` is true; how many."""
        with self._lock:
            keys = [k for k in self._data if doomed(k)]
            for k in keys:
                self.nbytes -= _size(self._data.pop(k))
        return len(keys)

    def put(self, key, value):
        with self._lock:
            if key in self._data:
                self.nbytes -= _size(self._data[key])
            self._data[key] = value
            self.nbytes += _size(value)
            self._data.move_to_end(key)
            while len(self._data) > self.size or (self.max_bytes is not None and self.nbytes > self.max_bytes
                                                  and len(self._data) > 1):
                self.nbytes -= _size(self._data.popitem(last=False)[1])
        return value


def _size(value) -> int:
    if isinstance(value, tuple):
        return sum(len(v) for v in value if isinstance(v, bytes))
    return len(value) if isinstance(value, bytes) else 0


def _missing_by_cell(spec: DomainSpec, rows: pd.DataFrame) -> pd.Series:
    """Per cell_id, the essential inputs missing in any of its rows (an empty list when none)."""
    if not spec.essential:
        return pd.Series([[] for _ in range(rows["cell_id"].nunique())], index=rows["cell_id"].unique())
    gone = rows[list(spec.essential)].isna().groupby(rows["cell_id"].to_numpy(), sort=False).any()
    names = np.array(spec.essential, dtype=object)
    return pd.Series([names[m].tolist() for m in gone.to_numpy()], index=gone.index)


def _unknown_reason(missing: list[str], when: pd.Timestamp) -> str:
    return (f"no data for {', '.join(missing) or 'its essential inputs'} at {when:%Y-%m-%d %H:%M} KST (nothing held "
            "for the cell, and no fallback within reach): the cell is not scored")


def _shown(conds: dict) -> dict:
    """The conditions the answer was built with (defaults included), as JSON values."""
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in conds.items()}


def _codes(items: list) -> tuple[list, list[int]]:
    """The distinct non-null ``items`` in first-seen order, and each item's index among them (-1 for None)."""
    index: dict = {}
    codes = [-1 if x is None else index.setdefault(x, len(index)) for x in items]
    return list(index), codes


def _frozen(conds: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in conds.items()))


def _num(v) -> float | None:
    v = float(v)
    return round(v, 6) if np.isfinite(v) else None


_LEVEL_JSON = [f'"level":"{ko}","level_en":"{en}"' for ko, en in LEVELS]


def _feature_heads(grid) -> list[str]:
    """Each cell's GeoJSON Feature up to its dynamic properties (geometry, cell_id, district), built once."""
    out = []
    for ring, cid, district in zip(grid.rings(), grid.cells["cell_id"], grid.cells["district"], strict=True):
        coords = ",".join(f"[{lon:.6f},{lat:.6f}]" for lon, lat in ring)
        props = json.dumps({"cell_id": cid, "district": district}, ensure_ascii=False)[:-1]
        out.append(f'{{"type":"Feature","geometry":{{"type":"Polygon","coordinates":[[{coords}]]}},'
                   f'"properties":{props},')
    return out

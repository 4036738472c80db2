"""The BentoML service: POST /risk, /risk_map, /predict; GET /models, /domains (and the dashboard) from a
mounted FastAPI app; BentoML's own /healthz, /readyz (false until every model is loaded) and /metrics.

Errors: every 4xx is ``{"error": "<field>: <problem>", "detail": [{"loc", "msg", "type"}]}`` (serving/errors.py).
Access control (URBAN_SAFETY_API_KEY), CORS (URBAN_SAFETY_CORS_ORIGINS) and the request-size limit
(URBAN_SAFETY_MAX_BODY_BYTES) are ASGI middlewares around the whole server (serving/security.py).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import bentoml
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from pydantic import ConfigDict
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import FileResponse, JSONResponse, Response

from features.clock import clock
from features.errors import DataError
from serving.alerts_api import router as alerts_router
from serving.availability import ReadinessMiddleware
from serving.engine import Engine
from serving.errors import ApiError
from serving.grid_api import router as grid_router
from serving.hotspots_api import router as hotspots_router
from serving.places_api import router as places_router
from serving.scenario_api import router as scenario_router
from serving.schemas import DomainName, Location, ObservationSource
from serving.security import (
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    HeadMiddleware,
    SafeErrorsMiddleware,
    cors_options,
    label_unmatched_paths,
    shape_protocol_errors,
)

log = logging.getLogger("urban_safety.serving")
GZIP_LEVEL = 6  # zlib's default: a 100 m GeoJSON map comes out 3% larger than at 9, in 40% of the time
FOLLOW_S = float(os.environ.get("URBAN_SAFETY_FOLLOW_S", "1"))  # how often a worker asks the store for news
TIMEOUT_S = 60  # BentoML's request timeout (wall seconds)
DEADLINE_S = TIMEOUT_S - 5  # work not started by then is not started at all: its client has had a 504
DISCONNECT_POLL_S = 0.5  # how often a waiting request checks that its client is still there
label_unmatched_paths()
shape_protocol_errors()
STATIC = Path(__file__).parent / "static"
web = FastAPI(title="Urban safety risk: read-only routes", docs_url=None, redoc_url=None)
web.mount("/static", StaticFiles(directory=STATIC), name="static")
web.include_router(alerts_router)  # /alerts, /alerts/stream, /replay (serving/alerts_api.py)
web.include_router(hotspots_router)  # POST /hotspots (serving/hotspots_api.py)
web.include_router(scenario_router)  # POST /scenario (serving/scenario_api.py)
web.include_router(grid_router)  # GET /grid, what compact maps index (serving/grid_api.py)
web.include_router(places_router)  # GET /places, 구 and 법정동 outlines and search (serving/places_api.py)


@web.get("/dashboard")
def dashboard() -> Response:
    """The city risk-map page (plain HTML/JS/CSS shipped in serving/static, no CDN)."""
    return FileResponse(STATIC / "dashboard.html", media_type="text/html")


def _engine_or_error():
    svc = bentoml.get_current_service()
    if svc.engine is None:
        return None, JSONResponse({"error": f"service not ready: {svc.startup_problem}",
                                   "detail": [{"loc": [], "msg": svc.startup_problem, "type": "unavailable"}]},
                                  status_code=503)
    return svc.engine, None


@web.get("/models")
def models() -> Response:
    """Which model serves each domain: registry version, run id, trained at, holdout metrics."""
    engine, error = _engine_or_error()
    return error or JSONResponse(engine.models_info())


@web.get("/domains")
def domain_list() -> Response:
    """Each domain's conditions (units, ranges, examples), alert levels and feature list."""
    engine, error = _engine_or_error()
    return error or JSONResponse(engine.domains_info())


def api(route: str):
    """``bentoml.api`` whose request body refuses unknown top-level fields (a misspelt ``condition`` is a
    400 naming it, not a silently ignored field). BentoML infers the body model from the signature;
    this is that model with ``extra="forbid"``."""
    def wrap(func):
        inferred = bentoml.IODescriptor.from_input(func, skip_self=True, skip_names=("ctx",))
        strict = type(inferred.__name__, (inferred,), {"__module__": func.__module__,
                                                      "model_config": ConfigDict(extra="forbid", strict=True)})
        return bentoml.api(route=route, input_spec=strict)(func)
    return wrap


@bentoml.service(
    name="urban_safety_risk",
    workers=int(os.environ.get("URBAN_SAFETY_WORKERS", "1")),
    traffic={"timeout": TIMEOUT_S},
)
@bentoml.asgi_app(web, path="/")
class RiskService:
    """Risk predictions for the city's safety department and dashboards."""

    def __init__(self) -> None:
        from serving.model_store import load_context, load_models

        self.engine: Engine | None = None
        self.startup_problem = ""
        try:
            clock()  # a misconfigured URBAN_SAFETY_CLOCK_* is a reason not to be ready, not a 500 per request
            sources, store, version = load_context()
            models, problems = load_models()
            self.engine = Engine(sources, models, problems, store=store, version=version)
            for domain, reason in problems.items():
                log.error("domain %s not served: %s", domain, reason)
        except Exception as exc:  # report not-ready with the reason instead of crash-looping
            self.startup_problem = f"{type(exc).__name__}: {exc}"
            log.exception("service could not start its engine")
        # Feature building and prediction run on one thread per worker (one worker per core), in arrival
        # order: more threads would only take turns on the interpreter lock, unfairly, stretching the tail.
        self._compute = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compute")
        # Writes to the observation store wait on its lock, not on the interpreter: a thread of their own.
        self._ingest = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")
        if self.engine is not None and self.engine.store is not None:
            from live.monitor import Recorder
            from live.webhooks import start_delivery

            self.engine.recorder = Recorder("service")
            threading.Thread(target=self._follow, name="follow", daemon=True).start()
            start_delivery(self.engine.store.engine)  # acknowledgements' webhooks, sent within seconds
        # The data and models loaded above live as long as the worker: keep them out of the garbage
        # collector's full passes, which otherwise stall a request for ~130 ms every few thousand.
        gc.collect()
        gc.freeze()

    def _follow(self) -> None:
        """Every FOLLOW_S, take what the store received (on the compute thread, so no answer is built from
        half-swapped data; the cached answers that read it go with it) and write the sample of answered rows."""
        while True:
            time.sleep(FOLLOW_S)
            try:
                if self.engine.store.version() != self.engine.version:
                    self._compute.submit(self._take_new).result()
                self.engine.recorder.flush(self.engine.store.engine)  # what was answered, for monitoring
            except Exception:  # a store that blips must not stop the following
                log.exception("following the observation store failed; retrying")

    def _take_new(self) -> None:
        start = time.perf_counter()
        try:
            changes = self.engine.follow()
        except Exception:  # a store that blips: the follower thread asks again
            log.exception("taking new observations from the store failed")
            return
        if changes:
            log.info("took %s from the observation store in %.2f s (version %d)",
                     ", ".join(f"{len(c.rows)} {c.source}" for c in changes), time.perf_counter() - start,
                     self.engine.version)

    def __is_ready__(self) -> bool:
        return self.engine is not None and self.engine.ready

    def _call(self, fn, *args):
        if self.engine is None:
            return ApiError(503, [], f"service not ready: {self.startup_problem}", "unavailable").response()
        try:
            return fn(*args)
        except ApiError as exc:
            return exc.response()

    async def _computed(self, fn, *args, ctx: bentoml.Context | None = None):
        """``fn(*args)`` on the compute thread, in arrival order. Work whose client has gone, or that waited
        past the request deadline, is not started (a queue of abandoned map requests must not hold up the
        next one); work already running finishes, its answer unread."""
        queued = time.monotonic()

        def run():
            waited = time.monotonic() - queued
            if waited > DEADLINE_S:
                return ApiError(503, [], f"the request waited {waited:.0f} s for the compute thread, past its "
                                f"{DEADLINE_S:.0f} s deadline, and was not started: try again, or ask for fewer "
                                "locations or a coarser map format", "deadline").response()
            return self._call(fn, *args)

        future = asyncio.get_running_loop().run_in_executor(self._compute, run)
        request = getattr(ctx, "request", None)
        while request is not None:
            done, _ = await asyncio.wait({future}, timeout=DISCONNECT_POLL_S)
            if done:
                break
            if await request.is_disconnected():
                future.cancel()  # a job not yet started never runs
                return _answered(ctx, Response(status_code=499))
        return _answered(ctx, await future)

    @api("/risk")
    async def risk(self, domain: DomainName, locations: list[Location], conditions: dict[str, Any] | None = None,
                   at: datetime | None = None, ctx: bentoml.Context = None) -> dict:
        """Risk at each location: cell, score 0-100, alert level, value, top factors, cause, model version."""
        locs = [loc.model_dump() for loc in locations]

        def answer(build: bool):
            body = self.engine.risk(domain.value, locs, at, conditions, build=build)
            return None if body is None else Response(body, media_type="application/json")

        # Held answers (and errors) straight from the event loop; anything to build on the compute thread.
        return _answered(ctx, self._call(answer, False)) or await self._computed(answer, True, ctx=ctx)

    @api("/risk_map")
    async def risk_map(self, domain: DomainName, conditions: dict[str, Any] | None = None,
                       at: datetime | None = None, format: Literal["geojson", "compact"] = "geojson",
                       ctx: bentoml.Context = None) -> dict:
        """Every cell's score, level and value: a GeoJSON FeatureCollection, or with ``format: "compact"``
        per-cell arrays in GET /grid's order (serving/engine.py ``Engine.risk_map``)."""
        media = "application/geo+json" if format == "geojson" else "application/json"
        return await self._computed(lambda: Response(self.engine.risk_map(domain.value, at, conditions, format),
                                                     media_type=media), ctx=ctx)

    @api("/observations")
    async def observations(self, source: ObservationSource, rows: list[dict[str, Any]] | None = None,
                           response: dict[str, Any] | None = None, label: str | None = None) -> dict:
        """Append a batch of one source's observations: ``rows`` as the open API's items or canonical rows
        (``{"station_id": 112, "time": "2024-07-17 11:00", "rain_mm": 80.0}``), or the API's whole JSON
        ``response``. Answers how many rows were accepted, duplicate and refused (each with its row and
        reason); every worker takes the new rows within seconds."""
        def ingest():
            from live.ingest import MAX_ROWS, ingest_rows, report

            if (rows is None) == (response is None):
                raise ApiError(400, ["rows"], "give either `rows` (a list of rows) or `response` (the open API's "
                               "JSON response), not both or neither")
            if rows is not None and not rows:
                raise ApiError(400, ["rows"], "give at least one row")
            if rows is not None and len(rows) > MAX_ROWS:
                raise ApiError(413, ["rows"], f"{len(rows)} rows; at most {MAX_ROWS} per batch", "too_large")
            if self.engine.store is None:
                raise ApiError(503, [], "the service has no observation store to append to", "unavailable")
            try:
                # ``response``: the API's whole JSON ({"response": {"header", "body"}}) or its inner object
                whole = response if response is None or "response" in response else {"response": response}
                result = ingest_rows(self.engine.store, source.value, rows if rows is not None else whole,
                                     self.engine.sources.city, "api", label)
            except DataError as exc:
                raise ApiError(400, ["rows" if rows is not None else "response"], _batch_problem(exc),
                               "invalid_batch") from None
            return report(result)

        answer = await asyncio.get_running_loop().run_in_executor(self._ingest, self._call, ingest)
        if isinstance(answer, dict) and answer.get("accepted"):
            # Read-your-writes: this worker takes the rows before it answers (the held answers they change
            # are dropped with them), so the client's next question here sees them.
            await asyncio.wrap_future(self._compute.submit(self._take_new))
        return answer

    @api("/predict")
    async def predict(self, domain: DomainName, records: list[dict[str, float | None]]) -> dict:
        """Raw model outputs for feature rows ({feature: value}, the features listed by GET /domains)."""
        return await self._computed(lambda: self.engine.predict_records(domain.value, records))


def _answered(ctx, answer):
    """``answer`` with its status kept: BentoML sets the status of an API taking ``ctx`` from ``ctx.response``."""
    if ctx is not None and isinstance(answer, Response):
        ctx.response.status_code = answer.status_code
    return answer


def _batch_problem(exc: DataError) -> str:
    """A batch error without the temporary file's path (the client sent rows, not a file)."""
    where = ", ".join(p for p in (f"row {exc.row}" if exc.row is not None else None,
                                  f"field {exc.column!r}" if exc.column else None) if p)
    message = str(exc).split(": ", 1)[-1] if exc.file else str(exc)
    return f"{where}: {message}" if where else message


# BentoML wraps its whole Starlette app (its API routes, /healthz.., and the mounted FastAPI app) in these,
# the first added outermost: error bodies are shaped and made safe last; CORS answers preflights and tags every answer
# (401 and 413 included, so a browser can read them); then the key, then the size limit, both before
# anything reads the body.
# Outermost: answers leave gzip'd when the client accepts it (Starlette compresses large bodies on a worker
# thread; server-sent events are left alone), after the error bodies were shaped from plain text.
RiskService.add_asgi_middleware(GZipMiddleware, minimum_size=1024, compresslevel=GZIP_LEVEL)
RiskService.add_asgi_middleware(SafeErrorsMiddleware)
RiskService.add_asgi_middleware(ReadinessMiddleware)  # /readyz says which domains serve, and why not
if cors := cors_options():  # the methods and headers the dashboard and the event stream send
    RiskService.add_asgi_middleware(CORSMiddleware, **cors)
RiskService.add_asgi_middleware(HeadMiddleware)  # HEAD on every GET route: its headers, no body
RiskService.add_asgi_middleware(ApiKeyMiddleware)
RiskService.add_asgi_middleware(BodyLimitMiddleware)

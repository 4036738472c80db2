"""``POST /hotspots``: the traffic cells (or 동, or districts) ranked by the accidents and harm expected over a
period, forecast from the accident record before ``as_of`` (a FastAPI router; the ranking is
serving/hotspots.py).

Body ``{"period": {"from": "2024-01-01", "to": "2025-01-01"}, "as_of": "2024-01-01", "top_n": 100,
"by": "eclo"|"count", "method": "auto"|"model"|"eb"|"excess"|"counts"|"counts_3y",
"group": "cell"|"dong"|"district", "format": "json"|"csv"|"geojson"}``: the period is ``[from, to)`` in KST
dates, at most 366 days; ``as_of`` (default: the earlier of the day after the newest accident held and
``from``) must lie between a year after the record's first day and the earlier of ``from`` and the day
after the newest accident, and ``from`` at most two years after it; ``top_n`` 1-1000 (default 100). Needs the accident records only (no hourly traffic model,
no weather): a city without static layers ranks with a city-wide safety performance function.

Answer (JSON; the list under ``cells``, or ``units`` for 동 and districts): the question as answered (period, as_of, method and why, exposure in years, notes, the
inputs not applicable in this city, tier breakpoints) and one object per listed unit: rank, cell (or 동 /
district with its cell count and best cell), expected and observed axes (observed null for a period the
record does not reach), tiers, and for cells the dominant accident types, the Empirical Bayes parts and,
under the model, its top factors. ``format`` csv or geojson returns the same list as a file.
Errors are the API's shape (serving/errors.py): 400 naming the field and the allowed range.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from features.errors import DataError
from serving import hotspots as sh
from serving.errors import ApiError, documented_body, read_body, service_engine

router = APIRouter()


def _date_text(value):
    """A day is given as text, ``YYYY-MM-DD``: a number is not a date (not a Unix time either)."""
    if not isinstance(value, str | date):
        raise PydanticCustomError("date_type", "expected a date as text, YYYY-MM-DD")
    return value


Day = Annotated[date, BeforeValidator(_date_text)]


class Period(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    start: Day = Field(alias="from", description="first day of the period (KST), YYYY-MM-DD")
    end: Day = Field(alias="to", description="day after the last day of the period (KST), YYYY-MM-DD")


class HotspotsBody(BaseModel):
    """``POST /hotspots``: the period, when the forecast is made, how many units to list and how."""

    model_config = ConfigDict(extra="forbid")
    period: Period
    as_of: Day | None = Field(None, description="nothing dated on or after this day is read (default: the earlier "
                                                 "of the day after the newest accident held and period.from)")
    top_n: int = Field(100, ge=1, le=1000, strict=True)
    by: Literal["eclo", "count"] = "eclo"
    method: Literal[sh.METHOD_CHOICES] = "auto"
    group: Literal["cell", "dong", "district"] = "cell"
    format: Literal["json", "csv", "geojson"] = "json"


def _num(v):
    v = float(v)
    return round(v, 4) if np.isfinite(v) else None


def _count(v):
    v = float(v)
    return int(round(v)) if np.isfinite(v) else None


def _ranked(engine, body: HotspotsBody) -> sh.Hotspots:
    try:
        return sh.rank(engine.sources, body.period.start, body.period.end, body.as_of, body.by, body.method,
                       body.group)
    except DataError as exc:
        loc = (exc.column or "period").split(".")
        raise ApiError(400, loc, exc.message) from None


def answer(engine, body: HotspotsBody) -> dict:
    """The JSON answer of ``POST /hotspots`` (plain Python: called on a worker thread)."""
    result = _ranked(engine, body)
    explained = sh.explain(engine.sources, result, body.top_n)
    observed = result.observed_through is not None
    units = []
    for row in result.top(body.top_n).to_dict("records"):
        unit = {"rank": int(row["rank"]), "district": row["district"], "lat": _num(row["lat"]), "lon": _num(row["lon"])}
        if body.group == "cell":
            unit = {"rank": unit["rank"], "cell_id": row["cell_id"], "dong": row["dong"], **unit}
        else:
            unit |= {"dong": row["dong"]} if body.group == "dong" else {}
            unit |= {"cells": int(row["cells"]), "top_cell": row["top_cell"]}
        unit["expected"] = {"accidents": _num(row["expected_accidents"]), "eclo": _num(row["expected_eclo"]),
                            "serious_casualties": _num(row["expected_serious"]),
                            "casualties": _num(row["expected_casualties"])}
        unit["observed"] = {"accidents": _count(row["observed_accidents"]), "eclo": _num(row["observed_eclo"]),
                            "serious_casualties": _count(row["observed_serious"]),
                            "casualties": _count(row["observed_casualties"])} if observed else None
        unit["tiers"] = {kind: {axis: row[f"{kind}_{axis}_tier"] for axis in sh.AXES}
                         for kind in ("expected", "observed") if f"{kind}_frequency_tier" in row}
        if body.group == "cell":
            unit |= {"eclo_per_accident": _num(row["eclo_per_accident"]), **explained.get(row["cell_id"], {})}
        units.append(unit)
    key = "cells" if body.group == "cell" else "units"
    return {**sh.meta(result), "top_n": body.top_n, "seconds": round(result.seconds, 3), key: units}


def _file(engine, body: HotspotsBody) -> tuple[str, str]:
    result = _ranked(engine, body)
    name = f"hotspots_{body.period.start:%Y%m%d}_{body.period.end:%Y%m%d}_{body.group}"
    if body.format == "csv":
        return sh.csv_text(result, body.top_n), name + ".csv"
    explained = sh.explain(engine.sources, result, body.top_n)
    return sh.geojson_text(result, engine.grid, body.top_n, explained), name + ".geojson"


@router.post("/hotspots", openapi_extra=documented_body(HotspotsBody))
async def post_hotspots(request: Request) -> Response:
    """Traffic hotspots of a period, forecast from the record before ``as_of``: ranked, tiered, explained."""
    body, problem = read_body(await request.body(), HotspotsBody, "period, as_of, top_n, by, method, group, format")
    if problem is not None:
        return problem
    try:
        if body.format == "json":
            return JSONResponse(await run_in_threadpool(answer, service_engine(), body))
        text, name = await run_in_threadpool(_file, service_engine(), body)
    except ApiError as exc:
        return exc.response()
    media = "text/csv; charset=utf-8" if body.format == "csv" else "application/geo+json"
    return Response(text, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})

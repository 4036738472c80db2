"""``POST /hotspots``: the traffic cells ranked by expected ECLO or accidents over a period (a FastAPI router).

Body ``{"period": {"from": "2023-01-01", "to": "2024-01-01"}, "top_n": 100, "by": "eclo"|"count"}``
(``top_n`` 1-1000, default 100; ``by`` default ``eclo``). The period is ``[from, to)`` in KST dates, at most
366 days, within the traffic observations the service holds. Answer: the period, the slots counted, the
tier breakpoints and one object per listed cell (rank, cell, expected and observed axes with their tiers,
top factors); see features/domains/traffic/hotspots.py for the estimators. Errors are the API's shape
(serving/errors.py): 400 for an unknown field, a bad date (naming the field), a period out of range;
503 when the traffic model is not loaded.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from features.domains.traffic import hotspots as th
from serving.errors import ApiError, answer_body, documented_body

router = APIRouter()
DOMAIN = "traffic"
MAX_DAYS = 366


class Period(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    start: date = Field(alias="from", description="first day of the period (KST)")
    end: date = Field(alias="to", description="day after the last day of the period (KST)")


class HotspotsBody(BaseModel):
    """``POST /hotspots``: the period, how many cells to list and what to rank by."""

    model_config = ConfigDict(extra="forbid")
    period: Period
    top_n: int = Field(100, ge=1, le=1000, strict=True)
    by: Literal["eclo", "count"] = "eclo"


def _check_period(engine, period: Period) -> tuple[pd.Timestamp, pd.Timestamp]:
    start, end = pd.Timestamp(period.start), pd.Timestamp(period.end)
    if end <= start:
        raise ApiError(400, ["period", "to"], f"{period.end} must be after from ({period.start})")
    if (end - start).days > MAX_DAYS:
        raise ApiError(400, ["period"], f"{(end - start).days} days; at most {MAX_DAYS}", "too_long")
    first, now = engine.times(DOMAIN)
    if start < first.normalize():
        raise ApiError(400, ["period", "from"], f"{period.start} is before the traffic observations the service "
                       f"holds (from {first:%Y-%m-%d})")
    if end > now.normalize() + pd.Timedelta(days=1):
        raise ApiError(400, ["period", "to"], f"{period.end} is after the day after the newest traffic "
                       f"observations the service holds ({now:%Y-%m-%d})")
    return start, end


def _num(v):
    v = float(v)
    return round(v, 4) if np.isfinite(v) else None


def answer(engine, body: HotspotsBody) -> dict:
    """The JSON answer of ``POST /hotspots`` (plain Python: called on a worker thread)."""
    if DOMAIN in engine.unavailable or DOMAIN not in engine.models:
        reason = engine.problems.get(DOMAIN, "no model loaded")
        raise ApiError(503, ["domain"], f"the traffic model is not available: {reason}", "unavailable")
    start, end = _check_period(engine, body.period)
    model = engine.models[DOMAIN]
    result = th.hotspots(engine.sources, model.family, model.booster, start, end, body.by, body.top_n)
    listed = result.top(body.top_n)
    cells = []
    for row in listed.to_dict("records"):
        cells.append({
            "rank": int(row["rank"]), "cell_id": row["cell_id"], "district": row["district"],
            "lat": row["lat"], "lon": row["lon"],
            "expected": {"accidents": _num(row["expected_accidents"]), "eclo": _num(row["expected_eclo"]),
                         "serious_casualties": _num(row["expected_serious"]),
                         "casualties": _num(row["expected_casualties"])},
            "observed": {"accidents": int(row["observed_accidents"]), "eclo": _num(row["observed_eclo"]),
                         "serious_casualties": int(row["observed_serious"]),
                         "casualties": int(row["observed_casualties"])},
            "tiers": {kind: {axis: row[f"{kind}_{axis}_tier"] for axis in th.AXES}
                      for kind in ("expected", "observed")},
            "eclo_per_accident": _num(row["eclo_per_accident"]), "unknown_slots": int(row["unknown_slots"]),
            "top_factors": result.factors.get(row["cell_id"], []),
        })
    return {"domain": DOMAIN, "period": {"from": body.period.start.isoformat(), "to": body.period.end.isoformat()},
            "by": body.by, "top_n": body.top_n, "slots": result.slots, "model_version": model.version,
            "tier_breakpoints": {k: [_num(a), _num(b)] for k, (a, b) in result.breakpoints.items()},
            "cells": cells}


@router.post("/hotspots", openapi_extra=documented_body(HotspotsBody))
async def post_hotspots(request: Request) -> Response:
    """The traffic hotspots of a period: cells ranked by expected ECLO (or accidents), tiered, explained."""
    return await answer_body(await request.body(), HotspotsBody, "period, top_n and by", answer)

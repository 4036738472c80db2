"""``POST /scenario``: an earthquake scenario's consequences for the city and each district (a FastAPI router).

Body ``{"conditions": {"magnitude": 5.5, "epicentre_lat": 37.45, "epicentre_lon": 126.45, "depth_km": 10},
"population": "night"|"day", "at": "2023-06-01T00:00:00"}`` (``depth_km`` default 10 km, ``population``
default night, ``at`` default the newest time the held data describe: only buildings approved by then
count). Answer: the city's and each district's buildings, expected buildings by damage state, structural
loss in KRW and expected casualties by HAZUS severity, with their units; the physics estimate of
features/domains/earthquake/consequences.py, the same numbers ``POST /risk`` gives per cell in
``details``. Errors are the API's shape (serving/errors.py): 400 naming the field for an unknown field,
a missing or out-of-range condition, a bad population or ``at``; 503 when the earthquake domain has no data.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from features.domains.earthquake import consequences as cq
from features.domains.earthquake import seismic
from features.registry import get_domain
from serving.engine import conditions_model
from serving.errors import ApiError, answer_body, documented_body

router = APIRouter()
DOMAIN = "earthquake"
# The scenario's conditions exactly as /risk validates the earthquake's (types, ranges, unknown fields), less
# the answer-only ones: the population is a field of the body here.
_SPEC = get_domain(DOMAIN)
ScenarioConditions = conditions_model(replace(_SPEC, serving=replace(
    _SPEC.serving, conditions=tuple(c for c in _SPEC.serving.conditions if c.name != "population"))))


class ScenarioBody(BaseModel):
    """``POST /scenario``: the scenario, whose population the casualties count, and the time of the stock."""

    model_config = ConfigDict(extra="forbid")
    conditions: ScenarioConditions
    population: Literal["night", "day"] = Field(cq.DEFAULT_POPULATION, description="night: 02:00, pop_night; "
                                                "day: 14:00, pop_day")
    at: datetime | None = Field(None, description="buildings approved by then count (KST); default the newest "
                                "time the held data describe")



def answer(engine, body: ScenarioBody) -> dict:
    """The JSON answer of ``POST /scenario`` (plain Python: called on a worker thread)."""
    if DOMAIN not in engine.specs:
        raise ApiError(503, [], "this service has no earthquake domain", "unavailable")
    spec = engine.spec(DOMAIN)  # 503 naming why when the city does not run it or holds no data
    when = engine.at(spec, body.at)
    given = body.conditions.model_dump(exclude_none=True)
    conditions = cq.scenario_conditions(given)
    conditions.setdefault("depth_km", seismic.DEFAULT_DEPTH_KM)
    sources = engine.sources  # one snapshot for the whole answer
    engine.conditions(spec, given)  # the checks /risk makes (an epicentre too far for the ground motion)
    report = cq.report(sources, conditions, given.get("magnitude_type", "ML"), when, body.population)
    return {"domain": DOMAIN, "at": when.isoformat(), "conditions": conditions, "population": body.population,
            "units": cq.UNITS, **report}


@router.post("/scenario", openapi_extra=documented_body(ScenarioBody))
async def post_scenario(request: Request) -> Response:
    """An earthquake scenario's expected damage states, loss (KRW) and casualties for the city and each district."""
    return await answer_body(await request.body(), ScenarioBody, "conditions, population and at", answer)

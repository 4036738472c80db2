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
    _SPEC.serving, conditions=tuple(c for c in _SPEC.serving.conditions if not c.answer_only))))


class ScenarioBody(BaseModel):
    """``POST /scenario``: the scenario, whose population the casualties count, and the time of the stock."""

    model_config = ConfigDict(extra="forbid")
    conditions: ScenarioConditions
    population: Literal["night", "day"] = Field(cq.DEFAULT_POPULATION, description="night: 02:00, pop_night; "
                                                "day: 14:00, pop_day")
    at: datetime | None = Field(None, description="buildings approved by then count (KST); default the newest "
                                "time the held data describe")


UNITS = {
    "buildings": "buildings standing at `at` (count)",
    "damage_states": "expected buildings in each HAZUS damage state (exactly that state)",
    "loss_krw": "KRW: expected structural repair cost (floor area x replacement cost per m² x HAZUS damage ratio)",
    "casualties": "expected people, HAZUS severity 1 (first aid) .. 4 (killed), indoors",
    "injuries": "expected people at HAZUS severity 1-3", "deaths": "expected people at HAZUS severity 4",
    "displaced": "expected residents displaced (HAZUS shelter model: homes uninhabitable)",
    "population": "people counted (the cells' day or night population, all indoors)",
    "ranges": "5th and 95th percentiles over 200 sampled ground-motion fields (between-event and spatially "
              "correlated within-event variability, Jayaram and Baker 2009) with the fragility dispersion; "
              "means add up over districts, quantiles do not",
}
# Counts are expectations: rounded so that totals of a few buildings or people still read.
_DIGITS = {"buildings": 0, "loss_krw": 0, "loss_krw_p05": 0, "loss_krw_p95": 0, "population": 0}


def _summary(row: dict) -> dict:
    def num(key: str) -> float:
        return round(float(row[key]), _DIGITS.get(key, 3))

    return {"buildings": int(round(row["buildings"])), "damage_states": {s: num(s) for s in cq.STATES},
            "moderate_or_worse": round(float(sum(row[s] for s in cq.STATES[1:])), 3),
            "loss_krw": int(round(row["loss_krw"])), "casualties": {s: num(s) for s in cq.SEVERITIES},
            "injuries": num("injuries"), "deaths": num("deaths"), "displaced": num("displaced"),
            "population": int(round(row["population"])),
            "ranges": {q: {"p05": num(f"{q}_p05"), "p95": num(f"{q}_p95")} for q in cq.QUANTITIES
                       if f"{q}_p05" in row}}


def answer(engine, body: ScenarioBody) -> dict:
    """The JSON answer of ``POST /scenario`` (plain Python: called on a worker thread)."""
    if DOMAIN not in engine.specs:
        raise ApiError(503, [], "this service has no earthquake domain", "unavailable")
    spec = engine.spec(DOMAIN)  # 503 naming why when the city does not run it or holds no data
    when = engine.at(spec, body.at)
    conditions = cq.scenario_conditions(body.conditions.model_dump())
    conditions.setdefault("depth_km", seismic.DEFAULT_DEPTH_KM)
    sources = engine.sources  # one snapshot for the whole answer
    cells, sums = cq.consequences(sources, conditions, when, body.population)
    city = cq.totals(cells, sums).iloc[0].to_dict()
    districts = cq.totals(cells, sums, by=["district_code", "district"]).to_dict("records")
    shaken = cells.loc[cells["buildings"] > 0, "pga_g"]
    return {
        "domain": DOMAIN, "at": when.isoformat(), "conditions": conditions, "population": body.population,
        "units": UNITS, "method": "HAZUS-MH fragility at BSSA14 ground motion (physics; not the model's value)",
        "max_pga_g": round(float(shaken.max()), 4) if len(shaken) else None,
        "city": _summary(city),
        "districts": [{"district": d["district"], "district_code": int(d["district_code"]), **_summary(d)}
                      for d in districts],
    }


@router.post("/scenario", openapi_extra=documented_body(ScenarioBody))
async def post_scenario(request: Request) -> Response:
    """An earthquake scenario's expected damage states, loss (KRW) and casualties for the city and each district."""
    return await answer_body(await request.body(), ScenarioBody, "conditions, population and at", answer)

"""A BentoML service that does nothing: the framework's own floor for /risk-shaped requests on this machine,
measured by bench/serve_load.py in the same run as the real service."""

from __future__ import annotations

import os

import bentoml
from pydantic import BaseModel


class Point(BaseModel):
    lat: float | None = None
    lon: float | None = None
    cell_id: str | None = None


@bentoml.service(workers=int(os.environ.get("URBAN_SAFETY_WORKERS", "1")))
class Noop:
    @bentoml.api(route="/risk")
    async def risk(self, domain: str, locations: list[Point]) -> dict:
        return {"domain": domain, "results": [p.model_dump() for p in locations]}

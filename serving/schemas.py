"""Request bodies as the API's OpenAPI document shows them; every field typed and ranged."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.registry import domains
from live.store import LIVE_SOURCES

DomainName = StrEnum("DomainName", {name: name for name in domains()})
ObservationSource = StrEnum("ObservationSource", {name: name for name in LIVE_SOURCES})


class Location(BaseModel):
    """A point ({lat, lon}, WGS84) or a grid cell ({cell_id})."""

    model_config = ConfigDict(extra="forbid", strict=True)  # JSON types as documented: no `true` as a latitude
    lat: float | None = Field(None, ge=-90, le=90, examples=[37.4777])
    lon: float | None = Field(None, ge=-180, le=180, examples=[126.6249])
    cell_id: str | None = Field(None, min_length=1, max_length=64, examples=["ICN-500-027-039"])

    @model_validator(mode="after")
    def _one_form(self) -> Location:
        if self.cell_id is None and (self.lat is None or self.lon is None):
            raise ValueError("give either cell_id or both lat and lon")
        if self.cell_id is not None and (self.lat is not None or self.lon is not None):
            raise ValueError("give either cell_id or lat/lon, not both")
        return self

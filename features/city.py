"""The city as configuration: boundary, districts and stations, read from a TOML file."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

from pydantic import BaseModel, Field

from features.errors import DataError

CITIES_DIR = Path(__file__).parent / "cities"


class Land(BaseModel):
    name: str
    polygon: list[tuple[float, float]]  # (lon, lat) vertices


class District(BaseModel):
    code: int
    name: str
    name_en: str
    seat: tuple[float, float]  # (lon, lat)
    land: list[str]


class WeatherStation(BaseModel):
    id: int
    name: str
    kind: str  # asos | aws
    lon: float
    lat: float
    nx: int
    ny: int
    upwind: bool = False


class AirStation(BaseModel):
    code: int
    name: str
    region: str
    lon: float
    lat: float
    background: bool = False


class Tide(BaseModel):
    station: str
    code: str
    lon: float
    lat: float
    alert_cm: list[float]


class SeismicRegion(BaseModel):
    lon: tuple[float, float]
    lat: tuple[float, float]


class City(BaseModel):
    """Everything city-specific. Another city is another TOML file with the same keys."""

    name: str
    code: str
    timezone: str = "Asia/Seoul"
    grid_m: int = Field(500, ge=100, le=5000)
    land: list[Land]
    districts: list[District]
    weather_stations: list[WeatherStation]
    air_stations: list[AirStation]
    tide: Tide
    seismic_region: SeismicRegion
    # A cell whose nearest weather station has no observation for an hour reads the next nearest station
    # of the same kind within this distance (km), and the answer says so; beyond it the input is unknown.
    # 10 km is a configured choice (about the spacing of the city's AWS network), not a published constant.
    station_fallback_km: float = Field(10.0, ge=0, le=100)
    # The domains this city runs (trains, serves); None = every registered domain. A city with weather
    # and air quality only names ["fine_dust"]; the others then answer 503 saying they are not run.
    domains: list[str] | None = None

    def district_by_code(self) -> dict[int, District]:
        return {d.code: d for d in self.districts}

    def runs(self, domain: str) -> bool:
        """Whether this city runs ``domain``."""
        return self.domains is None or domain in self.domains


def domain_names() -> list[str]:
    """The domains there are: one package each in ``features/domains`` (named as the domain), read without
    importing them (a city loads while the registry may still be filling)."""
    import features.domains as pkg

    return sorted(info.name for info in pkgutil.iter_modules(pkg.__path__) if not info.name.startswith("_"))


def load_city(name_or_path: str, grid_m: int | None = None) -> City:
    """Load a built-in city by name (``incheon``) or any city TOML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CITIES_DIR / f"{name_or_path}.toml"
    if not path.exists():
        known = ", ".join(p.stem for p in sorted(CITIES_DIR.glob("*.toml")))
        raise DataError(f"{path}: no such city config (built-in cities: {known})")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        city = City.model_validate(raw)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise DataError(f"{path}: invalid city config: {exc}") from exc
    known = domain_names()
    unknown = sorted(set(city.domains or ()) - set(known))
    if unknown:
        raise DataError(f"{path}: invalid city config: unknown domains {unknown}; known: {', '.join(known)}")
    if grid_m is not None:
        city = city.model_copy(update={"grid_m": grid_m})
    return city

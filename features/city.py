"""The city as configuration: boundary, districts and stations, read from a TOML file."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

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


# Replacement (new-construction) cost, KRW per m² of floor area, by HAZUS occupancy (the register's 주용도,
# mapped in features/domains/earthquake/consequences.py) and structure family (주구조). Defaults in the
# spirit of 한국부동산원 (Korea Real Estate Board, formerly Korea Appraisal Board) 건물신축단가표, the
# new-construction unit-cost table appraisers use; they are round figures of its order of magnitude, not
# the published table: a city replaces them with the current edition's figures in its TOML file.
DEFAULT_REPLACEMENT_KRW_PER_M2: dict[str, dict[str, float]] = {
    "RES1": {"concrete": 2_100_000, "masonry": 1_650_000, "steel": 1_700_000, "wood": 1_900_000, "other": 1_700_000},
    "RES3": {"concrete": 2_000_000, "masonry": 1_600_000, "steel": 1_800_000, "wood": 1_800_000, "other": 1_800_000},
    "RES4": {"concrete": 2_300_000, "masonry": 1_800_000, "steel": 2_000_000, "wood": 1_900_000, "other": 2_000_000},
    "COM1": {"concrete": 1_900_000, "masonry": 1_500_000, "steel": 1_500_000, "wood": 1_600_000, "other": 1_600_000},
    "COM2": {"concrete": 1_300_000, "masonry": 1_100_000, "steel": 900_000, "wood": 1_000_000, "other": 1_000_000},
    "COM4": {"concrete": 2_400_000, "masonry": 1_800_000, "steel": 2_200_000, "wood": 1_900_000, "other": 2_100_000},
    "COM6": {"concrete": 2_800_000, "masonry": 2_100_000, "steel": 2_600_000, "wood": 2_200_000, "other": 2_500_000},
    "IND2": {"concrete": 1_500_000, "masonry": 1_200_000, "steel": 1_100_000, "wood": 1_100_000, "other": 1_200_000},
    "EDU1": {"concrete": 2_300_000, "masonry": 1_800_000, "steel": 2_000_000, "wood": 1_900_000, "other": 2_000_000},
    "REL1": {"concrete": 2_200_000, "masonry": 1_700_000, "steel": 1_800_000, "wood": 1_900_000, "other": 1_900_000},
}


class EarthquakeCosts(BaseModel):
    """Costs the earthquake consequences and retrofit ranking use (KRW); every field is optional."""

    # {occupancy: {structure family: KRW/m²}}; an entry left out keeps its default above.
    replacement_krw_per_m2: dict[str, dict[str, float]] = Field(default_factory=dict)
    # Seismic retrofit cost per m² of floor area; None: the retrofit ranking prints no programme cost.
    retrofit_krw_per_m2: float | None = Field(None, gt=0)

    @field_validator("replacement_krw_per_m2")
    @classmethod
    def _known_keys(cls, table: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        families = tuple(DEFAULT_REPLACEMENT_KRW_PER_M2["RES1"])
        for occ, costs in table.items():
            if occ not in DEFAULT_REPLACEMENT_KRW_PER_M2:
                raise ValueError(f"unknown occupancy {occ!r}; known: {', '.join(DEFAULT_REPLACEMENT_KRW_PER_M2)}")
            for family, krw in costs.items():
                if family not in families:
                    raise ValueError(f"{occ}: unknown structure family {family!r}; known: {', '.join(families)}")
                if not krw > 0:
                    raise ValueError(f"{occ}.{family}: {krw} KRW/m²; must be positive")
        return table

    def replacement(self) -> dict[str, dict[str, float]]:
        """The default table overlaid with this city's entries."""
        out = {occ: dict(costs) for occ, costs in DEFAULT_REPLACEMENT_KRW_PER_M2.items()}
        for occ, costs in self.replacement_krw_per_m2.items():
            out.setdefault(occ, {}).update(costs)
        return out


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
    # Replacement and retrofit costs for earthquake consequences (defaults: EarthquakeCosts's).
    earthquake_costs: EarthquakeCosts = Field(default_factory=EarthquakeCosts)

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

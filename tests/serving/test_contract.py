"""One strict contract, on a real server: each kind of fault the outside probes found, beyond their exact inputs.

Unknown fields at the top level are a 400 naming them; JSON types are strict; a body that is not JSON is a 415;
a stalled body a 408 well before the server's own timeout; +09:00 is KST; a client's text never changes an
error's kind; /metrics labels only the routes the server serves."""

from __future__ import annotations

import re
import socket
import time
import uuid
from urllib.parse import urlparse

import httpx
import pandas as pd
import pytest

from tests.serving.conftest import BODY_TIMEOUT_S

CELL_ROUTES = ("/risk", "/risk_map", "/predict")


@pytest.fixture(scope="module")
def cell(http) -> str:
    geo = http.post("/risk_map", json={"domain": "flood"}).json()
    return geo["features"][0]["properties"]["cell_id"]


def assert_error(resp: httpx.Response, status: int, field: str, kind: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert isinstance(body["error"], str) and isinstance(body["detail"], list), body
    assert body["error"].startswith(field), body
    if kind:
        assert body["detail"][0]["type"] == kind, body
    return body


@pytest.mark.parametrize("typo", ["condition", "time", "location", "Domain"])
def test_an_unknown_top_level_field_is_a_400_naming_it(http, cell, typo):
    body = {"domain": "flood", "locations": [{"cell_id": cell}], typo: {"rain_fcst_1h": 300}}
    assert_error(http.post("/risk", json=body), 400, typo, "extra_forbidden")
    assert_error(http.post("/risk_map", json={"domain": "flood", typo: 1}), 400, typo, "extra_forbidden")
    assert_error(http.post("/predict", json={"domain": "flood", "records": [{}], typo: 1}), 400, typo)


@pytest.mark.parametrize(("domain", "conditions", "field"), [
    ("traffic", {"rain_3h_mm": True}, "conditions.rain_3h_mm"),
    ("traffic", {"hour": True}, "conditions.hour"),
    ("flood", {"rain_1h": False}, "conditions.rain_1h"),
    ("flood", {"tide_cm": "900"}, "conditions.tide_cm"),
    ("traffic", {"holiday": "yes"}, "conditions.holiday"),
    ("traffic", {"freezing": 1}, "conditions.freezing"),
    ("earthquake", {"magnitude": True, "epicentre_lat": 37.4, "epicentre_lon": 126.5}, "conditions.magnitude"),
])
def test_json_types_are_strict(http, cell, domain, conditions, field):
    assert_error(http.post("/risk", json={"domain": domain, "locations": [{"cell_id": cell}],
                                          "conditions": conditions}), 400, field)


def test_booleans_are_no_coordinates_or_feature_values(http):
    assert_error(http.post("/risk", json={"domain": "flood", "locations": [{"lat": True, "lon": 126.6}]}),
                 400, "locations[0].lat")
    assert_error(http.post("/predict", json={"domain": "flood", "records": [{"rain_1h": True}]}),
                 400, "records[0].rain_1h")


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary=x",
                                          "application/x-www-form-urlencoded", "text/plain", "application/xml"])
@pytest.mark.parametrize("route", CELL_ROUTES)
def test_a_body_that_is_not_json_is_a_415(http, cell, route, content_type):
    body = b'{"domain":"flood","locations":[{"cell_id":"%s"}]}' % cell.encode()
    assert_error(http.post(route, content=body, headers={"Content-Type": content_type}), 415, "content-type",
                 "unsupported_media_type")


def test_json_media_types_and_no_content_type_are_accepted(http, cell):
    body = b'{"domain":"flood","locations":[{"cell_id":"%s"}]}' % cell.encode()
    for headers in ({"Content-Type": "application/json; charset=utf-8"}, {"Content-Type": "application/problem+json"},
                    {}):
        assert http.post("/risk", content=body, headers=headers).status_code == 200, headers


def test_malformed_json_is_a_400_about_the_body(http):
    assert_error(http.post("/risk", content=b'{"domain": "flood", "locations": [', 
                           headers={"Content-Type": "application/json"}), 400, "body")


def _raw(served: str, request: bytes, wait_s: float) -> tuple[bytes, float]:
    """Send raw bytes, then read the answer; returns it and the seconds it took."""
    url = urlparse(served)
    started = time.monotonic()
    with socket.create_connection((url.hostname, url.port), timeout=wait_s) as sock:
        sock.sendall(request)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
    return data, time.monotonic() - started


def test_a_stalled_body_is_a_408_in_the_error_shape_well_before_the_server_timeout(served):
    head = (b"POST /risk HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
            b'{"domain": "flood",')
    data, seconds = _raw(served, head, wait_s=BODY_TIMEOUT_S + 20)
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert b'"error":"body: the request body did not arrive within' in data
    assert seconds < BODY_TIMEOUT_S + 10


def test_an_explicit_kst_offset_is_the_same_instant_as_a_naive_time(http, cell):
    day = (pd.Timestamp(http.get("/domains").json()["domains"]["traffic"]["default_at"]) - pd.Timedelta(days=1))
    for naive in (f"{day:%Y-%m-%d}T03:00:00", f"{day:%Y-%m-%d}T13:00:00"):
        answers = [http.post("/risk", json={"domain": "traffic", "at": at, "locations": [{"cell_id": cell}]})
                   for at in (naive, naive + "+09:00")]
        assert [a.status_code for a in answers] == [200, 200]
        assert answers[0].json()["at"] == answers[1].json()["at"] == naive
    utc = http.post("/risk", json={"domain": "traffic", "at": f"{day:%Y-%m-%d}T03:00:00Z",
                                   "locations": [{"cell_id": cell}]}).json()
    assert utc["at"] == f"{day:%Y-%m-%d}T12:00:00"


@pytest.mark.parametrize("at", ["1988-06-01T13:00:00", "1988-06-01T13:00:00+09:00", "1955-06-01T13:00:00+09:00",
                                "1900-01-01T00:00:00+09:00", "1899-12-31T23:00:00"])
def test_times_before_the_held_observations_are_refused_naming_the_range(http, cell, at):
    body = assert_error(http.post("/risk", json={"domain": "flood", "at": at, "locations": [{"cell_id": cell}]}),
                        400, "at")
    assert "before the observations the service holds" in body["error"]


@pytest.mark.parametrize("text", ["Traceback (most recent call last)", 'File "/x.py", line 3', "/etc/passwd"])
def test_a_clients_text_never_changes_the_kind_of_error(http, text):
    body = assert_error(http.post("/risk", json={"domain": "flood", "locations": [{"cell_id": text}]}), 404,
                        "locations[0].cell_id", "not_found")
    assert "internal" not in body["error"]


def test_metrics_label_known_routes_only(http):
    paths = [f"/probe-{uuid.uuid4().hex[:10]}" for _ in range(3)] + ["/risk/../x", "/static_x"]
    for path in paths:
        assert_error(http.get(path), 404, "path")
    http.get("/static/dashboard.js")
    text = http.get("/metrics").text
    labels = set(re.findall(r'endpoint="([^"]*)"', text))
    assert not any(p in labels for p in paths)
    assert "unmatched" in labels
    assert labels <= {"/", "/risk", "/risk_map", "/predict", "/models", "/domains", "/dashboard", "/healthz",
                      "/livez", "/readyz", "/docs.json", "/schema.json", "/static/*", "/static_content/*",
                      "/observations", "/alerts", "/alerts/stream", "/alerts/*", "/replay", "/replay/*", "/monitoring", "/hotspots",
                      "/scenario", "/grid", "/places", "unmatched"}, labels

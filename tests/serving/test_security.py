"""Access control, CORS, request-size limits and safe error bodies: a second real server with a key, CORS
origins and a small body limit (reusing the `served` fixture's BentoML store), plus the middlewares alone."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.security import ApiKeyMiddleware, BodyLimitMiddleware, SafeErrorsMiddleware
from tests.serving.conftest import ROOT, free_port, stop_server, wait_ready

KEY = "secret-test-key"
WALL = "http://wall.example"
LIMIT = 20_000
INCHEON_ASOS = {"lat": 37.4777, "lon": 126.6249}
AUTH_ERROR = "authorization: missing or invalid API key"


@pytest.fixture(scope="module")
def secured(served, tmp_path_factory):
    """The service again, from the store `served` prepared, with a key, one CORS origin and a 20 kB limit."""
    env = {**os.environ, "URBAN_SAFETY_API_KEY": KEY, "URBAN_SAFETY_CORS_ORIGINS": f"{WALL}, ",
           "URBAN_SAFETY_MAX_BODY_BYTES": str(LIMIT)}
    port = free_port()
    log = tmp_path_factory.mktemp("logs-secured") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "serving.service:RiskService",
                                 "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, Path(log))
        yield url
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def catalogue(secured) -> dict:
    return httpx.get(f"{secured}/domains", headers={"Authorization": f"Bearer {KEY}"}, timeout=30).json()


def data_calls(catalogue: dict) -> list[tuple[str, str, dict | None]]:
    """One valid call of every prediction and data route."""
    flood = catalogue["domains"]["flood"]
    example = {c["name"]: c["example"] for c in flood["conditions"] if c["required"]}
    record = dict.fromkeys(flood["features"], 0.0)
    return [("POST", "/risk", {"domain": "flood", "locations": [INCHEON_ASOS], "conditions": example}),
            ("POST", "/risk_map", {"domain": "flood", "conditions": example}),
            ("POST", "/predict", {"domain": "flood", "records": [record]}),
            ("GET", "/models", None), ("GET", "/domains", None), ("GET", "/grid", None),
            ("GET", "/places", None)]


def assert_shape(resp: httpx.Response, status: int, error: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert isinstance(body["error"], str) and isinstance(body["detail"], list) and body["detail"], body
    assert {"loc", "msg", "type"} <= body["detail"][0].keys()
    if error is not None:
        assert body["error"] == error
    assert "Traceback" not in resp.text and str(ROOT) not in resp.text and "site-packages" not in resp.text
    return body


# --- the secured server ------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": KEY},
                                     {"Authorization": f"Basic {KEY}"}, {"Authorization": "Bearer"},
                                     {"Authorization": f"Bearer {KEY}x"}])
def test_data_routes_refuse_a_missing_or_wrong_key(secured, catalogue, headers):
    for method, path, body in data_calls(catalogue):
        resp = httpx.request(method, f"{secured}{path}", json=body, headers=headers, timeout=30)
        assert_shape(resp, 401, AUTH_ERROR)
        assert resp.headers["www-authenticate"] == "Bearer", path


def test_data_routes_answer_the_right_key(secured, catalogue):
    for method, path, body in data_calls(catalogue):
        for scheme in ("Bearer", "bearer"):
            resp = httpx.request(method, f"{secured}{path}", json=body, headers={"Authorization": f"{scheme} {KEY}"},
                                 timeout=60)
            assert resp.status_code == 200, (path, resp.text)


def test_bentoml_client_with_the_token(secured):
    import bentoml

    client = bentoml.SyncHTTPClient(secured, token=KEY)
    try:
        answer = client.risk(domain="flood", locations=[INCHEON_ASOS])
    finally:
        client.close()
    assert 0 <= answer["results"][0]["score"] <= 100


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz", "/metrics", "/dashboard", "/static/dashboard.js",
                                  "/docs.json", "/schema.json"])
def test_probes_metrics_docs_and_the_dashboard_stay_open(secured, path):
    assert httpx.get(f"{secured}{path}", timeout=30).status_code == 200


def test_unknown_and_odd_paths_are_not_a_way_around_the_key(secured):
    for path in ["/risk/", "/models/", "//models", "/static/../models", "/nothing-here", "/risk_map/submit"]:
        resp = httpx.get(f"{secured}{path}", timeout=30)
        assert resp.status_code in (401, 404), (path, resp.status_code)
        assert_shape(resp, resp.status_code)
        assert "cells" not in resp.text and "registry_version" not in resp.text


def test_cors_preflight_is_answered_for_the_configured_origin_only(secured):
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    ok = httpx.options(f"{secured}/risk_map", headers={"Origin": WALL, **ask}, timeout=30)
    assert ok.status_code == 200, ok.text  # no key needed for a preflight
    assert ok.headers["access-control-allow-origin"] == WALL
    assert "POST" in ok.headers["access-control-allow-methods"]
    assert {"authorization", "content-type"} <= {h.strip().lower() for h in
                                                 ok.headers["access-control-allow-headers"].split(",")}

    other = httpx.options(f"{secured}/risk_map", headers={"Origin": "http://evil.example", **ask}, timeout=30)
    assert "access-control-allow-origin" not in other.headers
    assert_shape(other, 400)

    # Real requests carry the header too, a refused one included, so a browser page can read the error.
    for headers, status in [({}, 401), ({"Authorization": f"Bearer {KEY}"}, 200)]:
        resp = httpx.get(f"{secured}/models", headers={"Origin": WALL, **headers}, timeout=30)
        assert resp.status_code == status and resp.headers["access-control-allow-origin"] == WALL
    resp = httpx.get(f"{secured}/models", headers={"Origin": "http://evil.example"}, timeout=30)
    assert "access-control-allow-origin" not in resp.headers


def test_bodies_over_the_limit_are_413_before_parsing(secured):
    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    big = b'{"domain": "flood", "locations": [' + b",".join([b'{"lat": 37.4777, "lon": 126.6249}'] * 900) + b"]}"
    assert 30_000 <= len(big) < 40_000
    body = assert_shape(httpx.post(f"{secured}/risk", content=big, headers=auth, timeout=30), 413)
    assert body["error"].startswith("body: ") and str(LIMIT) in body["error"]

    def chunks():  # no Content-Length: sent chunked
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096]

    assert_shape(httpx.post(f"{secured}/risk", content=chunks(), headers=auth, timeout=30), 413)
    # Not even a (broken) body past the limit reaches the JSON parser.
    assert_shape(httpx.post(f"{secured}/predict", content=b"x" * 30_000, headers=auth, timeout=30), 413)
    # Without the key, the key is the first problem.
    assert_shape(httpx.post(f"{secured}/risk", content=big, headers={"Content-Type": "application/json"},
                            timeout=30), 401, AUTH_ERROR)
    # Small chunked bodies still get through.
    small = b'{"domain": "flood", "locations": [{"lat": 37.4777, "lon": 126.6249}]}'
    assert httpx.post(f"{secured}/risk", content=iter([small[:20], small[20:]]), headers=auth,
                      timeout=30).status_code == 200


# --- both servers: errors carry no stack trace or server path ---------------------------------------
@pytest.mark.parametrize("server", ["served", "secured"])
def test_404_405_and_bad_json_errors_are_shaped_and_clean(request, server):
    url = request.getfixturevalue(server)
    auth = {"Authorization": f"Bearer {KEY}"} if server == "secured" else {}
    with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
        assert_shape(http.get("/nothing-here"), 404, "path: not found")
        assert_shape(http.get("/static/nothing.js"), 404, "path: not found")
        assert_shape(http.get("/risk"), 405, "method: not allowed for this route")  # a BentoML route
        assert_shape(http.post("/models"), 405, "method: not allowed for this route")  # a FastAPI route
        assert_shape(http.put("/dashboard"), 405)
        for content in [b"{not json", b"\xff\xfe", b"[1, 2]", b"null"]:
            resp = http.post("/risk", content=content, headers={"Content-Type": "application/json"})
            assert 400 <= resp.status_code < 500, resp.text
            assert_shape(resp, resp.status_code)


def test_the_default_server_needs_no_key_and_sends_no_cors_headers(served):
    assert httpx.get(f"{served}/models", timeout=30).status_code == 200
    resp = httpx.options(f"{served}/risk", headers={"Origin": WALL, "Access-Control-Request-Method": "POST"},
                         timeout=30)
    assert "access-control-allow-origin" not in resp.headers
    assert "access-control-allow-origin" not in httpx.get(f"{served}/models", headers={"Origin": WALL}).headers


# --- the middlewares alone -----------------------------------------------------------------------------
def _app(**routes) -> Starlette:
    async def echo(request):
        return JSONResponse({"size": len(await request.body())})

    async def boom(request):
        raise RuntimeError(f"broke reading {ROOT}/serving/engine.py")

    async def leaky(request):
        return JSONResponse({"error": f"service not ready: FileNotFoundError: '{ROOT}/data/x.parquet'",
                             "detail": [{"loc": [], "msg": f"no such file {ROOT}/data/x.parquet", "type": "x"}]},
                            status_code=503)

    async def trace(request):
        return PlainTextResponse('Traceback (most recent call last):\n  File "/srv/app.py", line 3', status_code=400)

    return Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route("/boom", boom), Route("/leaky", leaky),
                             Route("/trace", trace), Route("/healthz", lambda r: PlainTextResponse("ok"))])


def test_safe_errors_hide_exceptions_tracebacks_and_paths():
    app = SafeErrorsMiddleware(_app())
    with TestClient(app, raise_server_exceptions=False) as client:
        boom = client.get("/boom")
        assert boom.status_code == 500 and boom.json()["error"] == "internal error: see the server log"
        leaky = client.get("/leaky")
        assert leaky.status_code == 503 and "FileNotFoundError" in leaky.json()["error"]
        trace = client.get("/trace")
        assert trace.status_code == 400
        for resp in (boom, leaky, trace):
            assert str(ROOT) not in resp.text and "Traceback" not in resp.text and "/srv/" not in resp.text
        assert client.get("/healthz").text == "ok"  # successes pass untouched


def test_api_key_and_body_limit_alone():
    app = SafeErrorsMiddleware(ApiKeyMiddleware(BodyLimitMiddleware(_app(), limit=100), api_key=KEY))
    auth = {"Authorization": f"Bearer {KEY}"}
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert client.post("/echo", content=b"x" * 10).status_code == 401
        assert client.post("/echo", content=b"x" * 100, headers=auth).json() == {"size": 100}
        assert client.post("/echo", content=b"x" * 101, headers=auth).status_code == 413
        assert client.post("/echo", content=iter([b"x" * 60, b"x" * 60]), headers=auth).status_code == 413
        assert client.post("/echo", content=iter([b"x" * 50, b"x" * 50]), headers=auth).json() == {"size": 100}
    with TestClient(ApiKeyMiddleware(_app(), api_key="")) as client:  # no key configured: everything open
        assert client.post("/echo", content=b"x").status_code == 200


# --- the dashboard asks for the key --------------------------------------------------------------------
def test_dashboard_asks_for_the_key_and_then_draws(secured, catalogue):
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    from tests.serving.test_dashboard import ARGS, WAIT_MS, wait_drawn

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            page = browser.new_page()
            script_errors: list[str] = []
            page.on("pageerror", lambda exc: script_errors.append(str(exc)))
            page.goto(f"{secured}/dashboard")
            page.wait_for_selector("#key-prompt:not([hidden])", timeout=WAIT_MS)
            assert AUTH_ERROR in page.text_content("#error")
            page.fill("#api-key", "wrong")
            page.click("#key-save")
            page.wait_for_function("() => document.querySelector('#error').textContent.includes('authorization')",
                                   timeout=WAIT_MS)
            assert page.is_visible("#key-prompt")
            page.fill("#api-key", KEY)
            with page.expect_request(lambda r: r.url.endswith("/risk_map"), timeout=WAIT_MS) as req:
                page.click("#key-save")
            assert req.value.headers["authorization"] == f"Bearer {KEY}"
            wait_drawn(page, page.input_value("#domain"))
            assert int(page.get_attribute("#map", "data-cells")) == catalogue["cells"]
            assert page.is_hidden("#key-prompt") and page.is_hidden("#error")
            assert page.evaluate("() => sessionStorage.getItem('urbanSafetyApiKey')") == KEY
            page.reload()  # the key is remembered for the session: no prompt this time
            wait_drawn(page, page.input_value("#domain"))
            assert page.is_hidden("#key-prompt")
            assert not script_errors, script_errors
        finally:
            browser.close()


def test_a_slow_answer_is_a_504_in_the_error_shape():
    async def slow(scope, receive, send):
        await asyncio.sleep(5)

    resp = TestClient(SafeErrorsMiddleware(slow, deadline_s=0.1)).get("/risk")  # no lifespan: a bare app
    assert resp.status_code == 504 and resp.json()["error"].startswith("request: no answer within 0.1 s")

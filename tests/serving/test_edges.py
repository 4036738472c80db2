"""Edges of the HTTP surface, without a served process: path ids, acknowledgement names, HEAD, CORS options,
and telemetry defaults."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi import FastAPI
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from serving import alerts_api
from serving.alerts_api import AckBody, path_id
from serving.errors import ApiError, read_body
from serving.security import CORS_ORIGINS_ENV, HeadMiddleware, SafeErrorsMiddleware, cors_options

ROOT = Path(__file__).resolve().parents[2]


# --- path ids ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "number"), [("0", 0), ("7", 7), ("007", 7), ("123456789", 123456789),
                                             ("9" * 18, int("9" * 18)), (str(2**63 - 1), 2**63 - 1)])
def test_path_ids_are_ascii_decimal(raw, number):
    assert path_id(raw, "id", "alert") == number


@pytest.mark.parametrize("raw", ["⁹⁹⁹", "²", "٣", "۳", "１２", "৩", "-1", "+1", "1e3", "1.0", " 1", "1 ", "",
                                 "0x1f", "1_000", "9" * 19, str(2**63), "9" * 20, "9" * 40])
def test_other_path_ids_name_nothing(raw):
    with pytest.raises(ApiError) as caught:
        path_id(raw, "cycle", "cycle")
    error = caught.value
    assert (error.status, error.loc, error.kind) == (404, ["cycle"], "not_found")
    assert error.msg == f"no cycle {raw!r}"


@pytest.fixture
def alert_routes(monkeypatch):
    """The alert router alone, on a FastAPI app, over a stand-in live store that records what it is asked."""
    calls = []

    def get_alert(db, number, **pages):
        calls.append(("get", number))
        raise KeyError(number)

    def ack(db, number, by, action, note):
        calls.append(("ack", number, by, action, note))
        raise KeyError(number)

    monkeypatch.setattr(alerts_api, "_db", lambda: object())
    monkeypatch.setattr(alerts_api.live_alerts, "get_alert", get_alert)
    monkeypatch.setattr(alerts_api.live_alerts, "ack", ack)
    app = FastAPI()
    app.include_router(alerts_api.router)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, calls


@pytest.mark.parametrize("raw", ["⁹⁹⁹", "٣", "１２", "9" * 19, str(2**63), "-1"])
def test_alert_and_cycle_routes_answer_404_for_a_non_id(alert_routes, raw):
    client, calls = alert_routes
    for method, path, body, field in [("GET", f"/alerts/{raw}", None, "id"),
                                      ("POST", f"/alerts/{raw}/ack", {"by": "Kim", "action": "ack"}, "id"),
                                      ("GET", f"/replay/{raw}/flood", None, "cycle")]:
        answer = client.request(method, path, json=body)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["detail"] == [{"loc": [field], "msg": f"no {'alert' if field == 'id' else 'cycle'} "
                                                                   f"{raw!r}", "type": "not_found"}]
    assert calls == []  # nothing was looked up: "٣" is not alert 3


def test_alert_routes_read_ascii_ids(alert_routes):
    client, calls = alert_routes
    assert client.get("/alerts/0042").status_code == 404  # the stand-in store has no alerts
    assert client.post("/alerts/42/ack", json={"by": " Kim ", "action": "dismiss", "note": "a\nb"}).status_code == 404
    assert calls == [("get", 42), ("ack", 42, "Kim", "dismiss", "a\nb")]


# --- acknowledgement names and notes -------------------------------------------------------------------------

INVISIBLE_NAMES = ["\u200b", "Kim\u200b", "\u200dKim", "\ufeffKim", "Ki\u2060m", "Kim\u202e", "Kim\x00",
                   "Kim\x7f", "Kim\tLee", "Kim\nLee", "Kim\r", "\x1b[31mKim", " ", "\u00a0", "\u3000", "\u2003 \u2002",
                   "\u2028", "\u3164", "\u115f\u1160", "\u2800"]


@pytest.mark.parametrize("by", INVISIBLE_NAMES)
def test_ack_by_needs_a_visible_name_without_control_or_format_characters(by):
    with pytest.raises(ValidationError) as caught:
        AckBody(by=by, action="ack")
    assert [e["loc"] for e in caught.value.errors()] == [("by",)]
    _, problem = read_body(json.dumps({"by": by, "action": "ack"}).encode(), AckBody, "by, action and note")
    assert problem.status_code == 400
    assert [d["loc"] for d in json.loads(problem.body)["detail"]] == [["by"]]


@pytest.mark.parametrize(("by", "kept"), [("Kim", "Kim"), (" 김민수 ", "김민수"), ("Ana-María O'Neil", "Ana-María O'Neil"),
                                          ("당직 2", "당직 2"), ("\u3164김", "\u3164김")])
def test_ack_by_keeps_a_visible_name(by, kept):
    assert AckBody(by=by, action="ack").by == kept


@pytest.mark.parametrize("note", ["a\u200bb", "\ufeff", "x\x00", "x\ry", "\x1b[2J", "left\u202eright", "\u2060"])
def test_ack_note_refuses_control_and_format_characters(note):
    with pytest.raises(ValidationError) as caught:
        AckBody(by="Kim", action="ack", note=note)
    assert [e["loc"] for e in caught.value.errors()] == [("note",)]


@pytest.mark.parametrize("note", [None, "", "  ", "line one\nline two", "cols\there\tthere", "침수 우려\n  현장 확인"])
def test_ack_note_may_be_empty_or_hold_newlines_and_tabs(note):
    assert AckBody(by="Kim", action="ack", note=note).note == note
    assert AckBody(by="Kim", action="ack").note is None


# --- HEAD ----------------------------------------------------------------------------------------------------

FOREVER_S = 30


def head_app(state: dict) -> FastAPI:
    """GET routes as FastAPI declares them (HEAD alone would be 405), a POST-only route and endless streams."""
    app = FastAPI()

    @app.get("/thing")
    async def thing():
        def later():
            state["background"] = True
        return JSONResponse({"name": "thing", "cells": list(range(50))}, headers={"ETag": '"v1"'},
                            background=BackgroundTask(later))

    @app.post("/only_post")
    async def only_post():
        return {"ok": True}

    @app.get("/forever")
    async def forever():
        async def chunks():
            try:
                end = time.monotonic() + FOREVER_S
                while time.monotonic() < end:
                    state["chunks"] = state.get("chunks", 0) + 1
                    yield b"data: tick\n\n"
                    await asyncio.sleep(0.05)
            finally:
                state["stopped"] = True
        return StreamingResponse(chunks(), media_type="text/event-stream")

    @app.get("/events")
    async def events():
        from sse_starlette import EventSourceResponse

        async def ticks():
            for i in range(FOREVER_S * 20):
                yield {"event": "tick", "data": str(i)}
                await asyncio.sleep(0.05)
        return EventSourceResponse(ticks(), ping=1)

    return app


async def deaf_stream(scope, receive, send):
    """An application that streams for 30 s and never reads ``receive`` (as Starlette does under ASGI 2.4)."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for _ in range(FOREVER_S * 20):
        await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
        await asyncio.sleep(0.05)
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def head_client():
    state: dict = {}
    with TestClient(HeadMiddleware(head_app(state)), raise_server_exceptions=True) as client:
        yield client, state


def test_head_answers_a_get_route_with_its_headers_and_no_body(head_client):
    client, state = head_client
    got = client.get("/thing")
    head = client.head("/thing")
    assert got.status_code == head.status_code == 200
    assert head.content == b"" and got.content
    for name in ("content-length", "content-type", "etag"):
        assert head.headers[name] == got.headers[name], name
    assert int(head.headers["content-length"]) == len(got.content)
    assert state.get("background") is True  # the response's own work still runs


def test_head_keeps_a_get_routes_refusal(head_client):
    client, _ = head_client
    assert (client.head("/only_post").status_code, client.head("/only_post").content) == (405, b"")
    assert (client.head("/nowhere").status_code, client.head("/nowhere").content) == (404, b"")
    assert client.post("/only_post").json() == {"ok": True}  # other methods pass untouched


@pytest.mark.parametrize("path", ["/forever", "/events"])
def test_head_on_an_endless_stream_returns_at_once_and_stops_it(head_client, path):
    client, state = head_client
    began = time.monotonic()
    head = client.head(path)
    assert time.monotonic() - began < 2
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"].startswith("text/event-stream")
    if path == "/forever":
        assert state["stopped"] is True and state["chunks"] < 10


def test_head_cuts_off_a_stream_that_does_not_listen_for_the_disconnect():
    for app in (HeadMiddleware(deaf_stream), SafeErrorsMiddleware(HeadMiddleware(deaf_stream))):
        client = TestClient(app)  # no lifespan: a bare ASGI application
        began = time.monotonic()
        head = client.head("/")
        assert time.monotonic() - began < 2
        assert (head.status_code, head.content) == (200, b"")


def test_head_over_a_real_server(monkeypatch):
    """uvicorn itself, as BentoML runs it: HEAD on a GET route and on an endless stream."""
    import uvicorn

    state: dict = {}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(HeadMiddleware(head_app(state)), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            got, head = client.get("/thing"), client.head("/thing")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == got.headers["content-length"]
            for path in ("/forever", "/events"):
                began = time.monotonic()
                head = client.head(path)
                assert time.monotonic() - began < 2 and head.status_code == 200, path
            assert client.head("/only_post").status_code == 405
            assert client.get("/thing").json()["name"] == "thing"  # the connection still serves
    finally:
        server.should_exit = True
        thread.join(10)


# --- CORS ----------------------------------------------------------------------------------------------------

ORIGIN = "https://ops.city.example"


def test_no_cors_options_without_origins(monkeypatch):
    monkeypatch.delenv(CORS_ORIGINS_ENV, raising=False)
    assert cors_options() is None
    monkeypatch.setenv(CORS_ORIGINS_ENV, " , ")
    assert cors_options() is None


def sent_request_headers() -> set[str]:
    """The request headers the dashboard's scripts set: ``headers.X = ``, ``headers["X"] = `` and the keys of
    ``headers = {...}`` literals."""
    names = set()
    for script in (ROOT / "serving" / "static").glob("*.js"):
        for line in script.read_text().splitlines():
            names.update(re.findall(r"headers\.([A-Za-z][\w-]*)\s*=", line))
            names.update(re.findall(r"headers\[\"([\w-]+)\"\]\s*=", line))
            if literal := re.search(r"headers\s*=\s*[^;]*?\{([^}]*)\}", line):
                names.update(re.findall(r"\"?([A-Za-z][\w-]*)\"?\s*:", literal.group(1)))
    return {n.lower() for n in names}


def test_cors_allows_every_header_the_dashboard_sends(monkeypatch):
    monkeypatch.setenv(CORS_ORIGINS_ENV, f"{ORIGIN}/, https://other.example")
    options = cors_options()
    assert options["allow_origins"] == [ORIGIN, "https://other.example"]
    assert set(options["allow_methods"]) == {"GET", "HEAD", "POST", "OPTIONS"}
    assert options["max_age"] == 600
    allowed = {h.lower() for h in options["allow_headers"]}
    sent = sent_request_headers()
    assert {"authorization", "content-type", "accept", "last-event-id"} <= sent  # the scan finds them
    assert sent <= allowed
    assert {"if-none-match", "cache-control", "accept-language"} <= allowed
    assert {"etag", "retry-after", "content-length"} <= {h.lower() for h in options["expose_headers"]}


def test_cors_preflight_for_the_event_stream(monkeypatch):
    monkeypatch.setenv(CORS_ORIGINS_ENV, ORIGIN)

    async def grid(request):
        return JSONResponse({"cells": []}, headers={"ETag": '"g1"'})

    app = CORSMiddleware(Starlette(routes=[Route("/grid", grid), Route("/alerts/stream", grid)]), **cors_options())
    with TestClient(app) as client:
        answer = client.options("/alerts/stream", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "last-event-id, authorization"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == ORIGIN
        allowed = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
        assert {"last-event-id", "authorization", "if-none-match", "cache-control"} <= allowed
        assert "HEAD" in answer.headers["access-control-allow-methods"]
        assert answer.headers["access-control-max-age"] == "600"
        for method in ("HEAD", "POST"):
            ok = client.options("/grid", headers={"Origin": ORIGIN, "Access-Control-Request-Method": method,
                                                  "Access-Control-Request-Headers": "content-type, if-none-match"})
            assert ok.status_code == 200, (method, ok.text)
        refused = client.options("/grid", headers={"Origin": "https://evil.example",
                                                   "Access-Control-Request-Method": "GET"})
        assert refused.status_code == 400
        simple = client.get("/grid", headers={"Origin": ORIGIN})
        exposed = {h.strip().lower() for h in simple.headers["access-control-expose-headers"].split(",")}
        assert {"etag", "retry-after", "content-length"} <= exposed


# --- telemetry -------------------------------------------------------------------------------------------------

TELEMETRY = {"BENTOML_DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def test_the_bento_declares_telemetry_off():
    envs = yaml.safe_load((ROOT / "bentofile.yaml").read_text())["envs"]
    declared = {e["name"]: str(e["value"]).lower() for e in envs}
    assert {name: declared.get(name) for name in TELEMETRY} == TELEMETRY


@pytest.mark.parametrize("script", ["run.sh", "test.sh"])
def test_the_scripts_export_telemetry_off_unless_set(script):
    text = (ROOT / "scripts" / script).read_text()
    for name in TELEMETRY:
        assert re.search(rf'^export {name}="\$\{{{name}:-(?i:true)\}}"$', text, re.M), (script, name)


def test_every_command_turns_telemetry_off_unless_the_user_set_it(monkeypatch):
    from typer.testing import CliRunner

    from urban_safety import cli

    for name in TELEMETRY:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "False")  # the user's own choice
    result = CliRunner().invoke(cli.app, ["domains"])
    assert result.exit_code == 0, result.output
    assert os.environ["BENTOML_DO_NOT_TRACK"] == "False"
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == os.environ["DO_NOT_TRACK"] == "true"

    monkeypatch.delenv("BENTOML_DO_NOT_TRACK")
    cli.quiet_telemetry()
    assert {name: os.environ[name].lower() for name in TELEMETRY} == TELEMETRY

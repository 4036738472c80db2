"""Access control, request-size limits and safe error bodies: pure ASGI middlewares for the whole server.

They are added with ``RiskService.add_asgi_middleware``, so BentoML wraps its entire Starlette app with them:
its own API routes, its system routes and the mounted FastAPI app alike. Order (outermost first), as wired
in serving/service.py::

    SafeErrorsMiddleware -> CORSMiddleware (if origins are set) -> ApiKeyMiddleware -> BodyLimitMiddleware -> app

HeadMiddleware (serving/security.py) answers HEAD wherever GET is served (headers only, streams stopped).
SafeErrorsMiddleware is the one place that shapes error bodies that are not the API's own (ApiError):
BentoML's validation errors, Starlette's 404/405, CORS refusals, unexpected exceptions.

Configuration, read when the server builds its app (at start-up, in every worker):

- ``URBAN_SAFETY_API_KEY``: when set and non-empty, every route except the open ones below needs
  ``Authorization: Bearer <key>``; anything else is a 401 in the API's error shape with
  ``WWW-Authenticate: Bearer``. Deny by default: a route added later is protected unless listed here.
- ``URBAN_SAFETY_CORS_ORIGINS``: comma-separated origins allowed to call the API from a browser; empty or
  unset means no CORS headers at all. :func:`cors_options` holds what they may send and read.
- ``URBAN_SAFETY_MAX_BODY_BYTES``: the largest request body accepted (default 8 MiB); larger ones are a 413
  before the application reads a byte of them, whether announced by Content-Length or chunked.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re

from serving.errors import error_response, reshape_validation_error

log = logging.getLogger("urban_safety.serving")

API_KEY_ENV = "URBAN_SAFETY_API_KEY"
CORS_ORIGINS_ENV = "URBAN_SAFETY_CORS_ORIGINS"
MAX_BODY_ENV = "URBAN_SAFETY_MAX_BODY_BYTES"
DEFAULT_MAX_BODY = 8 * 1024 * 1024
BODY_TIMEOUT_ENV = "URBAN_SAFETY_BODY_TIMEOUT_S"
DEFAULT_BODY_TIMEOUT_S = 10.0
# Under BentoML's own traffic timeout (60 s, serving/service.py), so that a slow answer is still a 504 in
# the API's error shape rather than in BentoML's.
REQUEST_DEADLINE_S = 55.0

# Open without a key: probes, metrics, API documentation and the dashboard's page and assets (the page asks
# for the key itself). "/" and /static_content/* are BentoML's documentation page and its assets,
# /schema.json the API schema BentoML's own clients read before they call.
OPEN_PATHS = frozenset({"/", "/healthz", "/livez", "/readyz", "/metrics", "/docs", "/docs.json", "/schema.json",
                        "/dashboard"})
OPEN_PREFIXES = ("/static/", "/static_content/")


def cors_origins() -> list[str]:
    """The allowed browser origins from ``URBAN_SAFETY_CORS_ORIGINS`` (comma-separated)."""
    return [o.strip().rstrip("/") for o in os.environ.get(CORS_ORIGINS_ENV, "").split(",") if o.strip()]


#: What a browser may send cross-origin: every header the dashboard's pages set (serving/static/*.js: JSON bodies,
#: the API key, the event stream's Accept and Last-Event-ID) and the ones the browser adds for its cache modes
#: ("no-cache" revalidation: If-None-Match / If-Modified-Since; "no-store": Cache-Control, Pragma).
CORS_ALLOW_HEADERS = ("Authorization", "Content-Type", "Last-Event-ID", "If-None-Match", "If-Modified-Since",
                      "Cache-Control", "Pragma", "Accept", "Accept-Language")
CORS_ALLOW_METHODS = ("GET", "HEAD", "POST", "OPTIONS")
#: What a page may read of an answer: the grid's ETag, a 429/503's Retry-After, a map's size.
CORS_EXPOSE_HEADERS = ("ETag", "Retry-After", "Content-Length")
CORS_MAX_AGE_S = 600


def cors_options() -> dict | None:
    """Keyword arguments for starlette's ``CORSMiddleware`` when ``URBAN_SAFETY_CORS_ORIGINS`` names origins,
    else None (no CORS headers at all)."""
    origins = cors_origins()
    if not origins:
        return None
    return {"allow_origins": origins, "allow_methods": list(CORS_ALLOW_METHODS),
            "allow_headers": list(CORS_ALLOW_HEADERS), "expose_headers": list(CORS_EXPOSE_HEADERS),
            "max_age": CORS_MAX_AGE_S}


def max_body_bytes() -> int:
    raw = os.environ.get(MAX_BODY_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BODY
    value = int(raw)
    if value <= 0:
        raise ValueError(f"{MAX_BODY_ENV} must be a positive number of bytes, not {raw!r}")
    return value


def _problem(status: int, field: str, msg: str, kind: str, headers: dict[str, str] | None = None):
    response = error_response(status, [{"loc": [field], "msg": msg, "type": kind}])
    response.headers.update(headers or {})
    return response


class ApiKeyMiddleware:
    """``Authorization: Bearer <URBAN_SAFETY_API_KEY>`` on every route but the open ones; no-op without a key."""

    def __init__(self, app, api_key: str | None = None):
        self.app = app
        key = os.environ.get(API_KEY_ENV, "") if api_key is None else api_key
        self.key = key.strip().encode() or None
        if self.key:
            log.info("API key required on prediction and data routes")

    @staticmethod
    def is_open(scope) -> bool:
        path = scope.get("path", "")
        # OPTIONS never returns data: CORS preflights (which browsers send without credentials) pass through.
        return scope.get("method") == "OPTIONS" or path in OPEN_PATHS or path == "/static" or \
            path.startswith(OPEN_PREFIXES)

    def authorised(self, scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                # compare_digest takes as long for any wrong key of a given length as for the right one
                return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)
        return False

    async def __call__(self, scope, receive, send):
        if self.key is None or scope["type"] != "http" or self.is_open(scope) or self.authorised(scope):
            return await self.app(scope, receive, send)
        response = _problem(401, "authorization", "missing or invalid API key", "unauthorized",
                            {"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


class HeadMiddleware:
    """``HEAD`` answered wherever ``GET`` is: FastAPI's GET routes alone would answer 405 (fastapi#1773).

    The application is called with the method GET; its response start (status and headers, Content-Length
    included) goes out as it is, followed at once by an empty final body; the body the application sends is
    dropped. From the response start on, ``receive()`` says the client disconnected, so a stream (the
    server-sent events of /alerts/stream) ends; an application still running ``grace_s`` after its start
    without having sent its final body is cancelled. A path GET does not serve answers HEAD with the GET's
    status (404, 405) and no body.
    """

    DISCONNECT = {"type": "http.disconnect"}

    def __init__(self, app, grace_s: float = 1.0):
        self.app = app
        self.grace_s = grace_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        started = asyncio.Event()
        limit = None

        async def head_receive():
            if started.is_set():
                return self.DISCONNECT
            message = asyncio.ensure_future(receive())
            start = asyncio.ensure_future(started.wait())
            try:
                await asyncio.wait({message, start}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                start.cancel()
                if not message.done():
                    message.cancel()
            return message.result() if not message.cancelled() else self.DISCONNECT

        async def head_send(message):
            kind = message["type"]
            if kind == "http.response.start":
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                started.set()
                limit.reschedule(loop.time() + self.grace_s)
            elif started.is_set() and not limit.expired() and (
                    kind == "http.response.pathsend" or (kind == "http.response.body" and not message.get("more_body"))):
                limit.reschedule(None)  # the application finishes by itself (background tasks included)
            # The body itself, trailers: dropped.

        try:
            async with asyncio.timeout(None) as limit:
                await self.app({**scope, "method": "GET"}, head_receive, head_send)
        except TimeoutError:
            if not limit.expired():
                raise


class BodyLimitMiddleware:
    """The request body, checked before the application sees it: read here in full, so that

    - a body over the limit is a 413 (at once from Content-Length, or as soon as a chunked body passes it);
    - a body in another media type than JSON is a 415 (the API speaks JSON only; a multipart body without
      a boundary once reached BentoML's form parser and came back as a 500);
    - a body that stalls (a client announcing more than it sends, or trickling) is a 408 after
      ``URBAN_SAFETY_BODY_TIMEOUT_S`` (default 10 s), well before the server's own 60 s request timeout.
    """

    def __init__(self, app, limit: int | None = None, timeout_s: float | None = None):
        self.app = app
        self.limit = max_body_bytes() if limit is None else limit
        self.timeout_s = body_timeout_s() if timeout_s is None else timeout_s

    def too_large(self):
        return _problem(413, "body", f"request body larger than {self.limit} bytes", "too_large",
                        {"Connection": "close"})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length")
        if length is not None:
            try:
                length = int(length)
            except ValueError:
                return await _problem(400, "content-length", "not a number", "value_error")(scope, receive, send)
            if length > self.limit:
                return await self.too_large()(scope, receive, send)
        if scope.get("method") in ("POST", "PUT", "PATCH") and (problem := _media_type_problem(headers)):
            return await _problem(415, "content-type", problem, "unsupported_media_type",
                                  {"Connection": "close"})(scope, receive, send)

        held, size = [], 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.001))
            except TimeoutError:
                return await _problem(408, "body", f"the request body did not arrive within {self.timeout_s:g} s",
                                      "timeout", {"Connection": "close"})(scope, receive, send)
            if message["type"] != "http.request":  # the client went away
                held.append(message)
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                return await self.too_large()(scope, receive, send)
            held.append(message)
            if not message.get("more_body"):
                break

        async def replay():
            return held.pop(0) if held else await receive()

        await self.app(scope, replay, send)


def body_timeout_s() -> float:
    raw = os.environ.get(BODY_TIMEOUT_ENV, "").strip()
    value = float(raw) if raw else DEFAULT_BODY_TIMEOUT_S
    if not value > 0:
        raise ValueError(f"{BODY_TIMEOUT_ENV} must be a positive number of seconds, not {raw!r}")
    return value


def _media_type_problem(headers: dict) -> str | None:
    """Why a request body's Content-Type is not JSON, or None (absent means JSON, as curl -d users expect
    nothing else of this API)."""
    raw = headers.get(b"content-type", b"").decode("latin-1").strip()
    media = raw.split(";", 1)[0].strip().lower()
    if not media or media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        return None
    return f"{media!r} is not accepted: send the body as application/json"


# An absolute file path of two or more parts ("/work/main/serving/engine.py", "/usr/lib/python3/..."),
# not preceded by a word character, ':' or '/' (so URLs and API paths like "/risk" are left alone).
_PATH = re.compile(r"(?<![\w:/.])/(?:[\w.@+~-]+/)+[\w.@+~-]*")
_TRACE = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")
_INTERNAL = "internal error: see the server log"
_GENERIC = {404: ("path", "not found", "not_found"), 405: ("method", "not allowed for this route", "method_not_allowed"),
            413: ("body", "request too large", "too_large")}


def _scrub(value):
    """No server path or traceback text in what is sent; the error keeps its kind (a client's own cell id may
    read "Traceback (most recent call last)": it is elided, and the 404 stays a 404)."""
    if isinstance(value, str):
        return _TRACE.sub("<elided>", _PATH.sub("<path>", value))
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    return value


def _shaped(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("error"), str) and isinstance(data.get("detail"), list)


def safe_error_body(status: int, body: bytes) -> bytes:
    """The body to send for an error response: the API's error shape, no stack trace, no server path."""
    text = body.decode("utf-8", "replace")
    # A 5xx that is not the API's own (503 not ready) says nothing more than "internal". A 4xx keeps its kind
    # whatever text it echoes (see _scrub).
    if status >= 500 and (status != 503 or _TRACE.search(text)):
        return error_response(status, [{"loc": [], "msg": _INTERNAL, "type": "internal"}]).body
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        data = text.strip()
    if (details := reshape_validation_error(data)) is not None:  # BentoML's own parsing of the request
        body = error_response(status, details).body
        data = json.loads(body)
    if _shaped(data):
        clean = _scrub(data)
        return body if clean == data else json.dumps(clean, ensure_ascii=False, separators=(",", ":")).encode()
    # Someone else's error (Starlette's 404/405, FastAPI's {"detail": ...}, BentoML's [{"error": ...}], a CORS
    # refusal): keep its message, in the API's shape.
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if isinstance(data, dict):
        data = data.get("error") or data.get("detail")
    field, msg, kind = _GENERIC.get(status, ("request", "", "http_error"))
    if isinstance(data, str) and data and status not in _GENERIC:
        msg = data
        if data.startswith("Disallowed CORS"):
            field, msg, kind = "origin", data[0].lower() + data[1:], "cors"
    msg = _scrub(msg or f"HTTP {status}")
    return error_response(status, [{"loc": [field], "msg": msg, "type": kind}]).body


class SafeErrorsMiddleware:
    """Every error response (4xx/5xx) leaves in the API's error shape with no stack trace or file path;
    an exception that escapes the application becomes a plain 500 (and is still logged by the server); a
    request still unanswered after ``deadline_s`` is a 504 in the same shape (BentoML's own timeout, later,
    would answer in its own shape)."""

    def __init__(self, app, deadline_s: float = REQUEST_DEADLINE_S):
        self.app = app
        self.deadline_s = deadline_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        sent = False  # has anything reached the client yet?
        start: dict | None = None  # an error response's start, held until its body is complete
        chunks: list[bytes] = []

        async def guard(message):
            nonlocal sent, start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message
                return None
            if message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return None
                sent = True
                return await self._send_error(start, b"".join(chunks), send)
            sent = True
            return await send(message)

        try:
            async with asyncio.timeout(self.deadline_s):  # in this task: BentoML's context variables stay put
                await self.app(scope, receive, guard)
        except TimeoutError:
            if not sent:
                msg = f"no answer within {self.deadline_s:g} s; try again, or ask for fewer locations"
                await _problem(504, "request", msg, "timeout")(scope, receive, send)
        except Exception:
            if not sent:
                await self._send_error({"type": "http.response.start", "status": 500, "headers": []}, b"", send)
            raise  # the server logs it; the client has its 500

    @staticmethod
    async def _send_error(start: dict, body: bytes, send) -> None:
        body = safe_error_body(start["status"], body)
        dropped = {b"content-length", b"content-type", b"content-encoding", b"transfer-encoding"}
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in dropped]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})



# --- /metrics: one label for every path the server does not serve ------------------------------------------

#: Paths served (exactly) and path prefixes served; anything else is a 404 whose metrics share one label.
SERVED_PATHS = frozenset({"/", "/risk", "/risk_map", "/predict", "/models", "/domains", "/dashboard", "/healthz",
                          "/livez", "/readyz", "/metrics", "/docs.json", "/schema.json", "/observations",
                          "/alerts", "/alerts/stream", "/replay", "/monitoring", "/hotspots",
                          "/scenario", "/grid", "/places"})
SERVED_PREFIXES = {"/static/": "/static/*", "/static_content/": "/static_content/*", "/alerts/": "/alerts/*",
                   "/replay/": "/replay/*"}
UNMATCHED = "unmatched"
_ORIGINAL_PATH = "urban_safety.original_path"


def metrics_label(path: str) -> str:
    """The ``endpoint`` label of a request: its route, a served prefix, or ``unmatched`` for a 404."""
    if path in SERVED_PATHS:
        return path
    return next((label for prefix, label in SERVED_PREFIXES.items() if path.startswith(prefix)), UNMATCHED)


def label_unmatched_paths() -> None:
    """Make BentoML's request metrics label requests by :func:`metrics_label`, not by the raw path.

    BentoML's metrics middleware sits outside every middleware a service can add and labels each request
    with ``scope["path"]``, so any client could add series to /metrics (and memory) with random paths. It
    reads the path once, on entry: it is handed the label as the path, and the application below it gets
    the request's own path back. Idempotent; called when the service module is imported.
    """
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware as Metrics

    if getattr(Metrics, "_urban_safety_labels", False):
        return
    init, call = Metrics.__init__, Metrics.__call__

    def __init__(self, app, *args, **kwargs):
        async def restore(scope, receive, send):
            if _ORIGINAL_PATH in scope:
                scope = {**scope, "path": scope[_ORIGINAL_PATH]}
            await app(scope, receive, send)
        init(self, restore, *args, **kwargs)

    async def __call__(self, scope, receive, send):
        if scope.get("type") == "http" and (label := metrics_label(scope["path"])) != scope["path"]:
            scope = {**scope, _ORIGINAL_PATH: scope["path"], "path": label}
        await call(self, scope, receive, send)

    Metrics.__init__, Metrics.__call__, Metrics._urban_safety_labels = __init__, __call__, True


# --- HTTP-layer errors: uvicorn's own 400 for a request it cannot parse ---------------------------------------

def shape_protocol_errors() -> None:
    """Make uvicorn's own 400 (a request line, header or chunk framing it cannot parse, answered before any
    application code runs) leave in the API's error shape instead of as plain text. Both of uvicorn's HTTP
    implementations write that answer in ``send_400_response``; it is replaced by one that writes the same
    status and ``Connection: close`` with a JSON body. Idempotent; called when the service module is imported."""
    import importlib

    def body(msg: str) -> bytes:
        return error_response(400, [{"loc": ["request"], "msg": f"malformed HTTP request: {msg}",
                                     "type": "malformed_request"}]).body

    def httptools_400(self, msg: str) -> None:
        data = body(msg)
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(data),
                 b"connection: close\r\n\r\n", data]
        self.transport.write(b"".join(head))
        self.transport.close()

    def h11_400(self, msg: str) -> None:
        import h11

        data = body(msg)
        event = h11.Response(status_code=400, reason=b"Bad Request", headers=[
            (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
            (b"connection", b"close")])
        for e in (event, h11.Data(data=data), h11.EndOfMessage()):
            self.transport.write(self.conn.send(e))
        self.transport.close()

    for module, cls, patch in (("h11_impl", "H11Protocol", h11_400), ("httptools_impl", "HttpToolsProtocol",
                                                                      httptools_400)):
        try:  # httptools is optional: uvicorn uses h11 without it
            impl = importlib.import_module(f"uvicorn.protocols.http.{module}")
        except ImportError:
            continue
        getattr(impl, cls).send_400_response = patch

"""One error shape for every 4xx the API returns, whoever found the problem.

    {"error": "<field>: <what is wrong>", "detail": [{"loc": [...], "msg": "...", "type": "..."}]}

``error`` always starts with the field's dotted path; ``detail`` lists every problem found. Errors found
by BentoML's own request parsing (pydantic) are rewritten into the same shape by :class:`ErrorShapeMiddleware`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from starlette.responses import JSONResponse


class ApiError(Exception):
    """A client error with its HTTP status and the field it is about."""

    def __init__(self, status: int, loc: Sequence[str | int], msg: str, kind: str = "value_error"):
        self.status, self.loc, self.msg, self.kind = status, list(loc), msg, kind
        super().__init__(f"{dotted(self.loc)}: {msg}" if self.loc else msg)

    def response(self) -> JSONResponse:
        return error_response(self.status, [{"loc": self.loc, "msg": self.msg, "type": self.kind}])


def dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def error_response(status: int, details: list[dict]) -> JSONResponse:
    first = details[0]
    where = dotted(first.get("loc", []))
    headline = f"{where}: {first['msg']}" if where else first["msg"]
    if len(details) > 1:
        headline += f" (and {len(details) - 1} more problem{'s' if len(details) > 2 else ''})"
    return JSONResponse({"error": headline, "detail": details}, status_code=status)


class ErrorShapeMiddleware:
    """Rewrite BentoML's pydantic-validation 400s ({"error": "N validation error for X", "detail": [...]})
    so their ``error`` names the field, and drop the request-model wrapper from each ``loc``."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        held: list[dict] = []

        async def capture(message):
            if message["type"] == "http.response.start" and message["status"] == 400:
                held.append(message)
                return None
            if held:
                held.append(message)
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    await self._rewrite(held, send)
                return None
            return await send(message)

        await self.app(scope, receive, capture)

    @staticmethod
    async def _rewrite(held: list[dict], send) -> None:
        start, body = held[0], b"".join(m.get("body", b"") for m in held[1:])
        try:
            data = json.loads(body)
            if isinstance(data, dict) and "validation error" in str(data.get("error", "")):
                details = [{"loc": _field_loc(d.get("loc", [])), "msg": d.get("msg", "invalid"),
                            "type": d.get("type", "value_error")} for d in data.get("detail", [])]
                if details:
                    body = error_response(400, details).body
        except ValueError:
            pass
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _field_loc(loc: list) -> list:
    """BentoML's loc without its request-model wrapper; a problem with the whole body (invalid JSON, not an
    object) has no field of its own, so it is about ``body``."""
    loc = list(loc)
    while loc and loc[0] in ("body", "Input"):
        loc.pop(0)
    return loc or ["body"]

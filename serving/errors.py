"""One error shape for every 4xx the API returns, whoever found the problem.

    {"error": "<field>: <what is wrong>", "detail": [{"loc": [...], "msg": "...", "type": "..."}]}

``error`` always starts with the field's dotted path; ``detail`` lists every problem found. Errors found
by BentoML's own request parsing (pydantic) are rewritten into the same shape by serving/security.py's
:class:`SafeErrorsMiddleware`, with :func:`reshape_validation_error`.
"""

from __future__ import annotations

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
    """A field path as people write it (``records[0].time``); an empty name is shown as ``""``."""
    out = ""
    for part in loc:
        name = str(part) or '""'  # a key of no characters must still be named
        out += f"[{part}]" if isinstance(part, int) else (f".{name}" if out else name)
    return out


def error_response(status: int, details: list[dict]) -> JSONResponse:
    first = details[0]
    where = dotted(first.get("loc", []))
    headline = f"{where}: {first['msg']}" if where else first["msg"]
    if len(details) > 1:
        headline += f" (and {len(details) - 1} more problem{'s' if len(details) > 2 else ''})"
    return JSONResponse({"error": headline, "detail": details}, status_code=status)


def reshape_validation_error(data) -> list[dict] | None:
    """The ``detail`` of one of BentoML's pydantic-validation 400s ({"error": "N validation error for X",
    "detail": [...]}) with the request-model wrapper dropped from each ``loc``; None for any other body."""
    if not (isinstance(data, dict) and "validation error" in str(data.get("error", ""))
            and isinstance(data.get("detail"), list) and data["detail"]):
        return None
    return [{"loc": _field_loc(d.get("loc", [])), "msg": d.get("msg", "invalid"), "type": d.get("type", "value_error")}
            for d in data["detail"] if isinstance(d, dict)] or None


def _field_loc(loc: list) -> list:
    """BentoML's loc without its request-model wrapper; a problem with the whole body (invalid JSON, not an
    object) has no field of its own, so it is about ``body``."""
    loc = list(loc)
    while loc and loc[0] in ("body", "Input"):
        loc.pop(0)
    return loc or ["body"]


def read_body(raw: bytes, model, fields: str):
    """A JSON request body validated as the pydantic ``model``: ``(body, None)``, or ``(None, the 400 response)``
    naming every problem (``fields`` says what the object should hold, for a body that is not one)."""
    import json

    from pydantic import ValidationError

    try:
        data = json.loads(raw or b"null")
    except ValueError as exc:
        return None, ApiError(400, ["body"], f"not valid JSON: {exc}", "json_invalid").response()
    if not isinstance(data, dict):
        return None, ApiError(400, ["body"], f"must be a JSON object with {fields}", "model_type").response()
    try:
        return model.model_validate(data), None
    except ValidationError as exc:
        return None, error_response(400, [{"loc": list(e["loc"]) or ["body"], "type": e["type"],
                                           "msg": e["msg"].removeprefix("Value error, ")}
                                          for e in exc.errors(include_url=False, include_input=False)])


def documented_body(model) -> dict:
    """FastAPI ``openapi_extra`` documenting a route's JSON body as ``model`` (the routes read the body
    themselves, to answer every problem in the API's error shape); nested models are inlined, since a
    ``$defs`` reference would point outside the OpenAPI document."""
    schema = model.model_json_schema(by_alias=True)
    defs = schema.pop("$defs", {})

    def inline(node):
        if isinstance(node, dict):
            return inline(defs[node["$ref"].rsplit("/", 1)[-1]]) if "$ref" in node else \
                {k: inline(v) for k, v in node.items()}
        return [inline(v) for v in node] if isinstance(node, list) else node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}


def service_engine():
    """The running service's engine, for routes mounted beside the BentoML API; a 503 ApiError when it did
    not start."""
    import bentoml

    engine = getattr(bentoml.get_current_service(), "engine", None)
    if engine is None:
        raise ApiError(503, [], "the service's engine did not start", "unavailable")
    return engine


async def answer_body(raw: bytes, model, fields: str, answer):
    """A mounted route's whole answer: the JSON body read as ``model`` (:func:`read_body`), then
    ``answer(engine, body)`` in a worker thread, as JSON; an :class:`ApiError` becomes its own response."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse

    body, problem = read_body(raw, model, fields)
    if problem is not None:
        return problem
    try:
        return JSONResponse(await run_in_threadpool(answer, service_engine(), body))
    except ApiError as exc:
        return exc.response()

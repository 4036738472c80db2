"""Which domains a city's service can answer: the city runs them, the data they read is held, a time to
answer for exists. A partial city (weather and air quality only) serves fine dust and answers the other
domains with 503 and the reason; ``/readyz`` says which (:class:`ReadinessMiddleware`).
"""

from __future__ import annotations

import json

import pandas as pd

from features.errors import UrbanSafetyError


def domain_times(sources, specs: dict) -> tuple[dict[str, pd.Timestamp], dict[str, str]]:
    """(default prediction time of each servable domain, reason each other domain cannot be served)."""
    city = sources.city
    now, reasons = {}, {}
    for name, spec in specs.items():
        if not city.runs(name):
            reasons[name] = f"{city.name} does not run {name} (its city config lists domains = {city.domains})"
            continue
        missing = [s for s in spec.sources if not sources.available(s)]
        if missing:
            reasons[name] = (f"no data: the service holds no {', '.join(missing)} for {city.name} (import them "
                             "with `urban-safety data import --source ...`, then run `urban-safety serve`)")
            continue
        try:
            now[name] = pd.Timestamp(spec.serving.now(sources))
        except (UrbanSafetyError, KeyError, ValueError) as exc:  # data held, but none the domain can use
            reasons[name] = f"no usable data: {exc}"
    return now, reasons


class ReadinessMiddleware:
    """Answers ``GET /readyz`` itself with which domains serve and why the others do not (200 when every
    domain the city can serve has its model, else 503); BentoML's own answer carries no body."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") != "/readyz" or scope.get("method") not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        import bentoml

        try:
            svc = bentoml.get_current_service()
        except Exception:  # not inside a worker yet: BentoML's own answer
            return await self.app(scope, receive, send)
        engine = getattr(svc, "engine", None)
        if engine is None:
            problem = getattr(svc, "startup_problem", "") or "starting"
            body = {"ready": False, "domains": {}, "detail": [{"loc": [], "msg": problem, "type": "unavailable"}]}
        else:
            body = {"ready": engine.ready, "domains": engine.availability(), "products": engine.products(),
                    "observations": engine.freshness(), "store_version": engine.version}
            body["detail"] = [{"loc": ["domains", name], "msg": why, "type": "unavailable"}
                              for name, why in body["domains"].items() if why != "serving"]
        if not body["ready"]:  # the API's error shape, which the error middleware passes on as it is
            body = {"error": f"not ready: {body['detail'][0]['msg'] if body['detail'] else 'no domain serves'}",
                    **body}
        payload = json.dumps(body, ensure_ascii=False).encode()
        await send({"type": "http.response.start", "status": 200 if body["ready"] else 503,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload if scope["method"] == "GET" else b""})

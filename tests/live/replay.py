"""A local stand-in for the open APIs: recorded answers in their real shapes, served over HTTP.

Answers come from ``tests/fixtures/api_replay`` (each a whole answer as the API gives it); the server
slices JSON item lists by ``pageNo``/``numOfRows`` as the portal does, answers a wrong key as the
data.go.kr gateway does (XML, code 30), answers what it has no recording for with "no data" (03), and
records every request. ``queue(path, *answers)`` scripts the next answers of one path (a 500, a quota
error) before the recordings take over.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

FIXTURES = Path(__file__).parents[1] / "fixtures" / "api_replay"
AIR_FILES = {"신흥": "airkorea_sinheung.json"}  # file names stay ASCII
# Earthquake messages by announcement date: served when the asked fromTmFc-toTmFc covers the date.
EQK_FILES = {"20171115": "kma_eqk_pohang2017.json"}


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json;charset=UTF-8"


@dataclass(frozen=True)
class Request:
    path: str
    params: dict[str, str]
    at: float  # time.monotonic()


def fixture(name: str, status: int = 200) -> Answer:
    data = (FIXTURES / name).read_bytes()
    kind = {".xml": "text/xml;charset=UTF-8", ".txt": "text/plain;charset=euc-kr"}.get(Path(name).suffix,
                                                                                    "application/json;charset=UTF-8")
    return Answer(status, data, kind)


def error(status: int) -> Answer:
    return Answer(status, b"<html><body>Internal Server Error</body></html>", "text/html")


class Replay:
    """The server; use as a context manager. ``url`` is its base URL, ``requests`` what it received."""

    def __init__(self, key: str = "test-key", hub_key: str = "hub-key"):
        self.key, self.hub_key = key, hub_key
        self.requests: list[Request] = []
        self._queued: dict[str, list[Answer]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> Replay:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def queue(self, path: str, *answers: Answer) -> None:
        with self._lock:
            self._queued.setdefault(path, []).extend(answers)

    def to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def answer(self, path: str, params: dict[str, str]) -> Answer:
        with self._lock:
            self.requests.append(Request(path, params, time.monotonic()))
            queued = self._queued.get(path)
            if queued:
                return queued.pop(0)
        if path.endswith("awsh.php"):
            if params.get("authKey") != self.hub_key:
                return Answer(403, "인증 실패: 등록되지 않은 authKey".encode("cp949"), "text/plain;charset=euc-kr")
            name = f"aws_{params.get('tm')}.txt"
            return fixture(name) if (FIXTURES / name).exists() else Answer(200, b"#START7777\n#7777END\n",
                                                                            "text/plain")
        if params.get("serviceKey") != self.key:
            return fixture("gateway_30.xml")
        name = self._recording(path, params)
        if name is None or not (FIXTURES / name).exists():
            return fixture("nodata.json")
        return self._page(json.loads((FIXTURES / name).read_text(encoding="utf-8")), params)

    @staticmethod
    def _recording(path: str, p: dict[str, str]) -> str | None:
        if path.endswith("getWthrDataList"):
            return f"asos_{p.get('stnIds')}.json"
        if path.endswith("getUltraSrtFcst"):
            return f"nowcast_{p.get('nx')}_{p.get('ny')}_{p.get('base_date')}_{p.get('base_time')}.json"
        if path.endswith("getUltraSrtNcst"):
            return f"ncst_{p.get('nx')}_{p.get('ny')}_{p.get('base_date')}_{p.get('base_time')}.json"
        if path.endswith("getMsrstnAcctoRltmMesureDnsty"):
            return AIR_FILES.get(p.get("stationName", ""))
        if path.endswith("GetSurveyTideLevelApiService"):
            return f"tide_{p.get('obsCode')}_{p.get('reqDate')}.json"
        if path.endswith("getEqkMsg"):
            days = [d for d in EQK_FILES if p.get("fromTmFc", "") <= d <= p.get("toTmFc", "")]
            return EQK_FILES[days[0]] if days else None
        return None

    @staticmethod
    def _page(doc: dict, params: dict[str, str]) -> Answer:
        """The recorded answer cut to the requested page, as the portal pages."""
        doc = copy.deepcopy(doc)
        body = doc.get("response", doc)["body"]
        items = body["items"]["item"] if isinstance(body["items"], dict) else body["items"]
        size, page = int(params.get("numOfRows", 10)), int(params.get("pageNo", 1))
        part = items[(page - 1) * size:page * size]
        if isinstance(body["items"], dict):
            body["items"]["item"] = part
        else:
            body["items"] = part
        body.update(pageNo=page, numOfRows=size, totalCount=len(items))
        return Answer(200, json.dumps(doc, ensure_ascii=False).encode("utf-8"))

    def _handler(self):
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                url = urlsplit(self.path)
                answer = replay.answer(url.path, dict(parse_qsl(url.query, keep_blank_values=True)))
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args):  # keep test output clean
                pass

        return Handler

"""Fuzz every route of a real server from its own OpenAPI document (schemathesis 4.x Python API + Hypothesis).

Three sources of requests, all sent as schemathesis ``Case`` objects of the document's operations:

1. schemathesis' own generation for every operation in ``/docs.json``, positive and negative modes;
2. schema-aware bodies built here from ``GET /domains`` (real cell ids, in-city points, each domain's conditions,
   ``at`` from year 1 to 9999 in several timezones, feature records with huge/tiny/odd numbers): schemathesis
   alone rarely gets past the first 400, these reach the engine and the models;
3. a fixed list of edge cases (raw NaN/Infinity tokens, invalid JSON, limits, unknown routes and methods).

Every response must be: below 500; strict JSON when JSON; free of "Traceback" and server paths; and, when 4xx,
in the documented shape ``{"error": "<field path>: <problem>", "detail": [{"loc", "msg", "type"}, ...]}`` whose
first ``loc`` is non-empty and whose ``error`` starts with that dotted path. 404/405 for routes or methods the
document does not list come from Starlette/BentoML routing: for those only the status, the absence of 5xx and of
leaks are asserted (they happen to be shaped too, by serving/security.py, but that is not this file's contract).
Generation is derandomized and bounded (max_examples, no shrinking), so the run is reproducible; the request
count and status histogram are printed (run with -s).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.core.failures import FailureGroup

from serving.errors import dotted

MIN_REQUESTS = 1_000
# max_examples per (operation, mode): schemathesis' own generation
SCHEMA_BUDGET = {"POST /risk": 120, "POST /risk_map": 70, "POST /predict": 100}
GET_BUDGET = 3
# max_examples per operation: bodies built here from the catalogue
INFORMED_BUDGET = {"/risk": 260, "/risk_map": 110, "/predict": 200}
DIRECT_GETS = 5  # plain repeated GETs of every GET route in the document (and /models, /domains if absent)
LEAKS = ("Traceback", "/work/", "site-packages")


class Recorder:
    """Every request sent, its status, and every problem found."""

    def __init__(self, base: str, documented: set[str]):
        self.base, self.documented = base, documented
        self.statuses: Counter[int] = Counter()
        self.by_route: dict[str, Counter[int]] = {}
        self.problems: list[str] = []
        self.schemathesis_failures: Counter[str] = Counter()
        self.ran: set[str] = set()

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    def record(self, method: str, path: str, sent_body: Any, resp) -> None:
        route = f"{method} {path}"
        self.statuses[resp.status_code] += 1
        self.by_route.setdefault(route, Counter())[resp.status_code] += 1
        for problem in response_problems(route in self.documented, sent_body, resp):
            if len(self.problems) < 200:
                self.problems.append(f"{route} {short(sent_body)} -> {resp.status_code} {resp.text[:300]}: {problem}")

    def report(self, title: str) -> str:
        lines = [f"{title}: {self.sent} requests; status histogram {dict(sorted(self.statuses.items()))}"]
        lines.append("  per route (requests, statuses):")
        lines += [f"  {route:<16} {sum(c.values()):>5}  {dict(sorted(c.items()))}"
                  for route, c in sorted(self.by_route.items())]
        if self.schemathesis_failures:
            lines.append(f"  schemathesis built-in checks, informational: {dict(self.schemathesis_failures)}")
        return "\n".join(lines)


def short(body: Any, limit: int = 300) -> str:
    text = body if isinstance(body, str | bytes) else json.dumps(body, default=str)
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return text if len(text) <= limit else text[:limit] + "..."


def _reject_constant(token: str):
    raise ValueError(f"non-standard JSON token {token}")


def response_problems(documented: bool, sent_body: Any, resp) -> list[str]:
    status, text = resp.status_code, resp.text
    sent_text = short(sent_body, limit=10**9)
    out = [f"leaks {leak!r}" for leak in LEAKS if leak in text and leak not in sent_text]
    if status >= 500:
        out.append("server error")
    content_type = resp.headers.get("content-type", "")  # schemathesis' Response holds lists of values
    is_json = "json" in (content_type if isinstance(content_type, str) else ",".join(content_type))
    data = None
    if is_json:
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except ValueError as exc:
            out.append(f"not strict JSON: {exc}")
    if 400 <= status < 500:
        if not documented and status in (404, 405):
            return out  # routing of unknown routes/methods: Starlette/BentoML's, see the module docstring
        out += error_shape_problems(data if is_json else None)
    return out


def error_shape_problems(data: Any) -> list[str]:
    if not (isinstance(data, dict) and isinstance(data.get("error"), str) and isinstance(data.get("detail"), list)
            and data["detail"]):
        return ["4xx not in the documented error shape"]
    bad = [d for d in data["detail"] if not (isinstance(d, dict) and isinstance(d.get("loc"), list)
                                              and isinstance(d.get("msg"), str) and isinstance(d.get("type"), str))]
    if bad:
        return [f"detail entries not {{loc, msg, type}}: {bad[:2]}"]
    loc = data["detail"][0]["loc"]
    if not loc:
        return ["detail[0].loc is empty: the error names no field"]
    if not data["error"].startswith(f"{dotted(loc)}: "):
        return [f"error does not start with the field path {dotted(loc)!r}"]
    return []


# --- fixtures ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def schema(served):
    return schemathesis.openapi.from_url(f"{served}/docs.json")


@pytest.fixture(scope="module")
def operations(schema) -> dict[str, Any]:
    ops = {}
    for result in schema.get_all_operations():
        op = result.ok()  # a broken operation in the document is itself a failure
        ops[f"{op.method.upper()} {op.path}"] = op
    return ops


@pytest.fixture(scope="module")
def recorder(served, operations) -> Recorder:
    return Recorder(served, set(operations))


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        yield s


@pytest.fixture(scope="module")
def catalogue(served) -> dict:
    return httpx.get(f"{served}/domains", timeout=60).json()


@pytest.fixture(scope="module")
def cells(served) -> list[dict]:
    body = httpx.post(f"{served}/risk_map", json={"domain": "flood"}, timeout=60).json()
    return [{"cell_id": f["properties"]["cell_id"], "lon": f["geometry"]["coordinates"][0][0][0],
             "lat": f["geometry"]["coordinates"][0][0][1]} for f in body["features"]]


def quiet(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                    verbosity=Verbosity.quiet)


def send_case(case, served: str, session, recorder: Recorder, *, builtin_checks: bool = False) -> None:
    resp = case.call(base_url=served, session=session, timeout=60)
    body = case.body if case.body is not NOT_SET else None
    recorder.record(case.operation.method.upper(), case.operation.path, body, resp)
    try:  # schemathesis' own 5xx check, as an assertion through the problem list
        case.validate_response(resp, checks=[not_a_server_error])
    except FailureGroup as exc:
        recorder.problems.append(f"schemathesis not_a_server_error: {exc.exceptions[0]}")
    if builtin_checks:  # the rest of the default checks only inform (the document's error schema is BentoML's)
        try:
            case.validate_response(resp)
        except FailureGroup as exc:
            for failure in exc.exceptions:
                recorder.schemathesis_failures[type(failure).__name__] += 1


def assert_clean(recorder: Recorder, what: str, sent_before: int) -> None:
    """Fail with this test's problems (and forget them, so the next test starts clean)."""
    found, recorder.problems = recorder.problems, []
    recorder.ran.add(what)
    print(f"\n{what}: {recorder.sent - sent_before} requests, {len(found)} problems")
    assert not found, "\n".join(found[:20])


# --- 1. schemathesis' generation over every operation in the document ------------------------------------
def test_schemathesis_generation_over_every_documented_operation(served, operations, session, recorder):
    assert {"POST /risk", "POST /risk_map", "POST /predict"} <= operations.keys()
    sent_before = recorder.sent
    for label, op in operations.items():
        modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if op.method.upper() == "POST" \
            else [GenerationMode.POSITIVE]
        for mode in modes:
            @quiet(SCHEMA_BUDGET.get(label, GET_BUDGET))
            @given(case=op.as_strategy(generation_mode=mode))
            def fuzz(case):
                send_case(case, served, session, recorder, builtin_checks=True)

            fuzz()
    for op in operations.values():  # GET routes without path parameters: a few plain calls each
        if op.method.upper() == "GET" and "{" not in op.path:
            for _ in range(DIRECT_GETS):
                send_case(op.Case(), served, session, recorder)
    for path in ("/models", "/domains"):
        if f"GET {path}" not in operations:
            for _ in range(DIRECT_GETS):
                resp = session.get(f"{served}{path}", timeout=60)
                recorder.record("GET", path, None, resp)
    assert_clean(recorder, "schemathesis", sent_before)


# --- 2. bodies built from the catalogue ------------------------------------------------------------------
ZONES = [None, UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)),
         timezone(timedelta(hours=5, minutes=45))]
ODD_NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**400, -(10**400), 1e308, -1e308, 5e-324, -0.0, 2**63, -(2**63) - 1, 2**64]),
    st.sampled_from(["NaN", "nan", "inf", "-Infinity", "1e999", "", " 5 ", "0x10", "1_000", "٣"]),
)
ODD_VALUES = st.one_of(ODD_NUMBERS, st.booleans(), st.none(), st.text(max_size=12),
                       st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                            max_size=1))


def mostly(common: st.SearchStrategy, odd: st.SearchStrategy, p: float = 0.1) -> st.SearchStrategy:
    """``common`` with probability 1 - p, else ``odd`` (``one_of`` leans to its simplest branches instead)."""
    return st.randoms(use_true_random=True).flatmap(lambda rnd: odd if rnd.random() < p else common)


def datetimes(lo: datetime, hi: datetime):
    return st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(), st.datetimes(min_value=lo, max_value=hi),
                     st.sampled_from(ZONES))


def at_values(catalogue: dict):
    newest = max(datetime.fromisoformat(d["default_at"]) for d in catalogue["domains"].values())
    return st.one_of(
        st.none(),
        datetimes(newest - timedelta(days=400), newest + timedelta(days=2)),  # around the data held
        datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)),
        st.sampled_from(["0001-01-01T00:00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00",
                         "1677-09-21T00:12:43", "1677-09-22T00:00:00", "1678-01-01T00:00:00",
                         "2262-04-11T23:47:16", "1970-01-01T00:00:00Z", "2021-02-29T00:00:00", "2021-08-31",
                         "2021-08-31T24:00:00", "now", "", "T", "2021-08-31T23:00:00+25:00"]),
        st.integers(min_value=-(2**40), max_value=2**40), st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    )


def condition_value(c: dict):
    if c["type"] in ("float", "int"):
        lo = c["minimum"] if c["minimum"] is not None else -1e6
        hi = c["maximum"] if c["maximum"] is not None else 1e6
        good = st.sampled_from(c["choices"]) if c.get("choices") else \
            st.floats(lo, hi) if c["type"] == "float" else st.integers(int(lo), int(hi))
        edge = st.sampled_from([lo, hi, lo - 1e-9, hi + 1e-9, math.nextafter(hi, math.inf)])
        return mostly(good, st.one_of(edge, ODD_VALUES), 0.2)
    if c["type"] == "str":
        return mostly(st.sampled_from(c["choices"]), st.one_of(st.sampled_from(["Day", " night", "noon", ""]),
                                                               ODD_VALUES), 0.2)
    if c["type"] == "bool":
        return mostly(st.booleans(), st.one_of(st.sampled_from(["true", "yes", "off", 0, 1, 2, 0.5, "maybe"]),
                                               ODD_VALUES), 0.2)
    return mostly(st.dates(date(2020, 1, 1), date(2022, 12, 31)).map(date.isoformat), st.one_of(  # date
        st.dates().map(date.isoformat),
        st.sampled_from(["0001-01-01", "9999-12-31", "2021-02-29", "2021-13-01", "2021-08-31T12:00:00",
                         "2021-08-31T12:00:00+09:00", "20210831", "yesterday"]), ODD_VALUES), 0.3)


def conditions_values(catalogue: dict, domain: str):
    conds = catalogue["domains"][domain]["conditions"] if domain in catalogue["domains"] else []
    required = {c["name"]: condition_value(c) for c in conds if c["required"]}
    optional = {c["name"]: condition_value(c) for c in conds if not c["required"]}
    proper = st.fixed_dictionaries(required, optional=optional)
    mangled = st.fixed_dictionaries({}, optional={**required, **optional, "bogus": ODD_VALUES, "": ODD_VALUES})
    return mostly(proper, st.one_of(mangled, st.none(), ODD_VALUES))


def locations(cells: list[dict]):
    cell_ids = [c["cell_id"] for c in cells]
    one = mostly(st.one_of(
        st.sampled_from(cell_ids).map(lambda cid: {"cell_id": cid}),
        st.builds(lambda c, dy, dx: {"lat": c["lat"] + dy, "lon": c["lon"] + dx}, st.sampled_from(cells),
                  st.floats(-0.02, 0.02), st.floats(-0.025, 0.025))), st.one_of(
        st.builds(lambda a, b: {"lat": a, "lon": b}, st.floats(-90, 90), st.floats(-180, 180)),
        st.builds(lambda cid: {"cell_id": cid}, st.one_of(
            st.text(max_size=70), st.sampled_from(cell_ids).map(lambda c: c.lower()),
            st.sampled_from(cell_ids).map(lambda c: f" {c} "), st.sampled_from(["ICN-2000-000-000", "..", "%00",
                                                                                "ICN-2000-999999999999-0"]))),
        st.fixed_dictionaries({}, optional={"lat": ODD_VALUES, "lon": ODD_VALUES, "cell_id": ODD_VALUES}),
        ODD_VALUES,
    ), 0.05)
    return mostly(st.lists(one, min_size=1, max_size=4), st.one_of(st.lists(one, max_size=12), ODD_VALUES), 0.05)


def domain_names(catalogue: dict):
    names = sorted(catalogue["domains"])
    return mostly(st.sampled_from(names), st.one_of(
        st.sampled_from([n.upper() for n in names] + ["", " flood", "tsunami"]), ODD_VALUES), 0.05)


def chance(draw, p: float) -> bool:
    return draw(st.randoms(use_true_random=True)).random() < p


def optional_keys(draw, body: dict) -> dict:
    """Usually the whole body; sometimes a random subset of its keys (missing required fields)."""
    if chance(draw, 0.05):
        return {k: v for k, v in body.items() if chance(draw, 0.5)}
    return body


@st.composite
def question_bodies(draw, catalogue, cells=None):
    """A /risk body (with ``cells``) or a /risk_map body: domain, conditions, sometimes ``at``."""
    domain = draw(domain_names(catalogue))
    body = {"domain": domain} if cells is None else {"domain": domain, "locations": draw(locations(cells))}
    if chance(draw, 0.7 if cells is None else 0.8):
        body["conditions"] = draw(conditions_values(catalogue, domain if isinstance(domain, str) else ""))
    if chance(draw, 0.7 if cells is None else 0.5):
        body["at"] = draw(at_values(catalogue))
    return optional_keys(draw, body)


@st.composite
def predict_bodies(draw, catalogue):
    domain = draw(domain_names(catalogue))
    features = catalogue["domains"].get(domain, catalogue["domains"]["flood"])["features"] \
        if isinstance(domain, str) else catalogue["domains"]["flood"]["features"]
    value = mostly(st.one_of(st.floats(-1e4, 1e4), st.none()), ODD_NUMBERS, 0.03)
    record = st.fixed_dictionaries(dict.fromkeys(features, value))
    odd_record = st.one_of(
        st.fixed_dictionaries({}, optional=dict.fromkeys(features, value)),
        record.map(lambda r: {**r, "extra": 1.0}), st.dictionaries(st.text(max_size=5), value, max_size=3),
        ODD_VALUES)
    records = mostly(st.lists(record, min_size=1, max_size=4),
                     st.one_of(st.lists(st.one_of(record, odd_record), max_size=4), ODD_VALUES), 0.15)
    return optional_keys(draw, {"domain": domain, "records": draw(records)})


def fuzz_bodies(op, bodies, n: int, served: str, session, recorder: Recorder) -> None:
    @quiet(n)
    @given(body=bodies)
    def fuzz(body):
        send_case(op.Case(body=body, media_type="application/json"), served, session, recorder)

    fuzz()


def test_catalogue_informed_bodies_reach_the_engine(served, operations, session, recorder, catalogue, cells):
    strategies = {"/risk": question_bodies(catalogue, cells), "/risk_map": question_bodies(catalogue),
                  "/predict": predict_bodies(catalogue)}
    before = {route: Counter(recorder.by_route.get(f"POST {route}", {})) for route in strategies}
    sent_before = recorder.sent
    for path, bodies in strategies.items():
        fuzz_bodies(operations[f"POST {path}"], bodies, INFORMED_BUDGET[path], served, session, recorder)
    for path in strategies:  # the informed bodies must get past validation into the models, often
        ok = recorder.by_route[f"POST {path}"][200] - before[path][200]
        assert ok >= INFORMED_BUDGET[path] // 10, f"only {ok} answers from POST {path}"
    assert_clean(recorder, "informed", sent_before)


# --- 3. fixed edge cases -----------------------------------------------------------------------------------
POINT = {"lat": 37.4777, "lon": 126.6249}


def edge_cases(catalogue: dict) -> list[tuple[str, str, Any, int | None]]:
    """(method, path, body as JSON object or raw bytes, expected status or None for any non-5xx)."""
    features = catalogue["domains"]["flood"]["features"]
    row = dict.fromkeys(features, 1.0)
    raw_row = json.dumps(row)
    cases = [
        ("POST", "/risk", b"{not json", 400),
        ("POST", "/risk", b"", 400),
        ("POST", "/risk", b"[]", 400),
        ("POST", "/risk", b'"flood"', 400),
        ("POST", "/risk", b"null", 400),
        ("POST", "/risk", "\ud800".encode("utf-8", "surrogatepass"), 400),
        ("POST", "/risk", b'{"domain": "flood", "locations": [{"lat": NaN, "lon": 126.6}]}', 400),
        ("POST", "/risk", b'{"domain": "flood", "locations": [{"lat": Infinity, "lon": 126.6}]}', 400),
        ("POST", "/risk", b'{"domain": "flood", "locations": [{"lat": 37.4, "lon": 126.6}], '
                          b'"conditions": {"rain_1h": NaN}}', 400),
        ("POST", "/risk", {"domain": "flood", "locations": [POINT] * 501}, 413),
        ("POST", "/risk", {"domain": "flood", "locations": [POINT] * 500}, 200),
        ("POST", "/risk", {"domain": "flood", "locations": [POINT], "at": "0001-01-01T00:00:00"}, 400),
        ("POST", "/risk", {"domain": "flood", "locations": [POINT], "at": "0001-01-01T00:00:00+14:00"}, 400),
        ("POST", "/risk", {"domain": "flood", "locations": [POINT], "at": "9999-12-31T23:59:59-12:00"}, 400),
        ("POST", "/risk", {"domain": "flood", "locations": [POINT], "conditions": {"rain_1h": "inf"}}, 400),
        ("POST", "/risk", {"domain": "flood", "locations": [POINT], "conditions": {"rain_1h": 10**400}}, 400),
        ("POST", "/risk", {"domain": "flood", "locations": [POINT], "at": "1899-12-31T23:59:59"}, 400),
        # before the held observations: refused like a time after them
        ("POST", "/risk", {"domain": "flood", "locations": [POINT], "at": "1900-01-01T00:00:00"}, 400),
        ("POST", "/risk", {"domain": "fine_dust", "locations": [POINT], "conditions": {"target_date": "0001-01-01"}},
         400),
        ("POST", "/risk", {"domain": "fine_dust", "locations": [POINT], "conditions": {"target_date": "9999-12-31"}},
         400),
        ("POST", "/risk_map", {"domain": "fine_dust", "conditions": {"target_date": "2199-12-31"},
                               "at": "1900-01-01T00:00:00"}, 400),
        ("POST", "/risk_map", {"domain": "fine_dust", "conditions": {"target_date": "2199-12-31"}}, 200),
        ("POST", "/risk", {"domain": "flood", "locations": [POINT], "condition": {}}, 400),
        ("POST", "/risk", {"domain": "flood", "locations": [POINT], "conditions": {"rain_1h": True}}, 400),
        ("POST", "/risk_map", {"domain": "traffic", "at": "0001-01-01T00:00:00"}, 400),
        ("POST", "/risk_map", {"domain": "earthquake", "conditions": {"magnitude": 5, "epicentre_lat": 37,
                                                                      "epicentre_lon": 126.5, "depth_km": 0}}, 200),
        ("POST", "/predict", ("{" + '"domain": "flood", "records": [' + raw_row.replace("1.0", "NaN", 1) + "]}")
         .encode(), None),
        ("POST", "/predict", ("{" + '"domain": "flood", "records": [' + raw_row.replace("1.0", "Infinity", 1) + "]}")
         .encode(), 400),
        ("POST", "/predict", {"domain": "flood", "records": [dict.fromkeys(features, 1e308)]}, 200),
        ("POST", "/predict", {"domain": "flood", "records": [dict.fromkeys(features, 10**400)]}, 400),
        ("POST", "/predict", {"domain": "flood", "records": [row, {**row, features[-1]: "-inf"}]}, 400),
        ("POST", "/predict", {"domain": "flood", "records": [{**row, features[0]: "NaN"}]}, 400),  # a string
        ("POST", "/predict", {"domain": "flood", "records": [dict.fromkeys(features)]}, 200),
        ("POST", "/predict", {"domain": "flood", "records": [row] * 10_001}, 413),
        ("POST", "/predict", {"domain": "flood", "records": [row] * 10_000}, 200),
        ("POST", "/predict", {"domain": "flood", "records": [{**row, "": 1.0}]}, 400),
        ("GET", "/no-such-route", None, 404),
        ("POST", "/no-such-route", {}, 404),
        ("GET", "/risk", None, 405),
        ("PUT", "/predict", {}, 405),
        ("DELETE", "/models", None, 405),
        ("POST", "/domains", {}, 405),
    ]
    return cases


# Bodies in other media types than JSON: 415, whatever they hold (a multipart body without a boundary once
# reached BentoML's form parser and came back as a 500).
MEDIA_CASES = [("multipart/form-data", b'{"domain": "flood"}'), ("multipart/form-data; boundary=zz", b"--zz--\r\n"),
               ("application/x-www-form-urlencoded", b"domain=flood"), ("text/csv", b"a,b\n1,2"),
               ("application/octet-stream", b"\x00\xff"), ("image/png", b"\x89PNG")]


def test_edge_cases(served, session, recorder, catalogue):
    wrong, sent_before = [], recorder.sent
    for method, path, body, expected in edge_cases(catalogue):
        kwargs = {"data": body, "headers": {"Content-Type": "application/json"}} if isinstance(body, bytes) \
            else {"json": body} if body is not None else {}
        resp = session.request(method, f"{served}{path}", timeout=60, **kwargs)
        recorder.record(method, path, body, resp)
        if expected is not None and resp.status_code != expected:
            wrong.append(f"{method} {path} {short(body, 200)} -> {resp.status_code}, expected {expected}: "
                         f"{resp.text[:300]}")
    for path in ("/risk", "/risk_map", "/predict"):
        for content_type, body in MEDIA_CASES:
            resp = session.post(f"{served}{path}", data=body, headers={"Content-Type": content_type}, timeout=60)
            recorder.record("POST", path, body, resp)
            if resp.status_code != 415:
                wrong.append(f"POST {path} as {content_type} -> {resp.status_code}, expected 415: {resp.text[:200]}")
    assert_clean(recorder, "edge cases", sent_before)
    assert not wrong, "\n".join(wrong)


# Requests the HTTP layer itself must answer: unparseable, badly framed or stalled. (raw bytes, expected status)
FRAMING_CASES = [
    (b"GARBAGE\r\n\r\n", 400),
    (b"POST /risk HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}", 400),
    (b"POST /risk HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"zz\r\n{}\r\n0\r\n\r\n", 400),
    (b"POST /risk HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n", 400),
    (b"POST /risk HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{", 408),
]


def test_framing_and_stalled_bodies_are_answered_in_the_error_shape(served, recorder):
    import socket
    from urllib.parse import urlparse

    url = urlparse(served)
    wrong = []
    for raw, expected in FRAMING_CASES:
        with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
            sock.sendall(raw)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        problems = [] if status == expected else [f"status {status}, expected {expected}"]
        try:
            problems += error_shape_problems(json.loads(body))
        except ValueError:
            problems.append(f"body is not JSON: {body[:120]!r}")
        if problems:
            wrong.append(f"{raw[:60]!r}: {problems}")
    assert not wrong, "\n".join(wrong)


def test_enough_requests_were_sent(recorder):
    if recorder.ran != {"schemathesis", "informed", "edge cases"}:
        pytest.skip("only meaningful after the whole file ran")
    print("\n" + recorder.report("fuzz total"))
    assert recorder.sent >= MIN_REQUESTS, recorder.report("fuzz")
    assert all(status < 500 for status in recorder.statuses)

"""One HTTP session per fetch: paced, retried, the key masked, and every answer classified.

data.go.kr answers in three shapes, whatever format was asked for:

- JSON ``{"response": {"header": {"resultCode", "resultMsg"}, "body": {...}}}`` (KHOA's newer services
  may leave out the ``response`` wrapper);
- the gateway's XML ``<OpenAPI_ServiceResponse><cmmMsgHeader><errMsg>SERVICE ERROR</errMsg>
  <returnAuthMsg>SERVICE_KEY_IS_NOT_REGISTERED_ERROR</returnAuthMsg><returnReasonCode>30</returnReasonCode>``
  for key and quota failures (the request never reached the provider);
- an XML ``<response><header><resultCode>`` when the provider ignored the JSON parameter.

Result codes are those of the portal's common table (every provider's guide repeats it, e.g. KHOA's
"오픈API 활용가이드_조위관측소 실측·예측 조위", 2025): 00 normal, 03 no data, 22 daily quota exceeded,
30 key not registered, 31 key expired, 32 IP not registered, ...
"""

from __future__ import annotations

import json
import math
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from features.errors import DataError

RESULT_MESSAGES = {
    "00": "NORMAL_SERVICE", "01": "APPLICATION_ERROR", "02": "DB_ERROR", "03": "NODATA_ERROR",
    "04": "HTTP_ERROR", "05": "SERVICETIMEOUT_ERROR", "10": "INVALID_REQUEST_PARAMETER_ERROR",
    "11": "NO_MANDATORY_REQUEST_PARAMETERS_ERROR", "12": "NO_OPENAPI_SERVICE_ERROR",
    "20": "SERVICE_ACCESS_DENIED_ERROR", "21": "TEMPORARILY_DISABLE_THE_SERVICEKEY_ERROR",
    "22": "LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR", "30": "SERVICE_KEY_IS_NOT_REGISTERED_ERROR",
    "31": "DEADLINE_HAS_EXPIRED_ERROR", "32": "UNREGISTERED_IP_ERROR", "33": "UNSIGNED_CALL_ERROR",
    "99": "UNKNOWN_ERROR",
}
NO_DATA = "03"
# Provider-side failures and the quota: worth another try after a pause. Key, parameter and service
# errors are not: the same request would fail the same way.
RETRYABLE = {"01", "02", "04", "05", "22"}


class FetchError(DataError):
    """A live fetch that failed for good: names the source, station, request and the API's code."""

    def __init__(self, message: str, *, source: str, station: str | None = None, request: str | None = None,
                 code: str | None = None):
        self.source, self.station, self.request, self.code = source, station, request, code
        where = f"{source}" + (f" station {station}" if station else "")
        tail = f" (request: {request})" if request else ""
        super().__init__(f"{where}: {message}{tail}")


class _Transient(Exception):
    """A failure worth retrying; ``code`` is the API's result code when it gave one."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


class FetchOptions(BaseSettings):
    """Pacing and retries, from ``URBAN_SAFETY_FETCH_*`` (e.g. ``URBAN_SAFETY_FETCH_MIN_INTERVAL=1``) or
    arguments. Defaults suit the portals' development quotas (1,000-10,000 calls a day per service)."""

    model_config = SettingsConfigDict(env_prefix="URBAN_SAFETY_FETCH_", extra="ignore", frozen=True)

    min_interval: float = Field(0.5, ge=0)  # s between two requests of one fetch
    retries: int = Field(4, ge=0)  # further attempts after the first
    backoff: float = Field(1.0, ge=0)  # s before the first retry; doubles each attempt
    backoff_max: float = Field(30.0, ge=0)  # s, longest pause
    timeout: float = Field(20.0, gt=0)  # s per request
    page_size: int | None = Field(None, ge=1)  # numOfRows; None = the source's own default


def normal_code(code) -> str:
    """"0", "00", "0000" and 0 are one code: two digits where the code is numeric."""
    text = str(code).strip()
    return f"{int(text):02d}" if text.isdigit() else text


@dataclass
class Session:
    """HTTP for one fetch of one source: counts requests and pages, collects notes."""

    source: str
    base_url: str
    key: str
    key_param: str  # serviceKey (data.go.kr) or authKey (KMA API hub)
    client: httpx.Client
    options: FetchOptions
    requests: int = 0
    pages: int = 0
    notes: list[str] = field(default_factory=list)
    _last: float = -math.inf

    def mask(self, text: str) -> str:
        """``text`` with the key, raw or URL-encoded, replaced by ``***``."""
        for form in {self.key, quote(self.key, safe=""), quote(self.key)}:
            if form:
                text = text.replace(form, "***")
        return text

    def describe(self, path: str, params: dict) -> str:
        shown = "&".join(f"{k}={v}" for k, v in params.items())
        return f"GET {path}?{shown}&{self.key_param}=***"

    def get(self, path: str, params: dict, *, station: str | None = None, check=None):
        """The answer to ``GET base_url + path``, retried on connection errors, HTTP 429/5xx and what
        ``check(response)`` marks transient (it returns the parsed answer or raises)."""
        request = self.describe(path, params)
        retrying = Retrying(
            stop=stop_after_attempt(self.options.retries + 1),
            wait=wait_exponential(multiplier=self.options.backoff, max=self.options.backoff_max),
            retry=retry_if_exception_type(_Transient), reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    response = self._once(path, params, station, request)
                    return check(response) if check else response
        except _Transient as exc:
            attempts = self.options.retries + 1
            raise FetchError(f"gave up after {attempts} attempts: {self.mask(str(exc))}", source=self.source,
                             station=station, request=request, code=exc.code) from None
        raise AssertionError("unreachable")  # Retrying either returned or raised

    def _once(self, path: str, params: dict, station: str | None, request: str) -> httpx.Response:
        wait = self._last + self.options.min_interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last = time.monotonic()
        self.requests += 1
        try:
            response = self.client.get(self.base_url.rstrip("/") + path, params={**params, self.key_param: self.key},
                                       timeout=self.options.timeout)
        except httpx.TransportError as exc:  # connection refused, reset, timeout
            raise _Transient(f"connection failed ({type(exc).__name__}: {exc})") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            hint = " (is the key valid for this service?)" if response.status_code in (401, 403) else ""
            raise FetchError(f"HTTP {response.status_code}{hint}: {self.mask(response.text[:200])}",
                             source=self.source, station=station, request=request,
                             code=str(response.status_code))
        return response

    def data_go_kr(self, path: str, params: dict, *, station: str | None = None) -> dict | None:
        """The ``body`` of a data.go.kr JSON answer, or None for "no data" (code 03, noted)."""
        request = self.describe(path, params)

        def check(response: httpx.Response) -> dict | None:
            code, message, body = parse_answer(response.text)
            if code == "00":
                return body
            if code == NO_DATA:
                return None
            text = f"API code {code} {message}".rstrip()
            if code in RETRYABLE:
                raise _Transient(text, code)
            raise FetchError(text, source=self.source, station=station, request=request, code=code)

        body = self.get(path, params, station=station, check=check)
        if body is None:
            self.notes.append(f"{station or self.source}: no data ({NO_DATA})")
        return body


def parse_answer(text: str) -> tuple[str, str, dict | None]:
    """(result code, message, body) of a data.go.kr answer in any of its shapes."""
    head = text.lstrip()
    if head.startswith("<"):
        try:
            root = ET.fromstring(head)
        except ET.ParseError:
            return "99", f"unreadable XML answer: {head[:120]!r}", None
        code = root.findtext(".//returnReasonCode") or root.findtext(".//resultCode") or "99"
        message = (root.findtext(".//returnAuthMsg") or root.findtext(".//resultMsg")
                   or root.findtext(".//errMsg") or "")
        code = normal_code(code)
        if code == "00":  # a normal answer, but XML: the provider ignored dataType/returnType/type
            return "99", "answered XML although JSON was asked for", None
        return code, message.strip() or RESULT_MESSAGES.get(code, ""), None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return "99", f"neither JSON nor XML: {head[:120]!r}", None
    response = doc.get("response", doc) if isinstance(doc, dict) else {}
    header = response.get("header") or {}
    code = normal_code(header.get("resultCode", "99"))
    return code, str(header.get("resultMsg") or RESULT_MESSAGES.get(code, "")).strip(), response.get("body")


def plain_key(key: str) -> str:
    """The portal shows each key twice, URL-encoded and decoded; either may be pasted. httpx encodes
    parameters itself, so an encoded key (``%2B``, ``%3D``) is decoded first to avoid encoding it twice."""
    return unquote(key) if "%" in key else key

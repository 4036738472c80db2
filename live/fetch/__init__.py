"""Live observations from the Korean open APIs, as the project's canonical frames.

``fetch(source, city)`` asks one source's API about the city's stations for a time window, pages through
the answer, and reads the items through the same loaders and contracts as ``urban-safety data import``
(``features.sources.load_files``), so a live frame and an imported file cannot differ in shape.

Sources: ``asos``, ``aws``, ``nowcast``, ``nowcast_obs`` (observed RN1 on the nowcast grid, read as a
nowcast frame), ``airkorea``, ``tide``, ``quakes`` (KMA's earthquake messages, nationwide: the domestic
ones announced in the window, in announcement order, one ``event_no`` per quake) (see
:mod:`live.fetch.sources` for each API, its parameters and item fields).

Settings (environment):

- ``URBAN_SAFETY_DATA_GO_KR_KEY``: the data.go.kr service key, for asos, nowcast, airkorea, tide and quakes
  (each service must be applied for separately on the portal; the key is the same). Either form the portal
  shows (Encoding or Decoding) works.
- ``URBAN_SAFETY_KMA_APIHUB_KEY``: the KMA API hub ``authKey``, for aws.
- ``URBAN_SAFETY_API_BASE_<SOURCE>`` (e.g. ``URBAN_SAFETY_API_BASE_ASOS``), else ``URBAN_SAFETY_API_BASE``:
  scheme and host replacing the real one (a proxy, or a replay server in tests); the API's path is kept.
- ``URBAN_SAFETY_FETCH_MIN_INTERVAL`` (s between requests, default 0.5), ``URBAN_SAFETY_FETCH_RETRIES``
  (default 4), ``URBAN_SAFETY_FETCH_BACKOFF`` (s before the first retry, doubling, default 1),
  ``URBAN_SAFETY_FETCH_BACKOFF_MAX`` (default 30), ``URBAN_SAFETY_FETCH_TIMEOUT`` (s, default 20),
  ``URBAN_SAFETY_FETCH_PAGE_SIZE`` (numOfRows; default per source): :class:`FetchOptions`.

Keys are sent to the API only: every message shows them as ``***``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd

from features.clock import KST, now_kst
from features.errors import DataError
from live.fetch.session import FetchError, FetchOptions, Session, plain_key
from live.fetch.sources import COLLECTORS, FINISHERS, PAGE_SIZES

__all__ = ["SOURCES", "FetchError", "FetchOptions", "FetchResult", "fetch"]

DEFAULT_WINDOW = timedelta(hours=3)

DATA_GO_KR = "https://apis.data.go.kr"
KMA_APIHUB = "https://apihub.kma.go.kr"
KEY_ENV = {"data.go.kr": "URBAN_SAFETY_DATA_GO_KR_KEY", "apihub": "URBAN_SAFETY_KMA_APIHUB_KEY"}


@dataclass(frozen=True)
class _Api:
    portal: str  # data.go.kr | apihub
    base_url: str
    key_param: str
    # Filtered to the window; None = keep all rows (the nowcast's hours lie ahead; the collector windows
    # quake messages by announcement time).
    time_column: str | None
    loader: str | None = None  # the canonical source read through; None = the source's own name
    in_order: bool = False  # rows keep the collector's order (quakes: announced order, the newest message last)


SOURCES: dict[str, _Api] = {
    "asos": _Api("data.go.kr", DATA_GO_KR, "serviceKey", "time"),
    "nowcast": _Api("data.go.kr", DATA_GO_KR, "serviceKey", None),
    "nowcast_obs": _Api("data.go.kr", DATA_GO_KR, "serviceKey", "valid", loader="nowcast"),
    "airkorea": _Api("data.go.kr", DATA_GO_KR, "serviceKey", "time"),
    "tide": _Api("data.go.kr", DATA_GO_KR, "serviceKey", "time"),
    "quakes": _Api("data.go.kr", DATA_GO_KR, "serviceKey", None, in_order=True),
    "aws": _Api("apihub", KMA_APIHUB, "authKey", "time"),
}


@dataclass
class FetchResult:
    """One fetch: the canonical frame (empty, with the schema's columns, when nothing came), the number of
    HTTP requests made (retries included), the pages read, and notes such as "112: no data (03)"."""

    frame: pd.DataFrame
    requests: int = 0
    pages: int = 0
    notes: list[str] = field(default_factory=list)


def kst(moment: datetime) -> datetime:
    """Naive KST: an aware time converted, a naive one taken as KST already."""
    return moment.astimezone(KST).replace(tzinfo=None) if moment.tzinfo else moment


def fetch(source: str, city, since: datetime | None = None, until: datetime | None = None, *,
          base_url: str | None = None, key: str | None = None, client: httpx.Client | None = None,
          options: FetchOptions | None = None) -> FetchResult:
    """Observations of ``source`` for the stations of ``city`` (a :class:`features.city.City`) between
    ``since`` and ``until`` (default: the last 3 h up to now, KST; aware times are converted to KST); for
    ``quakes``, the domestic messages announced in that window, nationwide.

    Raises :class:`FetchError` (a :class:`~features.errors.DataError`) for an unknown source, a missing
    key, an error answer that retrying does not cure (e.g. code 30, key not registered) or an answer the
    source's contract cannot read. Stations without data are notes, not errors.
    """
    if source not in SOURCES:
        raise FetchError(f"unknown source; known: {', '.join(sorted(SOURCES))}", source=source)
    api = SOURCES[source]
    until = kst(until) if until else now_kst()
    since = kst(since) if since else until - DEFAULT_WINDOW
    if since > until:
        raise FetchError(f"since {since:%Y-%m-%d %H:%M} is after until {until:%Y-%m-%d %H:%M}", source=source)
    options = options or FetchOptions()
    key, base_url = _key(source, api, key), base_url or _base_url(source, api)
    own = client is None
    client = client or httpx.Client(follow_redirects=True)
    try:
        session = Session(source, base_url, key, api.key_param, client, options)
        size = options.page_size or PAGE_SIZES.get(source, 100)
        pages = list(COLLECTORS[source](session, city, since, until, size))
    finally:
        if own:
            client.close()
    frame = _canonical(api.loader or source, pages, api.in_order)
    if source in FINISHERS:
        frame = FINISHERS[source](frame)
    if api.time_column and not frame.empty:
        times = frame[api.time_column]
        frame = frame[(times >= since) & (times <= until)].reset_index(drop=True)
    return FetchResult(frame, session.requests, session.pages, session.notes)


def _key(source: str, api: _Api, key: str | None) -> str:
    name = KEY_ENV[api.portal]
    key = key or os.environ.get(name, "")
    if not key.strip():
        raise FetchError(f"no API key: set {name} (the {api.portal} key)", source=source)
    return plain_key(key.strip())


def _base_url(source: str, api: _Api) -> str:
    env = os.environ
    return env.get(f"URBAN_SAFETY_API_BASE_{source.upper()}") or env.get("URBAN_SAFETY_API_BASE") or api.base_url


def _canonical(source: str, pages: list[tuple[str, list[dict]]], in_order: bool = False) -> pd.DataFrame:
    """Each page's items written as one JSON document and read by the source's loader (the import path);
    sorted by station and time, or ``in_order`` as the pages gave them (a repeated row kept last)."""
    from features.sources import load_files

    if not pages:
        return _empty(source)
    with tempfile.TemporaryDirectory(prefix=f"fetch-{source}-") as tmp:
        files = []
        for i, (label, items) in enumerate(pages):
            # The label (station, page) becomes the file name, so a contract error names the request.
            name = "".join(c if c.isalnum() else "_" for c in label)
            path = Path(tmp) / f"{i:04d}_{name}.json"
            path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
            files.append(path)
        try:
            frame = load_files(source, files)
        except DataError as exc:
            raise FetchError(f"the answer does not fit the {source} contract: {exc}", source=source) from None
    if in_order:
        return frame.drop_duplicates(keep="last").reset_index(drop=True)
    sort = [c for c in ("station_id", "station_name", "station", "nx", "ny", "issued", "valid", "time")
            if c in frame.columns]
    return frame.drop_duplicates().sort_values(sort, kind="stable").reset_index(drop=True)


def _empty(source: str) -> pd.DataFrame:
    from features.sources.canonical import SCHEMAS

    schema = SCHEMAS[source]
    return schema.validate(pd.DataFrame({name: pd.Series(dtype=col.dtype.type) for name, col in schema.columns.items()}))

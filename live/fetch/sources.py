"""What each source asks its API and how the answer's items are gathered.

Each ``collect_*`` function returns the answer's items in pages (``(label, items)``, the label naming
station and page); :mod:`live.fetch` turns them into the canonical frame through the same loaders as
``urban-safety data import``. Request parameters and item fields are those of the providers' guides:

- ``asos``: 기상청 지상(종관, ASOS) 시간자료 조회서비스 (data.go.kr 15057210), ``getWthrDataList``;
  items ``tm, stnId, ta, rn, rnQcflg, ws, wd, hm, pa, ps, dsnw, ...``.
- ``nowcast``: 기상청 단기예보 조회서비스 (data.go.kr 15084084), ``getUltraSrtFcst``: issued every hour at
  HH30, served from about HH45, six forecast hours; items ``baseDate, baseTime, category, fcstDate,
  fcstTime, fcstValue, nx, ny``, RN1 as text ("강수없음", "1mm 미만", "30.0~50.0mm", "50.0mm 이상").
- ``nowcast_obs``: the same service's ``getUltraSrtNcst`` (초단기실황): observed values on the grid at HH00,
  served from about HH10; items ``baseDate, baseTime, category, obsrValue, nx, ny``, RN1 as a number (mm
  in the hour ending at the base time). Read as the nowcast frame, ``issued`` = ``valid`` = the base time.
- ``airkorea``: 한국환경공단 에어코리아 대기오염정보 (data.go.kr 15073861),
  ``getMsrstnAcctoRltmMesureDnsty``; items ``dataTime, so2Value, coValue, o3Value, no2Value, pm10Value,
  pm25Value, ...Flag`` ("-" or a flag such as 통신장애 where not measured); hour 24 is midnight.
- ``tide``: 국립해양조사원 조위관측소 실측·예측 조위 조회 (data.go.kr 15142507, 2025),
  ``GetSurveyTideLevelApiService``: one day per request (``reqDate``), ``min`` minutes apart, at most 300
  rows a page; items ``obsvtrNm, lat, lot, obsrvnDt, bscTdlvHgt`` (observed, cm), ``tdlvHgt`` (predicted).
- ``quakes``: 기상청 지진정보 조회서비스 (data.go.kr 15000420), ``getEqkMsg``: every earthquake message
  (nationwide, not per station) announced between ``fromTmFc`` and ``toTmFc`` (YYYYMMDD; the service
  answers about the last few days); items ``fcTp`` (message type), ``tmFc`` (announced, YYYYMMDDHHMM),
  ``tmSeq`` (announcement number, monthly), ``tmEqk`` (origin time YYYYMMDDHHMMSS, KST), ``mt`` (KMA's
  ML), ``dep`` (km), ``lat, lon, loc, inT`` (max intensity), ``img, rem, stnId, cnt``. No event id: one
  quake is several messages (early warning first, information later, revised).
- ``aws``: data.go.kr's AWS service (Aws1miInfoService, 15057084) gives 1-minute data of the last two days
  to public agencies only. Hourly AWS data is on the KMA API hub: ``typ01/url/awsh.php`` (AWS 시간통계),
  plain text, not JSON: ``#`` comment lines (one naming the columns), then one whitespace-separated line per
  station; ``var=RN`` gives ``YYMMDDHHMI STN RE_SUM RE_QCM RN_DAY RN_DAY_MI RN_HR1 ...``, negative values
  (-99.x) are missing. Its key is the hub's own ``authKey``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from features.errors import DataError
from live.fetch.session import FetchError, Session
from live.store import same_events

ASOS_PATH = "/1360000/AsosHourlyInfoService/getWthrDataList"
NOWCAST_PATH = "/1360000/VilageFcstInfoService_2.0/getUltraSrtFcst"
NOWCAST_OBS_PATH = "/1360000/VilageFcstInfoService_2.0/getUltraSrtNcst"
AIRKOREA_PATH = "/B552584/ArpltnInforInqireSvc/getMsrstnAcctoRltmMesureDnsty"
TIDE_PATH = "/1192136/surveyTideLevel/GetSurveyTideLevelApiService"
QUAKES_PATH = "/1360000/EqkInfoService/getEqkMsg"
AWS_PATH = "/api/typ01/url/awsh.php"

# numOfRows per source: ASOS serves up to 999 rows a page; a nowcast issuance is 10 categories x 6 hours;
# KHOA caps pages at 300 rows; a few days of earthquake messages fit one page of 100.
PAGE_SIZES = {"asos": 999, "nowcast": 60, "nowcast_obs": 10, "airkorea": 100, "tide": 300, "quakes": 100}

# The nowcast is issued at HH30 and served from about HH45 (the KMA guide's release schedule).
NOWCAST_READY = timedelta(minutes=45)
OBSERVED_READY = timedelta(minutes=10)

# awsh.php var=RN columns when the answer does not print its header line.
AWSH_RN_COLUMNS = ("YYMMDDHHMI", "STN", "RE_SUM", "RE_QCM", "RN_DAY", "RN_DAY_MI", "RN_HR1", "RN_HR1_MI",
                   "RN_60M_MAX", "RN_60M_MAX_MI", "RN_60M_QCM", "RN_15M_MAX", "RN_15M_MAX_MI", "RN_15M_QCM")

Pages = Iterator[tuple[str, list[dict]]]


def paged(session: Session, path: str, params: dict, *, station: str, size: int) -> Pages:
    """Every page of one data.go.kr query (pageNo 1, 2, ... until totalCount items are in)."""
    page, seen = 1, 0
    while True:
        body = session.data_go_kr(path, {**params, "numOfRows": size, "pageNo": page}, station=station)
        if body is None:
            return
        items = body.get("items") or []
        items = items.get("item", []) if isinstance(items, dict) else items
        items = [items] if isinstance(items, dict) else list(items)
        session.pages += 1
        if items:
            yield f"{station} page {page}", items
        seen += len(items)
        total = int(body.get("totalCount") or 0)
        if not items or seen >= total:
            return
        page += 1


def collect_asos(session: Session, city, since: datetime, until: datetime, size: int) -> Pages:
    for station in (s for s in city.weather_stations if s.kind == "asos"):
        params = {"dataType": "JSON", "dataCd": "ASOS", "dateCd": "HR",
                  "startDt": f"{since:%Y%m%d}", "startHh": f"{since:%H}",
                  "endDt": f"{until:%Y%m%d}", "endHh": f"{until:%H}", "stnIds": station.id}
        yield from paged(session, ASOS_PATH, params, station=str(station.id), size=size)


def nowcast_issues(since: datetime, until: datetime) -> list[datetime]:
    """Base times (HH30) served by ``until`` and not before ``since``; at least the latest one."""
    ready = until - NOWCAST_READY
    latest = ready.replace(minute=30, second=0, microsecond=0)
    if ready.minute < 30:
        latest -= timedelta(hours=1)
    issues = [latest]
    while issues[-1] - timedelta(hours=1) >= since:
        issues.append(issues[-1] - timedelta(hours=1))
    return issues[::-1]


def collect_nowcast(session: Session, city, since: datetime, until: datetime, size: int) -> Pages:
    grid = sorted({(s.nx, s.ny) for s in city.weather_stations})
    for base in nowcast_issues(since, until):
        for nx, ny in grid:
            params = {"dataType": "JSON", "base_date": f"{base:%Y%m%d}", "base_time": f"{base:%H%M}",
                      "nx": nx, "ny": ny}
            yield from paged(session, NOWCAST_PATH, params, station=f"grid {nx},{ny} at {base:%H%M}", size=size)


def collect_nowcast_obs(session: Session, city, since: datetime, until: datetime, size: int) -> Pages:
    grid = sorted({(s.nx, s.ny) for s in city.weather_stations})
    latest = (until - OBSERVED_READY).replace(minute=0, second=0, microsecond=0)
    hours = hours_between(since, until - OBSERVED_READY) or [latest]
    for base in hours:
        for nx, ny in grid:
            params = {"dataType": "JSON", "base_date": f"{base:%Y%m%d}", "base_time": f"{base:%H%M}",
                      "nx": nx, "ny": ny}
            station = f"grid {nx},{ny} at {base:%H%M}"
            for label, items in paged(session, NOWCAST_OBS_PATH, params, station=station, size=size):
                yield label, [_observed_as_forecast(item) for item in items]


def _observed_as_forecast(item: dict) -> dict:
    """An observation item in the forecast's fields: the hour it covers ends at its base time."""
    hour = datetime.strptime(f"{item['baseDate']}{str(item['baseTime']).zfill(4)}", "%Y%m%d%H%M") - timedelta(hours=1)
    return {**item, "fcstDate": f"{hour:%Y%m%d}", "fcstTime": f"{hour:%H%M}", "fcstValue": item.get("obsrValue")}


def air_term(since: datetime, until: datetime) -> str:
    """dataTerm covering ``since``: the API serves the last day, month or three months."""
    span = until - since
    return "DAILY" if span <= timedelta(days=1) else "MONTH" if span <= timedelta(days=31) else "3MONTH"


def collect_airkorea(session: Session, city, since: datetime, until: datetime, size: int) -> Pages:
    for station in city.air_stations:
        params = {"returnType": "json", "stationName": station.name, "dataTerm": air_term(since, until),
                  "ver": "1.3"}
        for label, items in paged(session, AIRKOREA_PATH, params, station=station.name, size=size):
            # The per-station query answers for the station asked about without naming it in every
            # version; the loader needs the name to match the station to the city.
            yield label, [{"stationName": station.name, **item} for item in items]


def collect_tide(session: Session, city, since: datetime, until: datetime, size: int) -> Pages:
    if city.tide is None:
        raise DataError(f"tide: {city.lacks('tide')}; there is nothing to fetch")
    day = since.date()
    while day <= until.date():
        params = {"type": "json", "obsCode": city.tide.code, "reqDate": f"{day:%Y%m%d}", "min": 60}
        yield from paged(session, TIDE_PATH, params, station=f"{city.tide.code} {day:%Y-%m-%d}", size=size)
        day += timedelta(days=1)


#: Every message type (fcTp) is kept: 3 information (국내지진정보), 5 re-announcement (재통보), 11 early warning
#: (국내지진조기경보), 13 early-warning refined analysis (조기경보정밀분석), 14 quick report (지진속보), and the
#: foreign ones (2 information, 12 early warning): a quake in northern Kyushu can be under 300 km from Busan
#: (Fukuoka 2005, about 190 km), and the impact step (live/impact.py) decides by distance and shaking
#: what matters for the city, not the message type.


def announced(item: dict) -> datetime | None:
    """When a message was announced (``tmFc``, YYYYMMDDHHMM, KST, to the minute); None when unreadable."""
    try:
        return datetime.strptime(str(item.get("tmFc", "")).strip(), "%Y%m%d%H%M")
    except ValueError:
        return None


def _number(item: dict, name: str) -> int | None:
    try:
        return int(str(item.get(name, "")).strip())
    except ValueError:
        return None


def collect_quakes(session: Session, city, since: datetime, until: datetime, size: int) -> Pages:
    """Earthquake messages announced from ``since`` (its minute: ``tmFc``
    has no seconds) to ``until``, as one page in the order KMA announced them (``tmFc``, then ``tmSeq``),
    whatever the answer's order: the newest message of a quake comes last, and the store keeps the last row
    of a key in a batch, so a revision wins. Nationwide: ``city`` is not asked about.

    The window is on announcement, not origin time: an early warning announced after ``since`` for a quake
    a minute before it is news of this window, as is a revision of an older quake, and back-to-back windows
    see each message once. Raises :class:`FetchError` for a message without a readable ``tmFc``."""
    params = {"dataType": "JSON", "fromTmFc": f"{since:%Y%m%d}", "toTmFc": f"{until:%Y%m%d}"}
    station = f"nationwide {params['fromTmFc']}-{params['toTmFc']}"
    first, kept = since.replace(second=0, microsecond=0), []
    for _, items in paged(session, QUAKES_PATH, params, station=station, size=size):
        for item in items:
            when = announced(item)
            if when is None:
                raise FetchError(f"a message without its announcement time (tmFc {item.get('tmFc')!r})",
                                 source=session.source, station=station)
            if first <= when <= until:
                kept.append(item)
    kept.sort(key=lambda item: (announced(item), _number(item, "tmSeq") or 0))  # stable: ties stay in order
    if kept:
        yield f"{station} messages", kept


def hours_between(since: datetime, until: datetime) -> list[datetime]:
    """The whole hours h with since <= h <= until."""
    first = since.replace(minute=0, second=0, microsecond=0)
    if first < since:
        first += timedelta(hours=1)
    return [first + timedelta(hours=i) for i in range(int((until - first) / timedelta(hours=1)) + 1)]


def parse_awsh(text: str) -> list[dict]:
    """Rows of an awsh.php answer as {column: text}; columns from its ``# YYMMDDHHMI STN ...`` line."""
    columns, rows = AWSH_RN_COLUMNS, []
    for line in text.splitlines():
        tokens = [t for t in line.replace(",", " ").split() if t != "="]
        if not tokens:
            continue
        if tokens[0].startswith("#"):
            named = [t for t in tokens if t != "#"]
            named[0] = named[0].lstrip("#") if named else ""
            if named[:2] == ["YYMMDDHHMI", "STN"]:
                columns = tuple(named)
            continue
        if tokens[0].isdigit() and len(tokens) >= 2:
            rows.append(dict(zip(columns, tokens, strict=False)))
    return rows


def _amount(text: str | None) -> str:
    """KMA text products print -99.x (or any negative) for a missing amount."""
    try:
        return "" if text is None or float(text) < 0 else text
    except ValueError:
        return ""


def collect_aws(session: Session, city, since: datetime, until: datetime, size: int) -> Pages:
    wanted = {s.id for s in city.weather_stations if s.kind == "aws"}
    if not wanted:
        return
    for hour in hours_between(since, until):
        tm = f"{hour:%Y%m%d%H%M}"
        response = session.get(AWS_PATH, {"var": "RN", "tm": tm, "stn": 0, "help": 1}, station=f"all at {tm}")
        session.pages += 1
        rows = parse_awsh(decode(response.content))
        items = [{"tm": r["YYMMDDHHMI"], "stnId": r["STN"], "rn": _amount(r.get("RN_HR1"))}
                 for r in rows if r.get("STN", "").isdigit() and int(r["STN"]) in wanted]
        missing = sorted(wanted - {int(i["stnId"]) for i in items})
        if missing:
            session.notes.append(f"{tm}: no data for AWS {', '.join(map(str, missing))}")
        if items:
            yield f"aws {tm}", items


def decode(data: bytes) -> str:
    """KMA's text products are EUC-KR (CP949); UTF-8 is tried first."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp949", errors="replace")


COLLECTORS = {"asos": collect_asos, "nowcast": collect_nowcast, "nowcast_obs": collect_nowcast_obs,
              "airkorea": collect_airkorea, "tide": collect_tide, "aws": collect_aws, "quakes": collect_quakes}
#: What is done to a source's canonical frame once read, before the window is applied: the messages of one
#: quake share one number (the store matches them across batches the same way).
FINISHERS = {"quakes": same_events}

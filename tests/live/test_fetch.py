"""Live fetch against the replay server: canonical values, paging, retries, pacing, errors, times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
import pytest

from features.city import load_city
from live.fetch import FetchError, FetchOptions, fetch
from live.fetch.session import parse_answer
from live.fetch.sources import ASOS_PATH, AWS_PATH, NOWCAST_PATH, TIDE_PATH, nowcast_issues, parse_awsh
from tests.live.replay import FIXTURES, Answer, Replay, error, fixture

KEY = "test-key"
FAST = FetchOptions(min_interval=0.0, retries=3, backoff=0.001, backoff_max=0.002, timeout=5)
DAY = datetime(2024, 7, 1)


@pytest.fixture(scope="module")
def city():
    """Incheon cut to two ASOS, two AWS and two air stations, so each test knows every request."""
    full = load_city("incheon")
    weather = [s for s in full.weather_stations if s.id in (112, 102, 510, 511)]
    air = [s for s in full.air_stations if s.name in ("신흥", "송림")]
    return full.model_copy(update={"weather_stations": weather, "air_stations": air})


@pytest.fixture
def replay():
    with Replay(key=KEY) as server:
        yield server


def run(source, city, replay, since, until, **kw):
    kw.setdefault("options", FAST)
    kw.setdefault("key", KEY)
    return fetch(source, city, since, until, base_url=replay.url, **kw)


def test_asos_pages_through_and_reads_rain_at_the_kst_hour(city, replay):
    result = run("asos", city, replay, DAY.replace(hour=10), DAY.replace(hour=15),
                 options=FAST.model_copy(update={"page_size": 4}))
    frame = result.frame
    assert list(frame["station_id"].unique()) == [112]
    assert frame["time"].dtype == "datetime64[ns]" and frame["time"].dt.tz is None
    rain = frame.set_index("time")["rain_mm"]
    assert rain[DAY.replace(hour=13)] == 12.5
    assert rain[DAY.replace(hour=10)] == 0.0  # blank with QC flag 9: no rain recorded
    assert len(frame) == 6
    calls = [r.params for r in replay.to(ASOS_PATH) if r.params["stnIds"] == "112"]
    assert [(c["pageNo"], c["numOfRows"]) for c in calls] == [("1", "4"), ("2", "4")]
    assert calls[0] | {"serviceKey": KEY} == calls[0]  # the key is sent
    assert (calls[0]["startDt"], calls[0]["startHh"], calls[0]["endHh"]) == ("20240701", "10", "15")
    assert result.pages == 2 and result.requests == 3  # 112 twice, 102 once
    assert result.notes == ["102: no data (03)"]


def test_nowcast_rn1_text_becomes_mm_valid_at_the_end_of_the_hour(city, replay):
    until = DAY.replace(hour=13, minute=20)  # the 12:30 issue is served from 13:15
    result = run("nowcast", city, replay, until - timedelta(hours=1), until)
    frame = result.frame.set_index("valid")
    assert set(result.frame["issued"]) == {DAY.replace(hour=13)}  # the 12:30 issue, an input from 13:00
    assert (result.frame[["nx", "ny"]].drop_duplicates().values.tolist()) == [[55, 124]]
    rain = frame["rain_mm"]
    assert rain[DAY.replace(hour=14)] == 0.0  # 강수없음, forecast hour 13:00-14:00
    assert rain[DAY.replace(hour=15)] == 0.5  # 1mm 미만
    assert rain[DAY.replace(hour=16)] == 3.5
    assert rain[DAY.replace(hour=17)] == 40.0  # 30.0~50.0mm
    assert rain[DAY.replace(hour=18)] == 50.0  # 50.0mm 이상
    asked = {(r.params["nx"], r.params["ny"], r.params["base_time"]) for r in replay.to(NOWCAST_PATH)}
    assert asked == {("55", "124", "1230"), ("21", "135", "1230"), ("51", "125", "1230"), ("56", "125", "1230")}
    assert len(result.notes) == 3 and all("no data (03)" in n for n in result.notes)


def test_nowcast_issues_follow_the_release_schedule():
    assert nowcast_issues(DAY.replace(hour=11), DAY.replace(hour=13, minute=14)) == [
        DAY.replace(hour=11, minute=30)]  # 12:30 not served before 12:30 + 45 min
    assert nowcast_issues(DAY.replace(hour=11), DAY.replace(hour=13, minute=15)) == [
        DAY.replace(hour=11, minute=30), DAY.replace(hour=12, minute=30)]


def test_retries_after_500_and_quota_then_succeeds(city, replay):
    replay.queue(ASOS_PATH, error(500), fixture("gateway_22.xml"))
    result = run("asos", city, replay, DAY.replace(hour=10), DAY.replace(hour=15))
    assert len(result.frame) == 6
    assert result.requests == 4  # 500, quota, answer for 112; 102
    assert [r.params["stnIds"] for r in replay.to(ASOS_PATH)] == ["112", "112", "112", "102"]


def test_quota_that_persists_is_an_error_naming_the_code(city, replay):
    replay.queue(ASOS_PATH, *[fixture("gateway_22.xml")] * 4)
    with pytest.raises(FetchError) as caught:
        run("asos", city, replay, DAY.replace(hour=10), DAY.replace(hour=15))
    assert caught.value.code == "22" and "LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR" in str(caught.value)
    assert len(replay.requests) == 4  # the first try and three retries


def test_unregistered_key_fails_at_once_without_showing_the_key(city, replay):
    secret = "Wr0ng+Key/abc=="
    with pytest.raises(FetchError) as caught:
        run("asos", city, replay, DAY.replace(hour=10), DAY.replace(hour=15), key=secret)
    message = str(caught.value)
    assert caught.value.code == "30" and "SERVICE_KEY_IS_NOT_REGISTERED_ERROR" in message
    assert "asos station 112" in message and "getWthrDataList" in message and "serviceKey=***" in message
    assert secret not in message and "Wr0ng" not in message
    assert len(replay.requests) == 1  # not retried


def test_encoded_key_is_sent_decoded(city, replay):
    replay.key = "a+b/c=="
    run("asos", city, replay, DAY.replace(hour=10), DAY.replace(hour=15), key="a%2Bb%2Fc%3D%3D")
    assert replay.requests[0].params["serviceKey"] == "a+b/c=="


def test_requests_are_paced(city, replay):
    run("asos", city, replay, DAY.replace(hour=10), DAY.replace(hour=15),
        options=FAST.model_copy(update={"min_interval": 0.2, "page_size": 2}))
    times = [r.at for r in replay.requests]
    # Measured on arrival at the server, so allow for scheduling jitter on a busy machine.
    assert len(times) == 4 and min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.15


def test_connection_failure_is_retried_then_reported(city):
    with pytest.raises(FetchError) as caught:
        fetch("asos", city, DAY, DAY + timedelta(hours=1), base_url="http://127.0.0.1:9", key=KEY,
              options=FAST)
    assert "gave up after 4 attempts" in str(caught.value) and "connection failed" in str(caught.value)
    assert KEY not in str(caught.value)


def test_aware_times_are_converted_to_kst(city, replay):
    utc = UTC
    result = run("asos", city, replay, datetime(2024, 7, 1, 1, tzinfo=utc), datetime(2024, 7, 1, 6, tzinfo=utc))
    first = replay.to(ASOS_PATH)[0].params
    assert (first["startHh"], first["endHh"]) == ("10", "15")
    assert result.frame["time"].min() == DAY.replace(hour=10)


def test_airkorea_hour_24_is_midnight_and_dashes_are_missing(city, replay):
    result = run("airkorea", city, replay, DAY - timedelta(hours=2), DAY + timedelta(hours=2))
    frame = result.frame.set_index("time")
    assert list(frame.index) == [DAY - timedelta(hours=2), DAY - timedelta(hours=1), DAY,
                                 DAY + timedelta(hours=1), DAY + timedelta(hours=2)]
    assert frame.loc[DAY, "pm10"] == 31 and frame.loc[DAY, "pm25"] == 17
    assert pd.isna(frame.loc[DAY - timedelta(hours=1), "pm25"])  # "-" with flag 통신장애
    assert set(frame["station_name"]) == {"신흥"}
    params = replay.requests[0].params
    assert (params["stationName"], params["dataTerm"], params["returnType"]) == ("신흥", "DAILY", "json")
    assert result.notes == ["송림: no data (03)"]


def test_tide_reads_observed_and_predicted_levels_in_the_window(city, replay):
    result = run("tide", city, replay, DAY.replace(hour=5), DAY.replace(hour=8))
    frame = result.frame.set_index("time")
    assert list(frame.index) == [DAY.replace(hour=h) for h in (5, 6, 7, 8)]
    assert frame.loc[DAY.replace(hour=5), "tide_pred_cm"] == 843.0
    assert frame.loc[DAY.replace(hour=5), "tide_cm"] == 861.0
    assert pd.isna(frame.loc[DAY.replace(hour=7), "tide_cm"])  # null observation
    params = replay.to(TIDE_PATH)[0].params
    assert (params["obsCode"], params["reqDate"], params["min"], params["type"]) == ("DT_0001", "20240701", "60",
                                                                                     "json")


def test_aws_hourly_text_keeps_the_city_stations(city, replay):
    result = run("aws", city, replay, DAY.replace(hour=13), DAY.replace(hour=14), key="hub-key")
    frame = result.frame
    assert sorted(frame["station_id"].unique()) == [510, 511]
    rain = frame.set_index(["station_id", "time"])["rain_mm"]
    assert rain[(510, DAY.replace(hour=13))] == 12.0
    assert pd.isna(rain[(511, DAY.replace(hour=13))])  # -99.0: missing
    assert rain[(511, DAY.replace(hour=14))] == 4.0
    assert [r.params["tm"] for r in replay.to(AWS_PATH)] == ["202407011300", "202407011400"]
    assert replay.requests[0].params["authKey"] == "hub-key"


def test_aws_wrong_hub_key_is_an_error(city, replay):
    with pytest.raises(FetchError) as caught:
        run("aws", city, replay, DAY.replace(hour=13), DAY.replace(hour=13), key="nope")
    assert caught.value.code == "403" and "nope" not in str(caught.value)


def test_awsh_parser_reads_the_header_line_and_skips_comments():
    text = "#START7777\n#  YYMMDDHHMI STN RN_HR1\n202407011300 510 1.5 =\n#7777END\n"
    assert parse_awsh(text) == [{"YYMMDDHHMI": "202407011300", "STN": "510", "RN_HR1": "1.5"}]


def test_missing_key_names_the_variable(city, monkeypatch):
    monkeypatch.delenv("URBAN_SAFETY_DATA_GO_KR_KEY", raising=False)
    with pytest.raises(FetchError, match="URBAN_SAFETY_DATA_GO_KR_KEY"):
        fetch("tide", city, DAY, DAY)


def test_base_url_and_key_from_the_environment(city, replay, monkeypatch):
    monkeypatch.setenv("URBAN_SAFETY_API_BASE_TIDE", replay.url)
    monkeypatch.setenv("URBAN_SAFETY_DATA_GO_KR_KEY", KEY)
    with httpx.Client() as client:
        result = fetch("tide", city, DAY.replace(hour=5), DAY.replace(hour=6), client=client, options=FAST)
    assert len(result.frame) == 2


def test_nothing_fetched_is_an_empty_canonical_frame(city, replay):
    result = run("tide", city, replay, datetime(2024, 8, 1), datetime(2024, 8, 1, 3))
    assert result.frame.empty and list(result.frame.columns) == ["station", "time", "tide_cm", "tide_pred_cm"]
    assert result.notes == ["DT_0001 2024-08-01: no data (03)"]


def test_unknown_source(city):
    with pytest.raises(FetchError, match="unknown source"):
        fetch("radar", city, key=KEY)


def test_an_answer_the_contract_cannot_read_names_the_request(city, replay):
    bad = b'{"response":{"header":{"resultCode":"00"},"body":{"items":{"item":[{"stnId":"112","tm":"x","rn":"1"}]},"totalCount":1}}}'
    replay.queue(ASOS_PATH, Answer(200, bad))
    with pytest.raises(FetchError, match="112_page_1"):
        run("asos", city, replay, DAY.replace(hour=10), DAY.replace(hour=15))


def test_observed_rn1_reads_as_a_nowcast_valid_at_the_base_time(city, replay):
    result = run("nowcast_obs", city, replay, DAY.replace(hour=13), DAY.replace(hour=13, minute=12))
    frame = result.frame
    assert frame[["issued", "valid", "nx", "ny", "rain_mm"]].values.tolist() == [
        [DAY.replace(hour=13), DAY.replace(hour=13), 55, 124, 12.5]]
    assert {r.params["base_time"] for r in replay.requests} == {"1300"}


@pytest.mark.parametrize(("text", "code"), [
    ('{"header": {"resultCode": "0", "resultMsg": "NORMAL_SERVICE"}, "body": {"items": []}}', "00"),
    ('{"response": {"header": {"resultCode": "03", "resultMsg": "NO_DATA"}}}', "03"),
    ("<response><header><resultCode>0000</resultCode><resultMsg>OK</resultMsg></header></response>", "99"),
    ((FIXTURES / "gateway_30.xml").read_text(), "30"),
    ("<html>Bad Gateway</html>", "99"),
])
def test_answers_in_every_shape_are_classified(text, code):
    assert parse_answer(text)[0] == code


def test_fetch_command_appends_to_the_store_and_reports(replay, tmp_path):
    """`urban-safety fetch` against the replay server: rows land in the store, once however often it runs."""
    import os
    import subprocess
    import sys

    from live.store import ObservationStore
    from tests.serving.conftest import ROOT

    env = {**os.environ, "URBAN_SAFETY_DATA_DIR": str(tmp_path), "URBAN_SAFETY_API_BASE": replay.url,
           "URBAN_SAFETY_DATA_GO_KR_KEY": KEY, "URBAN_SAFETY_FETCH_MIN_INTERVAL": "0",
           "URBAN_SAFETY_FETCH_BACKOFF": "0.001"}
    cmd = [sys.executable, "-m", "urban_safety.cli", "fetch", "--source", "asos", "--since", "2024-07-01T10:00",
           "--until", "2024-07-01T15:00"]
    first = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "6 accepted" in first.stdout, first.stdout
    again = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "0 accepted, 6 duplicate" in again.stdout, again.stdout
    held = ObservationStore(f"sqlite:///{tmp_path / 'live.db'}").frame("asos")
    assert held.set_index("time").loc["2024-07-01 13:00", "rain_mm"] == 12.5
    assert set(held["station_id"]) == {112}

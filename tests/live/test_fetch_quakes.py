"""`fetch("quakes")` against the replay of KMA's getEqkMsg: Pohang 2017 as an early warning (ML 5.5, 14:29:31,
announced 14:29; no depth or intensity, as in 2017) and the information that revised it (ML 5.4, 14:29:32,
depth 9 km, announced 14:41), then a foreign message announced at 14:58; the recording lists the newest first.

The frame keeps every message in announcement order, the two of Pohang under the first one's event number; the
store keeps the last row of a key in a batch, so the event is held as the information says: ML 5.4, depth
9 km, origin 14:29:32 (the analyst's solution, not the early warning's automatic 14:29:31), under
``KMA-20171115142931`` (the id the early warning gave it, which an earlier fetch may already hold).
"""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest
from typer.testing import CliRunner

from live.fetch import FetchError, FetchOptions, fetch
from live.fetch.sources import QUAKES_PATH
from live.store import same_events
from tests.conftest import copy_of_testville
from tests.live.replay import FIXTURES, Answer, Replay

KEY = "test-key"
FAST = FetchOptions(min_interval=0.0, retries=3, backoff=0.001, backoff_max=0.002, timeout=5)
DAY = datetime(2017, 11, 15)
POHANG = "KMA-20171115142931"


@pytest.fixture
def replay():
    with Replay(key=KEY) as server:
        yield server


def run(replay, since, until, **kw):
    kw.setdefault("options", FAST)
    kw.setdefault("key", KEY)
    return fetch("quakes", None, since, until, base_url=replay.url, **kw)  # nationwide: no city asked


def test_one_event_in_announcement_order_the_revision_last(replay):
    result = run(replay, DAY.replace(hour=14), DAY.replace(hour=15))
    frame = result.frame[result.frame["lat"].between(33, 39)]  # the foreign message is another quake
    assert frame["time"].dtype == "datetime64[ns]" and frame["time"].dt.tz is None  # naive KST
    assert list(frame["event_no"]) == [POHANG, POHANG]  # one id for the quake's two messages
    assert list(frame["magnitude"]) == [5.5, 5.4]  # early warning first, information last
    last = frame.iloc[-1]
    assert last["time"] == DAY.replace(hour=14, minute=29, second=32)
    assert (last["depth_km"], last["lat"], last["lon"], last["magnitude_type"]) == (9.0, 36.12, 129.36, "ML")
    assert last["location"] == "경북 포항시 북구 북쪽 9km 지역" and last["max_intensity"].startswith("최대진도 Ⅵ(경북)")
    assert pd.isna(frame.iloc[0]["depth_km"])  # the 2017 early warning stated no depth
    assert frame.drop_duplicates("event_no", keep="last")["magnitude"].tolist() == [5.4]  # what the store keeps


def test_pages_the_query_and_sends_key_dates_and_json(replay):
    result = run(replay, DAY.replace(hour=14), DAY.replace(hour=15), options=FAST.model_copy(update={"page_size": 1}))
    calls = [r.params for r in replay.to(QUAKES_PATH)]
    assert [(c["pageNo"], c["numOfRows"]) for c in calls] == [("1", "1"), ("2", "1"), ("3", "1")]
    assert all(c["serviceKey"] == KEY and c["dataType"] == "JSON" for c in calls)
    assert (calls[0]["fromTmFc"], calls[0]["toTmFc"]) == ("20171115", "20171115")
    assert result.requests == 3 and result.pages == 3
    assert list(result.frame["magnitude"]) == [5.5, 5.4, 5.3]  # sorted across pages, not per page


def test_the_date_range_spans_the_window(replay):
    result = run(replay, datetime(2017, 11, 14, 23), DAY.replace(hour=15))
    params = replay.to(QUAKES_PATH)[0].params
    assert (params["fromTmFc"], params["toTmFc"]) == ("20171114", "20171115")
    assert len(result.frame) == 3


def test_a_foreign_message_is_kept_for_the_impact_step_to_judge(replay):
    recorded = json.loads((FIXTURES / "kma_eqk_pohang2017.json").read_text(encoding="utf-8"))
    foreign = [i for i in recorded["response"]["body"]["items"]["item"] if i["fcTp"] == 2]
    assert [i["tmFc"] for i in foreign] == [201711151458]
    frame = run(replay, DAY.replace(hour=14), DAY.replace(hour=15)).frame
    kept = frame[frame["magnitude"] == foreign[0]["mt"]]
    assert len(kept) == 1 and kept["event_no"].iloc[0] != POHANG  # its own event, judged by distance later


def test_the_window_is_on_announcement_time(replay):
    # The information announced at 14:41 of a quake at 14:29:32, before `since`: kept; the early warning
    # announced at 14:29: left to the window that holds it. Alone in its batch, the information names the
    # quake by its own origin time; the store matches it to the held early warning (live.store).
    late = run(replay, DAY.replace(hour=14, minute=40), DAY.replace(hour=14, minute=50)).frame
    assert late[["event_no", "magnitude"]].values.tolist() == [["KMA-20171115142932", 5.4]]
    early = run(replay, DAY.replace(hour=14), DAY.replace(hour=14, minute=35)).frame
    assert early[["event_no", "magnitude"]].values.tolist() == [[POHANG, 5.5]]
    # tmFc has minutes only: a window from 14:29:45 still holds the message announced at 14:29.
    edge = run(replay, DAY.replace(hour=14, minute=29, second=45), DAY.replace(hour=14, minute=35)).frame
    assert list(edge["magnitude"]) == [5.5]


GYEONGJU = {"cnt": 1, "img": "", "inT": "", "lat": 35.76, "loc": "경북 경주시 남남서쪽 8km 지역", "lon": 129.19,
            "rem": "", "stnId": 108}


def queue_answer(replay, items: list[dict]) -> None:
    body = {"response": {"header": {"resultCode": "00", "resultMsg": "NORMAL_SERVICE"},
                         "body": {"dataType": "JSON", "items": {"item": items}, "pageNo": 1, "numOfRows": 100,
                                  "totalCount": len(items)}}}
    replay.queue(QUAKES_PATH, Answer(200, json.dumps(body, ensure_ascii=False).encode()))


def test_messages_of_one_minute_follow_their_sequence_number(replay):
    item = {**GYEONGJU, "fcTp": 14, "tmEqk": 20160912203254, "tmFc": 201609122033}
    queue_answer(replay, [{**item, "mt": 5.8, "tmSeq": 12}, {**item, "mt": 5.1, "tmSeq": 11}])
    frame = run(replay, datetime(2016, 9, 12, 20), datetime(2016, 9, 12, 21)).frame
    assert list(frame["magnitude"]) == [5.1, 5.8]  # tmSeq 11 then 12, whatever the answer's order


def test_a_revision_that_moves_the_origin_earlier_still_comes_last(replay):
    # Announcement order, not origin time: sorted by time, the early warning would come last and win.
    queue_answer(replay, [
        {**GYEONGJU, "fcTp": 11, "mt": 5.1, "tmEqk": 20160912203256, "tmFc": 201609122033, "tmSeq": 11},
        {**GYEONGJU, "fcTp": 3, "mt": 5.8, "tmEqk": 20160912203254, "tmFc": 201609122041, "tmSeq": 12, "dep": 15},
    ][::-1])
    frame = run(replay, datetime(2016, 9, 12, 20), datetime(2016, 9, 12, 21)).frame
    assert frame[["event_no", "magnitude"]].values.tolist() == [["KMA-20160912203256", 5.1],
                                                                 ["KMA-20160912203256", 5.8]]


def test_a_message_without_its_announcement_time_is_an_error(replay):
    queue_answer(replay, [{**GYEONGJU, "fcTp": 3, "mt": 5.8, "tmEqk": 20160912203254, "tmFc": "", "tmSeq": 12}])
    with pytest.raises(FetchError, match=r"nationwide 20160912-20160912: .*announcement time \(tmFc ''\)"):
        run(replay, datetime(2016, 9, 12, 20), datetime(2016, 9, 12, 21))


def test_a_wrong_key_is_an_error_naming_code_30(replay):
    with pytest.raises(FetchError) as caught:
        run(replay, DAY.replace(hour=14), DAY.replace(hour=15), key="Wr0ngKey")
    assert caught.value.code == "30" and "SERVICE_KEY_IS_NOT_REGISTERED_ERROR" in str(caught.value)
    assert "getEqkMsg" in str(caught.value) and "Wr0ngKey" not in str(caught.value)
    assert len(replay.requests) == 1  # not retried


def test_a_day_without_messages_is_an_empty_canonical_frame(replay):
    result = run(replay, datetime(2017, 11, 16, 9), datetime(2017, 11, 16, 12))
    assert result.frame.empty and "event_no" in result.frame.columns
    assert result.notes == ["nationwide 20171116-20171116: no data (03)"]


def _quakes(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["event_no", "time", "lat", "lon", "magnitude"]).astype(
        {"time": "datetime64[ns]"})


def test_messages_of_one_quake_share_the_first_number():
    frame = _quakes([
        ("KMA-20171115142931", "2017-11-15 14:29:31", 36.10, 129.37, 5.5),  # early warning
        ("KMA-20171115142932", "2017-11-15 14:29:32", 36.12, 129.36, 5.4),  # its information: 1 s, 2.4 km
        ("KMA-20171115143112", "2017-11-15 14:31:12", 36.11, 129.37, 3.0),  # 101 s later: an aftershock
        ("KMA-20171115142940", "2017-11-15 14:29:40", 37.50, 126.90, 2.1),  # 9 s later in Seoul: another quake
        ("KMA-20171115143130", "2017-11-15 14:31:30", 36.11, 129.36, 3.1),  # the aftershock revised: 18 s
        ("2017-0042", "2017-11-15 14:29:33", 36.12, 129.36, 5.4),  # a number of its own is kept
        ("KMA-20171115142935", "2017-11-15 14:29:35", 36.12, 129.36, 5.4),  # takes the nearest in time
    
    ])
    shared = same_events(frame)
    assert list(shared["event_no"]) == [POHANG, POHANG, "KMA-20171115143112", "KMA-20171115142940",
                                        "KMA-20171115143112", "2017-0042", "2017-0042"]
    assert shared.drop(columns="event_no").equals(frame.drop(columns="event_no"))
    assert frame["event_no"].iloc[1] == "KMA-20171115142932"  # the input is not changed


def test_a_message_near_two_quakes_takes_the_nearer_in_time():
    frame = _quakes([
        ("KMA-20240101000000", "2024-01-01 00:00:00", 36.0, 129.0, 3.0),
        ("KMA-20240101000110", "2024-01-01 00:01:10", 36.0, 129.0, 3.2),  # 70 s later: another quake
        ("KMA-20240101000055", "2024-01-01 00:00:55", 36.0, 129.1, 3.3),  # 55 s after the first, 15 s before it
    ])
    assert list(same_events(frame)["event_no"]) == ["KMA-20240101000000", "KMA-20240101000110",
                                                            "KMA-20240101000110"]
    alone = _quakes([("KMA-20240101000000", "2024-01-01 00:00:00", 36.0, 129.0, 3.0)])
    assert same_events(alone).equals(alone)


@pytest.fixture
def just_after_pohang():
    """The process's clock at 2017-11-15 15:05 KST, so the store's time rules see a fresh quake."""
    from features.clock import Clock, set_clock

    set_clock(Clock.from_env({}).at(DAY.replace(hour=15, minute=5)))
    yield
    set_clock(None)


def test_fetch_command_puts_the_quake_in_the_store(replay, tmp_path, just_after_pohang):
    """`urban-safety fetch --source quakes` in-process: one event, as the information revised it."""
    from live.store import ObservationStore
    from urban_safety.cli import app

    city = copy_of_testville(tmp_path / "city")
    url = f"sqlite:///{tmp_path / 'data' / 'live.db'}"
    env = {"URBAN_SAFETY_CITY": str(city), "URBAN_SAFETY_DATA_DIR": str(tmp_path / "data"),
           "URBAN_SAFETY_STORE_URL": url, "URBAN_SAFETY_API_BASE": replay.url, "URBAN_SAFETY_DATA_GO_KR_KEY": KEY,
           "URBAN_SAFETY_FETCH_MIN_INTERVAL": "0", "URBAN_SAFETY_FETCH_BACKOFF": "0.001", "COLUMNS": "200"}
    args = ["fetch", "--source", "quakes", "--since", "2017-11-15T14:00", "--until", "2017-11-15T15:00"]
    first = CliRunner().invoke(app, args, env=env)
    assert first.exit_code == 0, first.output
    assert "2 accepted" in first.output, first.output  # Pohang and the foreign quake
    again = CliRunner().invoke(app, args, env=env)
    assert again.exit_code == 0 and "0 accepted" in again.output, again.output
    held = ObservationStore(url).frame("quakes").set_index("event_no")
    assert held.loc[POHANG, ["magnitude", "depth_km"]].tolist() == [5.4, 9.0]
    assert held.loc[POHANG, "time"] == DAY.replace(hour=14, minute=29, second=32)

"""The observation store and the ways in, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import json
import os
import threading

import pandas as pd
import pytest

from features.errors import DataError
from live.ingest import Inbox, ingest_rows, read_batch
from live.store import ObservationStore, merge_rows
from urban_safety.settings import Settings

CITY = Settings().city_config  # Incheon: ASOS 112 and 102, AWS 510.., its air stations and tide gauge


@pytest.fixture
def store(store_url):
    return ObservationStore(store_url)


def test_new_rows_duplicates_and_corrections(store):
    first = ingest_rows(store, "asos", [
        {"station_id": 112, "time": "2024-07-17 11:00", "rain_mm": 80.0, "temp_c": 24.0},
        {"station_id": 112, "time": "2024-07-17 12:00", "rain_mm": 10.0},
    ], CITY)
    assert (first.accepted, first.duplicate, first.refused) == (2, 0, [])
    # The same rows again: nothing new. A row leaving temp_c out keeps the stored 24.0.
    again = ingest_rows(store, "asos", [{"station_id": 112, "time": "2024-07-17 11:00", "rain_mm": 80.0}], CITY)
    assert (again.accepted, again.duplicate) == (0, 1)
    # A correction: the newest value wins, the field it leaves out stays.
    fixed = ingest_rows(store, "asos", [{"station_id": 112, "time": "2024-07-17 11:00", "rain_mm": 85.5}], CITY)
    assert (fixed.accepted, fixed.duplicate) == (1, 0)
    held = store.frame("asos").set_index("time")
    assert held.loc["2024-07-17 11:00", "rain_mm"] == 85.5
    assert held.loc["2024-07-17 11:00", "temp_c"] == 24.0
    assert pd.isna(held.loc["2024-07-17 12:00", "temp_c"])  # a new time: what it leaves out is missing
    assert len(held) == 2


def test_api_shape_and_canonical_rows_land_alike(store):
    api = {"response": {"header": {"resultCode": "00", "resultMsg": "NORMAL_SERVICE"}, "body": {
        "dataType": "JSON", "items": {"item": [
            {"tm": "2024-07-17 13:00", "stnId": "112", "stnNm": "인천", "ta": "23.1", "rn": "31.5", "ws": "4.2",
             "wd": "200", "hm": "97", "ps": "1003.1", "dsnw": ""}]},
        "pageNo": 1, "numOfRows": 10, "totalCount": 1}}}
    result = ingest_rows(store, "asos", api, CITY)
    assert result.accepted == 1
    row = store.frame("asos").iloc[0]
    assert (row["station_id"], row["rain_mm"], row["pressure_hpa"]) == (112, 31.5, 1003.1)
    assert row["time"] == pd.Timestamp("2024-07-17 13:00")


def test_bad_rows_are_refused_by_number_and_the_rest_land(store):
    result = ingest_rows(store, "asos", [
        {"station_id": 112, "time": "2024-07-17 11:00", "rain_mm": 80.0},
        {"station_id": 112, "time": "2024-07-17 12:00", "rain_mm": -5},
        {"station_id": 999, "time": "2024-07-17 12:00", "rain_mm": 1.0},
        {"station_id": 112, "time": "2024-07-17 14:00", "rain_mm": "lots"},
        {"station_id": 102, "time": "2024-07-17 14:00", "rain_mm": 2.0},
    ], CITY)
    assert result.accepted == 2
    refused = {r["row"]: r for r in result.refused}
    assert sorted(refused) == [2, 3, 4]
    assert "between 0 and 300" in refused[2]["reason"] and refused[2]["field"] == "rain_mm"
    assert "999" in refused[3]["reason"] and "Incheon" in refused[3]["reason"]
    assert "number" in refused[4]["reason"]
    assert sorted(store.frame("asos")["station_id"].tolist()) == [102, 112]


def test_a_batch_no_row_can_fix_is_refused_whole(store):
    with pytest.raises(DataError, match="tm|time"):
        ingest_rows(store, "asos", [{"station_id": 112, "rain_mm": 1.0}], CITY)
    with pytest.raises(DataError, match="not an observation the store holds"):
        read_batch("buildings", "x.json", CITY)
    assert store.version() == 0 and store.frame("asos").empty


def test_changes_give_exactly_the_rows_that_moved(store):
    ingest_rows(store, "asos", [{"station_id": 112, "time": f"2024-07-17 {h:02d}:00", "rain_mm": 1.0}
                                for h in range(1, 6)], CITY)
    v1 = store.version()
    ingest_rows(store, "asos", [{"station_id": 112, "time": "2024-07-17 03:00", "rain_mm": 1.0},  # duplicate
                                {"station_id": 112, "time": "2024-07-17 04:00", "rain_mm": 9.0}], CITY)
    ingest_rows(store, "tide", [{"station": CITY.tide.station, "time": "2024-07-17 04:00", "tide_cm": 700}], CITY)
    version, changes = store.changes(v1)
    assert version == store.version() > v1
    by_source = {c.source: c for c in changes}
    assert set(by_source) == {"asos", "tide"}
    assert by_source["asos"].rows["rain_mm"].tolist() == [9.0]
    assert by_source["asos"].first == pd.Timestamp("2024-07-17 04:00")
    assert store.changes(version) == (version, [])
    merged = merge_rows(store.frame("asos").iloc[:0], by_source["asos"].rows, "asos")
    assert len(merged) == 1


def test_concurrent_writers_lose_nothing(store):
    errors = []

    def write(station, hours):
        try:
            for h in hours:
                ingest_rows(store, "asos", [{"station_id": station, "time": f"2024-07-{h // 24 + 1:02d} {h % 24:02d}:00",
                                             "rain_mm": float(h % 7)}], CITY)
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s, range(0, 30))) for s in (112, 102)]
    threads += [threading.Thread(target=write, args=(112, range(15, 45)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    held = store.frame("asos")
    assert len(held) == 45 + 30  # 112: hours 0-44; 102: hours 0-29
    assert not held.duplicated(["station_id", "time"]).any()
    log = store.batches(500)
    assert log["id"].is_unique and len(log) == 90


def test_retention_drops_old_observations(store):
    ingest_rows(store, "asos", [{"station_id": 112, "time": t, "rain_mm": 1.0}
                                for t in ("2024-01-01 01:00", "2024-07-01 01:00", "2024-07-17 01:00")], CITY)
    assert store.retain(days=10) == 2
    assert store.frame("asos")["time"].tolist() == [pd.Timestamp("2024-07-17 01:00")]


def test_inbox_takes_each_file_once_and_explains_failures(store, tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "asos").mkdir(parents=True)
    good = inbox / "asos" / "OBS_ASOS_TIM_good.csv"
    good.write_text("지점,일시,강수량(mm)\n112,2024-07-17 11:00,80.0\n112,2024-07-17 12:00,-1\n", encoding="utf-8")
    bad = inbox / "asos" / "OBS_ASOS_TIM_bad.csv"
    bad.write_text("지점,강수량(mm)\n112,1.0\n", encoding="utf-8")
    for f in (good, bad):
        os.utime(f, (0, 0))  # settled long ago
    box = Inbox(inbox, store, CITY)
    taken = {p.name: (result, reason) for p, result, reason in box.run_once()}
    assert taken["OBS_ASOS_TIM_good.csv"][0].accepted == 1
    assert (inbox / "done" / "asos" / "OBS_ASOS_TIM_good.csv").exists()
    refusals = json.loads((inbox / "done" / "asos" / "OBS_ASOS_TIM_good.csv.refused.json").read_text())
    assert refusals[0]["row"] == 3  # the file's line
    assert (inbox / "failed" / "asos" / "OBS_ASOS_TIM_bad.csv").exists()
    assert "일시" in (inbox / "failed" / "asos" / "OBS_ASOS_TIM_bad.csv.reason.txt").read_text()
    assert box.run_once() == []  # nothing is taken twice
    assert len(store.frame("asos")) == 1


def test_a_file_left_mid_ingest_is_taken_again_without_double_counting(store, tmp_path):
    inbox = Inbox(tmp_path / "inbox", store, CITY)
    # A watcher killed after claiming the file (and perhaps after its transaction committed).
    claimed = tmp_path / "inbox" / ".processing" / "asos__OBS_ASOS_TIM_1.csv"
    claimed.write_text("지점,일시,강수량(mm)\n112,2024-07-17 11:00,80.0\n", encoding="utf-8")
    ingest_rows(store, "asos", [{"station_id": 112, "time": "2024-07-17 11:00", "rain_mm": 80.0}], CITY)
    [(path, result, reason)] = inbox.run_once()
    assert reason is None and result.duplicate == 1 and result.accepted == 0
    assert path == tmp_path / "inbox" / "done" / "asos" / "OBS_ASOS_TIM_1.csv"
    assert len(store.frame("asos")) == 1


def test_a_store_of_another_grid_is_refused_saying_to_start_afresh(tmp_path, monkeypatch):
    """Maps and alerts name cells: a store made on another grid (another cell size, or before the city's real
    outline, when it recorded no grid) is refused, never mixed."""
    import sqlalchemy as sa

    from live.cycle import CYCLE_MAPS
    from live.db import STORE_GRID, database, writing

    monkeypatch.delenv("URBAN_SAFETY_STORE_URL", raising=False)
    first = Settings(data_dir=tmp_path / "data", grid_m=3000)
    store = ObservationStore.for_settings(first)  # an empty store takes the grid it is opened with
    ObservationStore.for_settings(first)  # ...and opens again on it
    with pytest.raises(DataError, match=r"holds maps and alerts of ICN-3000:.*not of the configured grid "
                                        r"ICN-2000:.*Start afresh"):
        ObservationStore.for_settings(Settings(data_dir=tmp_path / "data", grid_m=2000))
    # a store from before grids were recorded, with a cycle's map in it
    with writing(database(store.url)) as conn:
        conn.execute(sa.delete(STORE_GRID))
        conn.execute(CYCLE_MAPS.insert().values(cycle=1, domain="flood", lead_hours=1, at=pd.Timestamp("2026-06-01"),
                                                levels="{}", geojson=b""))
    with pytest.raises(DataError, match=r"live\.db holds maps and alerts of a grid from before .*Start afresh"):
        ObservationStore.for_settings(first)

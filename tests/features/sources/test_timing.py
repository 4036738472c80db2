"""Time rules by source: finer rows made whole hours (never averaged with the hour), times the clock refuses,
KMA's missing sentinels, the newest complete hour, and the one clock."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from features.city import load_city
from features.clock import Clock, set_clock
from features.errors import DataError
from features.sources import load_files
from features.sources.timing import RULES, Reported, complete_hour, to_cadence, violations
from live.ingest import MAX_LISTED, read_batch, report
from live.store import Appended

CITY = load_city("incheon")
NOW = datetime(2023, 7, 10, 12, 7)


@pytest.fixture(autouse=True)
def fixed_clock():
    set_clock(Clock().at(NOW))
    yield
    set_clock(None)


def _batch(tmp_path, source: str, rows) -> tuple[pd.DataFrame, list[dict]]:
    path = tmp_path / f"{source}.json"
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    batch = read_batch(source, path, CITY)
    return batch.frame, batch.refused


def _weather(times, **values) -> pd.DataFrame:
    n = len(times)
    base = {c: np.full(n, np.nan) for c in ("temp_c", "rain_mm", "wind_ms", "wind_dir_deg", "humidity_pct",
                                             "pressure_hpa", "snow_cm")}
    base.update({k: np.asarray(v, float) for k, v in values.items()})
    return pd.DataFrame({"station_id": 112, "time": pd.to_datetime(times), **base})


def test_ten_minute_rows_make_whole_hours_rain_summed_temperature_averaged():
    times = pd.date_range("2023-07-10 10:10", "2023-07-10 12:00", freq="10min")  # hours 11:00 and 12:00, whole
    frame = _weather(times, rain_mm=np.arange(12, dtype=float), temp_c=np.arange(12, dtype=float) + 20)
    out = to_cadence("asos", frame, "station_id", np.arange(1, 13))
    assert out.frame["time"].tolist() == [pd.Timestamp("2023-07-10 11:00"), pd.Timestamp("2023-07-10 12:00")]
    assert out.frame["rain_mm"].tolist() == [sum(range(6)), sum(range(6, 12))]  # amounts add up
    assert out.frame["temp_c"].tolist() == [22.5, 28.5]  # levels average
    assert out.rows.tolist() == [6, 12] and out.dropped == []


def test_a_part_of_an_hour_is_refused_never_stored_as_the_hour():
    times = pd.date_range("2023-07-10 10:10", "2023-07-10 10:40", freq="10min")  # 4 of the 6 rows for 11:00
    out = to_cadence("asos", _weather(times, rain_mm=[5, 5, 5, 5]), "station_id", [1, 2, 3, 4])
    assert out.frame.empty
    assert [d["row"] for d in out.dropped] == [1, 2, 3, 4]
    assert "6 rows for 11:00, 4 given" in out.dropped[0]["reason"]


def test_a_half_hour_row_beside_hourly_rows_is_refused_and_the_hourly_rows_stay():
    frame = _weather(["2023-07-10 10:00", "2023-07-10 10:30", "2023-07-10 11:00"], rain_mm=[6.0, 0.0, 2.0],
                     temp_c=[15.0, -20.0, 14.0])
    out = to_cadence("asos", frame, "station_id", [1, 2, 3])
    assert out.frame[["rain_mm", "temp_c"]].values.tolist() == [[6.0, 15.0], [2.0, 14.0]]
    assert [d["row"] for d in out.dropped] == [2] and "off the hour" in out.dropped[0]["reason"]


def test_airkorea_takes_no_finer_rows(tmp_path):
    frame, refused = _batch(tmp_path, "airkorea", [
        {"station_code": s.code, "station_name": s.name, "time": "2023-07-10 09:30", "pm10": 40}
        for s in CITY.air_stations[:1]])  # its layouts print whole hours only: the time itself is refused
    assert frame.empty and refused[0]["field"] == "time" and "09:30" in refused[0]["reason"]
    assert not RULES["airkorea"].finer


def test_minute_data_rain_from_a_running_total_with_its_daily_reset(tmp_path):
    minutes = pd.date_range("2023-07-10 22:01", "2023-07-11 00:00", freq="min")  # hours 23:00 and 00:00
    total = np.concatenate([np.linspace(0.5, 30.0, 60), np.linspace(30.5, 40.0, 60)])
    lines = ["지점,지점명,일시,기온(°C),누적강수량(mm)"]
    lines += [f"112,인천,{t:%Y-%m-%d %H:%M},20.0,{v:.1f}" for t, v in zip(minutes, total, strict=True)]
    lines += ["112,인천,2023-07-11 00:01,20.0,0.5"]  # reset at midnight: the new day's first minute
    path = tmp_path / "OBS_ASOS_MI_minute.csv"
    path.write_text("\n".join(lines) + "\n", encoding="cp949")
    frame = load_files("asos", [path])
    assert frame["time"].tolist() == [pd.Timestamp("2023-07-10 23:00"), pd.Timestamp("2023-07-11 00:00")]
    # The file starts mid-day: the first hour's rain is unknown; the second is the difference of totals.
    assert np.isnan(frame["rain_mm"].iloc[0]) and frame["rain_mm"].iloc[1] == pytest.approx(10.0, abs=0.05)
    assert any("made 2 hourly rows" in n for n in frame.attrs["read"]["notes"])


def test_kma_missing_sentinels_are_missing(tmp_path):
    frame, refused = _batch(tmp_path, "asos", [{"station_id": 112, "time": "2023-07-10 10:00", "rain_mm": -99,
                                                 "temp_c": -999, "humidity_pct": "-99.0", "wind_ms": 3.0}])
    assert not refused
    assert np.isnan(frame["rain_mm"][0]) and np.isnan(frame["temp_c"][0]) and np.isnan(frame["humidity_pct"][0])
    assert frame["wind_ms"][0] == 3.0


def test_future_and_before_the_city_times_are_refused_with_row_field_and_reason(tmp_path):
    frame, refused = _batch(tmp_path, "asos", [
        {"station_id": 112, "time": "2023-07-10 12:00", "rain_mm": 1.0},  # within the skew: fine
        {"station_id": 112, "time": "2023-07-10 18:00", "rain_mm": 1.0},  # six hours ahead
        {"station_id": 112, "time": "2030-01-01 00:00", "temp_c": 1.0},
        {"station_id": 112, "time": "1900-01-01 00:00", "temp_c": 1.0}])
    assert frame["time"].tolist() == [pd.Timestamp("2023-07-10 12:00")]
    assert [(r["row"], r["field"]) for r in refused] == [(2, "time"), (3, "time"), (4, "time")]
    assert "in the future" in refused[0]["reason"] and "2023-07-10 12:07" in refused[0]["reason"]
    assert "before the city's first accepted time" in refused[2]["reason"]


def test_forecasts_may_lie_ahead_by_their_own_rule():
    tide = pd.DataFrame({"station": "인천", "time": pd.to_datetime(["2023-07-12 10:00", "2023-07-12 11:00"]),
                         "tide_cm": [np.nan, 600.0], "tide_pred_cm": [650.0, 640.0]})
    bad = violations("tide", tide, CITY.observations_since, NOW, live=True)
    assert [i for i, *_ in bad] == [1]  # a prediction two days ahead is fine; an observation is not
    nowcast = pd.DataFrame({"issued": pd.to_datetime(["2023-07-10 13:00", "2023-07-10 13:00"]),
                            "valid": pd.to_datetime(["2023-07-10 19:00", "2023-07-11 13:00"]),
                            "nx": 55, "ny": 124, "rain_mm": [1.0, 1.0]})
    bad = violations("nowcast", nowcast, CITY.observations_since, NOW, live=True)
    assert [(i, column) for i, column, _ in bad] == [(1, "valid")]  # the HH30 issue, rounded up, is no future


def test_a_batch_of_many_bad_rows_is_read_once_per_kind_and_counts_them_all(tmp_path):
    rows = [{"station_id": 112, "time": f"{t:%Y-%m-%d %H:%M}", "rain_mm": 9999 if i % 2 else 1.0}
            for i, t in enumerate(pd.date_range("2023-06-01", periods=400, freq="h"))]
    frame, refused = _batch(tmp_path, "asos", rows)
    assert len(frame) == 200 and len(refused) == 200
    assert all(r["field"] == "rain_mm" and "between 0 and 300" in r["reason"] for r in refused)
    answer = report(Appended("asos", accepted=200, refused=refused))
    assert answer["refused"] == 200 and len(answer["refusals"]) == MAX_LISTED


def test_every_row_refused_still_reports_each_reason(tmp_path):
    frame, refused = _batch(tmp_path, "asos", [{"station_id": 112, "time": "2023-05-07 10:00", "rain_mm": 9999}])
    assert frame.empty and refused == [{"row": 1, "field": "rain_mm",
                                        "reason": "bad value '9999': expected a value between 0 and 300 mm, "
                                                  "the physical limits"}]


def _reported(source, hours: dict, needed) -> Reported:
    hours = {pd.Timestamp(h): frozenset(v) for h, v in hours.items()}
    return Reported(source, hours, frozenset(needed), max(hours))


def test_the_newest_complete_hour_waits_for_a_late_station_until_its_lateness_passes():
    asos = _reported("asos", {"2023-07-10 11:00": {"112", "201"}, "2023-07-10 12:00": {"112"}}, {"112", "201"})
    aws = _reported("aws", {"2023-07-10 11:00": {"9"}, "2023-07-10 12:00": {"9"}}, {"9"})
    hour, awaited = complete_hour([asos, aws], pd.Timestamp("2023-07-10 12:07"))
    assert hour == pd.Timestamp("2023-07-10 11:00")
    assert awaited == {"asos": [{"hour": "2023-07-10T12:00:00", "missing": ["201"],
                                 "until": "2023-07-10T12:30:00"}]}
    hour, awaited = complete_hour([asos, aws], pd.Timestamp("2023-07-10 12:31"))  # 201 is now late: go on
    assert hour == pd.Timestamp("2023-07-10 12:00") and awaited == {}


def test_one_early_row_does_not_move_the_hour():
    asos = _reported("asos", {"2023-07-10 11:00": {"112"}, "2023-07-10 12:00": {"112"}}, {"112"})
    aws = _reported("aws", {"2023-07-10 11:00": {"1", "2", "3"}}, {"1", "2", "3"})
    hour, awaited = complete_hour([asos, aws], pd.Timestamp("2023-07-10 12:05"))
    assert hour == pd.Timestamp("2023-07-10 11:00") and awaited["aws"][0]["missing"] == ["1", "2", "3"]


def test_historic_data_is_complete_at_once():
    asos = _reported("asos", {"2021-08-31 23:00": {"112"}}, {"112", "201"})
    assert complete_hour([asos], pd.Timestamp("2026-12-07 12:00"))[0] == pd.Timestamp("2021-08-31 23:00")


def test_every_live_source_declares_its_rules():
    for source in ("asos", "aws", "airkorea", "tide", "nowcast"):
        rule = RULES[source].describe()
        assert {"cadence_min", "skew_min", "delay_min", "lateness_min"} <= rule.keys()
    assert RULES["asos"].rollup["rain_mm"] == "sum" and RULES["asos"].rollup["temp_c"] == "mean"


def test_the_clock_runs_offset_and_fast_from_one_moment():
    env = {"URBAN_SAFETY_CLOCK_START": "2023-07-10T12:00:00+09:00", "URBAN_SAFETY_CLOCK_SPEED": "60",
           "URBAN_SAFETY_CLOCK_SINCE": str(pd.Timestamp.now(tz="UTC").timestamp())}
    clock = Clock.from_env(env)
    now = pd.Timestamp(clock.now())
    assert pd.Timestamp("2023-07-10 12:00") <= now < pd.Timestamp("2023-07-10 12:10")
    assert clock.wall_seconds(pd.Timedelta(minutes=30).to_pytimedelta()) == 30.0
    assert abs((pd.Timestamp(Clock.from_env({"URBAN_SAFETY_CLOCK_OFFSET_S": "-3600"}).now()) -
                pd.Timestamp(Clock().now())).total_seconds() + 3600) < 5
    with pytest.raises(DataError, match="URBAN_SAFETY_CLOCK_SINCE"):
        Clock.from_env({"URBAN_SAFETY_CLOCK_SPEED": "60"})
    with pytest.raises(DataError, match="URBAN_SAFETY_CLOCK_SPEED"):
        Clock.from_env({"URBAN_SAFETY_CLOCK_SPEED": "fast"})


def test_fetched_rows_go_through_the_time_rules(tmp_path):
    from live.ingest import ingest_fetched
    from live.store import ObservationStore

    store = ObservationStore(f"sqlite:///{tmp_path / 'live.db'}")
    frame = _weather(["2023-07-10 12:00", "2023-07-10 19:00"], rain_mm=[1.0, 2.0])
    result = ingest_fetched(store, "asos", frame, CITY, "asos open API")
    assert result.accepted == 1 and len(result.refused) == 1
    assert result.refused[0]["key"] == {"station_id": "112", "time": "2023-07-10 19:00:00"}
    assert "in the future" in result.refused[0]["reason"]
    assert store.frame("asos")["time"].tolist() == [pd.Timestamp("2023-07-10 12:00")]

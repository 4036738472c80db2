"""Fine dust domain: grades, point-in-time windows around the 17:00 issue, and the one feature path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.city import load_city
from features.domains import fine_dust as fd
from features.sources import Sources

CITY = load_city("incheon", grid_m=2000)
BACKGROUND = next(s.code for s in CITY.air_stations if s.background)
STATION = next(s.code for s in CITY.air_stations if not s.background)

# --- grades --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "grade"), [(0, 0), (30, 0), (30.4, 0), (30.6, 1), (31, 1), (80, 1), (81, 2),
                                              (150, 2), (151, 3), (400, 3), (np.nan, -1)])
def test_pm10_grade_bounds(value, grade):
    assert fd.pollutant_grade([value], "pm10")[0] == grade


@pytest.mark.parametrize(("value", "grade"), [(15, 0), (16, 1), (35, 1), (36, 2), (75, 2), (76, 3)])
def test_pm25_grade_bounds(value, grade):
    assert fd.pollutant_grade([value], "pm25")[0] == grade


def test_reported_grade_is_the_worse_of_the_two():
    grades = fd.grade([20, 90, 20, np.nan, np.nan], [40, 10, np.nan, 80, np.nan])
    assert grades.tolist() == [2, 2, 0, 3, -1]
    assert fd.grade_name(grades).tolist() == ["나쁨", "나쁨", "좋음", "매우나쁨", None]
    assert fd.grade_name([1], korean=False).tolist() == ["moderate"]
    assert fd.SPEC.extra["grades"] is fd.grade


# --- the domain on hand-built frames -------------------------------------------------------------

HOURS = pd.date_range("2021-03-01 01:00", "2021-03-11 00:00", freq="h")  # 10 whole AirKorea days


def _sources(seed: int = 0) -> Sources:
    rng = np.random.default_rng(seed)
    codes = [s.code for s in CITY.air_stations]
    air = pd.DataFrame([(c, t) for c in codes for t in HOURS], columns=["station_code", "time"])
    air["station_name"] = "측정소"
    air[["so2", "co", "o3", "no2"]] = 0.01
    air["pm10"] = rng.gamma(4, 12, len(air)).round(0)
    air["pm25"] = (air["pm10"] * rng.uniform(0.3, 0.7, len(air))).round(0)
    air.loc[rng.random(len(air)) < 0.05, ["pm10", "pm25"]] = np.nan
    asos = pd.DataFrame([(s, t) for s in (112, 102) for t in HOURS], columns=["station_id", "time"])
    asos["temp_c"], asos["pressure_hpa"], asos["snow_cm"] = 5.0, 1015.0, np.nan
    asos["wind_ms"] = rng.gamma(2, 2, len(asos)).round(1)
    asos["wind_dir_deg"] = rng.uniform(0, 360, len(asos)).round(0)
    asos["humidity_pct"] = rng.uniform(30, 95, len(asos)).round(0)
    asos["rain_mm"] = np.where(rng.random(len(asos)) < 0.1, rng.gamma(1, 2, len(asos)).round(1), 0.0)
    src = Sources("/nonexistent", CITY)
    return src.override("airkorea", air).override("asos", asos)


@pytest.fixture(scope="module")
def src() -> Sources:
    return _sources()


@pytest.fixture(scope="module")
def table(src) -> pd.DataFrame:
    return fd.build_table(src)


def test_table_shape_and_rows(table):
    spec = fd.SPEC
    assert list(table.columns) == [*spec.keys, spec.time, *spec.conditions,
                                   *(f for f in spec.features if f not in spec.keys), spec.target]
    assert BACKGROUND not in set(table["station_code"])
    assert set(table["pollutant"]) == {0, 1}
    assert (table["time"].dt.hour == fd.ISSUE_HOUR).all()
    assert (table["target_date"] - table["time"] == pd.Timedelta(hours=7)).all()
    n_stations = len(CITY.air_stations) - 1
    assert len(table) <= n_stations * 2 * 9  # 9 issue days have a next day in the data
    assert table["bg_pm10_today_mean"].notna().all()


def _brute_mean(air, code, col, lo, hi):
    rows = air[(air["station_code"] == code) & (air["time"] > lo) & (air["time"] <= hi)]
    return rows[col].mean()


def test_features_match_a_direct_computation(src, table):
    air = src["airkorea"]
    row = table[(table["station_code"] == STATION) & (table["pollutant"] == 1)].iloc[3]
    t, day = row["time"], row["time"].normalize()
    assert row["pm10_today_mean"] == pytest.approx(_brute_mean(air, STATION, "pm10", day, t))
    assert row["pm25_yesterday_mean"] == pytest.approx(_brute_mean(air, STATION, "pm25", day - pd.Timedelta(days=1),
                                                                   day))
    assert row["pm25_mean_72h"] == pytest.approx(_brute_mean(air, STATION, "pm25", t - pd.Timedelta(hours=72), t))
    assert row["own_today_mean"] == row["pm25_today_mean"]
    today = air[(air["station_code"] == STATION) & (air["time"] > day) & (air["time"] <= t)]
    assert row["pm10_today_max"] == today["pm10"].max()
    assert row["bg_pm10_today_mean"] == pytest.approx(_brute_mean(air, BACKGROUND, "pm10", day, t))
    asos = src["asos"]
    wx = asos[(asos["station_id"] == 112) & (asos["time"] > day) & (asos["time"] <= t)]
    assert row["wx_rain_mm"] == pytest.approx(wx["rain_mm"].sum())
    assert row["wx_humidity_pct"] == pytest.approx(wx["humidity_pct"].mean())
    target = air[(air["station_code"] == STATION) & (air["time"] > row["target_date"])
                 & (air["time"] <= row["target_date"] + pd.Timedelta(days=1))]
    assert row["pm_next"] == pytest.approx(target["pm25"].mean())


def test_observations_after_the_issue_hour_do_not_change_the_row(src, table):
    issue = pd.Timestamp("2021-03-05 17:00")
    air, asos = src["airkorea"].copy(), src["asos"].copy()
    air.loc[air["time"] > issue, ["pm10", "pm25"]] *= 3
    asos.loc[asos["time"] > issue, ["wind_ms", "rain_mm", "humidity_pct"]] = [20.0, 50.0, 100.0]
    changed = fd.build_table(src.override("airkorea", air).override("asos", asos))
    # The forecast stand-ins read the target day by design (a forecast of it); nothing else may.
    cols = [c for c in fd.SPEC.features if c not in fd.SPEC.forecast]
    before = table[table["time"] <= issue][cols].reset_index(drop=True)
    after = changed[changed["time"] <= issue][cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(after, before)
    # The hour stamped 17:00 (16-17 h) is known at the issue time, so it does count.
    air.loc[air["time"] == issue, "pm10"] = 500.0
    at_issue = fd.build_table(src.override("airkorea", air))
    row = at_issue[(at_issue["time"] == issue) & (at_issue["station_code"] == STATION)].iloc[0]
    assert row["pm10_today_max"] == 500.0


def test_days_without_18_valid_hours_have_no_row(src):
    air = src["airkorea"].copy()
    day = pd.Timestamp("2021-03-06")
    gap = (air["station_code"] == STATION) & (air["time"] > day) & (air["time"] <= day + pd.Timedelta(hours=7))
    air.loc[gap, "pm10"] = np.nan  # 7 of 24 hours missing: at most 17 valid
    table = fd.build_table(src.override("airkorea", air))
    target = table[(table["station_code"] == STATION) & (table["target_date"] == day)]
    assert target["pollutant"].tolist() == [1]  # PM2.5 still has its hours


def test_build_rows_reproduces_table_rows(src, table):
    rows = table.sample(10, random_state=3)
    requests = rows[[*fd.SPEC.keys, *fd.SPEC.conditions]]  # the issue time follows from the target date
    again = fd.build_rows(src, requests)
    pd.testing.assert_frame_equal(again[list(fd.SPEC.features)].reset_index(drop=True),
                                  rows[list(fd.SPEC.features)].reset_index(drop=True))
    with_time = fd.build_rows(src, rows[[*fd.SPEC.keys, fd.SPEC.time, *fd.SPEC.conditions]])
    pd.testing.assert_frame_equal(with_time[list(fd.SPEC.features)].reset_index(drop=True),
                                  rows[list(fd.SPEC.features)].reset_index(drop=True))


def test_what_if_overrides_and_westerly_transport(src):
    request = pd.DataFrame({"station_code": [STATION, STATION], "pollutant": [0, 1],
                            "target_date": pd.to_datetime(["2021-03-06", "2021-03-06"]),
                            "pm10_today_mean": [250.0, np.nan], "upwind_wind_u_ms": [5.0, 5.0],
                            "bg_pm10_today_mean": [100.0, 100.0]})
    rows = fd.build_rows(src, request)
    assert rows["own_today_mean"].iloc[0] == 250.0
    assert rows["own_today_mean"].iloc[1] == rows["pm25_today_mean"].iloc[1]  # PM2.5 not overridden
    assert rows["westerly_transport"].tolist() == [500.0, 500.0]
    easterly = fd.build_rows(src, request.assign(upwind_wind_u_ms=-3.0))
    assert (easterly["westerly_transport"] == 0).all()


def test_wind_components_follow_the_meteorological_convention(src):
    asos = src["asos"].copy()
    asos["wind_dir_deg"], asos["wind_ms"] = 270.0, 4.0  # from the west
    rows = fd.build_rows(src.override("asos", asos),
                         pd.DataFrame({"station_code": [STATION], "pollutant": [0],
                                       "target_date": [pd.Timestamp("2021-03-06")]}))
    assert rows["wx_wind_u_ms"].iloc[0] == pytest.approx(4.0)
    assert rows["wx_wind_v_ms"].iloc[0] == pytest.approx(0.0, abs=1e-9)


def test_spec_registration():
    from features.registry import get_domain

    spec = get_domain("fine_dust")
    assert spec is fd.SPEC and spec.feature_set_version == "fine_dust-v4"
    assert spec.horizon == pd.Timedelta(hours=31)


# --- the generated small data set ----------------------------------------------------------------


def test_small_data_table(small_data):
    src = Sources.from_settings(small_data)
    table = fd.build_table(src)
    assert len(table) > 1000 and BACKGROUND not in set(table["station_code"])
    assert table["pm_next"].notna().all()
    # Persistence carries signal: today's mean correlates with tomorrow's.
    corr = table[["own_today_mean", "pm_next"]].corr().iloc[0, 1]
    assert corr > 0.3
    assert table["westerly_transport"].notna().mean() > 0.9

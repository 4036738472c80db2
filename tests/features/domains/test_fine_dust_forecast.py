"""Fine dust's forecast inputs (KMA short-range units, grid, training's forecast error) and hourly answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.domains import fine_dust as fd
from features.domains.fine_dust import forecast as fc
from features.domains.fine_dust import hourly
from features.errors import DataError
from tests.features.domains.test_fine_dust import STATION, _sources

# --- KMA short-range forecast units ----------------------------------------------------------------


@pytest.mark.parametrize(("text", "mm"), [("강수없음", 0.0), ("1mm 미만", 0.5), ("1.0mm 미만", 0.5), ("6.0mm", 6.0),
                                          ("30.0~50.0mm", 40.0), ("50.0mm 이상", 50.0), (3, 3.0), (2.5, 2.5)])
def test_pcp_categories_in_mm(text, mm):
    assert fc.pcp_mm(text) == mm


@pytest.mark.parametrize("bad", ["비", "-3mm", -1.0, float("nan")])
def test_pcp_refuses_what_kma_never_prints(bad):
    with pytest.raises(DataError, match="PCP"):
        fc.pcp_mm(bad)


def test_grid_point_of_kma_lambert_grid():
    nx, ny = fc.grid_point([37.5665, 37.9739], [126.978, 124.7123])  # Seoul City Hall, Baengnyeong-do
    assert (nx.tolist(), ny.tolist()) == ([60, 21], [127, 136])


def test_wind_components_round_trip():
    u, v = fc.wind_components([4.0, 4.0], [270.0, 0.0])  # from the west, from the north
    assert u == pytest.approx([4.0, 0.0], abs=1e-9) and v == pytest.approx([0.0, -4.0], abs=1e-9)
    assert fc.direction_of(u, v) == pytest.approx([270.0, 0.0], abs=1e-6)


def test_forecast_error_is_one_draw_per_day_and_of_the_documented_size():
    days = pd.date_range("2021-01-01", periods=2000, freq="D").as_unit("ns").asi8
    observed = pd.DataFrame({"fcst_wsd": 4.0, "fcst_vec": 270.0, "fcst_pcp": np.where(np.arange(2000) % 4 == 0, 5.0, 0.0),
                             "fcst_reh": 60.0, "fcst_tmp": 10.0}, index=range(2000))
    out = fc.degrade(observed, days)
    assert np.std(out["fcst_wsd"] - 4.0) == pytest.approx(fc.WIND_SD_MS, rel=0.1)
    assert np.std(out["fcst_tmp"] - 10.0) == pytest.approx(fc.TEMP_SD_C, rel=0.1)
    wet = observed["fcst_pcp"] > 0
    assert (out.loc[wet, "fcst_pcp"] == 0).mean() == pytest.approx(fc.RAIN_MISS, abs=0.05)
    assert (out.loc[~wet, "fcst_pcp"] > 0).mean() == pytest.approx(fc.RAIN_FALSE_ALARM, abs=0.03)
    # A day's draw does not depend on the other days asked (a rebuilt or partial table gets the same).
    again = fc.degrade(observed.iloc[[5, 5, 17]].reset_index(drop=True), days[[5, 5, 17]])
    assert again["fcst_wsd"].tolist() == out["fcst_wsd"].iloc[[5, 5, 17]].tolist()


# --- forecast features in the one feature path -------------------------------------------------------


@pytest.fixture(scope="module")
def src():
    return _sources()


def test_a_given_forecast_drives_the_features_and_persistence_fills_the_rest(src):
    request = pd.DataFrame({"station_code": [STATION] * 2, "pollutant": [0, 0],
                            "target_date": pd.to_datetime(["2021-03-06"] * 2),
                            "fcst_wsd": [2.0, np.nan], "fcst_vec": [270.0, np.nan], "fcst_pcp": [10.0, np.nan]})
    rows = fd.build_rows(src, request)
    assert rows["fc_wind_u_ms"].iloc[0] == pytest.approx(2.0) and rows["fc_rain_mm"].iloc[0] == 10.0
    # No upwind forecast given: the upwind station's last 24 h of wind stand in for its flow.
    bg = rows["bg_pm10_today_mean"].iloc[0]
    assert rows["fc_westerly_transport"].iloc[0] == pytest.approx(bg * max(0.0, rows["fc_upwind_wind_u_ms"].iloc[0]))
    asos = src["asos"]
    issue = pd.Timestamp("2021-03-05 17:00")
    last24 = asos[(asos["station_id"] == 112) & (asos["time"] > issue - pd.Timedelta(hours=24))
                  & (asos["time"] <= issue)]
    assert rows["fc_rain_mm"].iloc[1] == pytest.approx(last24["rain_mm"].sum())
    assert rows["fc_wind_speed_ms"].iloc[1] == pytest.approx(last24["wind_ms"].mean())
    assert rows["fc_humidity_pct"].iloc[0] == rows["fc_humidity_pct"].iloc[1]  # not given in either: persistence


def test_the_upwind_forecast_carries_todays_upwind_dust_on_a_westerly_only(src):
    """Transboundary transport is today's PM10 at the upwind station times tomorrow's westerly flow there:
    a westerly carries it (more wind, more flux), an easterly none, whatever the city's own wind."""
    winds = [(8.0, 270.0), (4.0, 270.0), (8.0, 90.0), (8.0, 315.0)]
    request = pd.DataFrame({"station_code": STATION, "pollutant": 0, "target_date": pd.Timestamp("2021-03-06"),
                            "fcst_wsd": 1.0, "fcst_vec": 90.0, "fcst_upwind_wsd": [w for w, _ in winds],
                            "fcst_upwind_vec": [d for _, d in winds]})
    rows = fd.build_rows(src, request)
    bg = rows["bg_pm10_today_mean"].iloc[0]
    assert bg > 0
    flux = rows["fc_westerly_transport"].to_numpy()
    assert flux[:3] == pytest.approx([8.0 * bg, 4.0 * bg, 0.0], abs=1e-9)
    assert flux[3] == pytest.approx(8.0 * np.sin(np.radians(45)) * bg)  # a north-westerly: its eastward part
    assert rows["fc_upwind_wind_u_ms"].iloc[0] == pytest.approx(8.0)
    assert (rows["fc_wind_u_ms"] == rows["fc_wind_u_ms"].iloc[0]).all()  # the city's own forecast untouched


def test_training_forecast_is_the_target_days_weather_degraded(src):
    table = fd.build_table(src)
    target_ns = table["target_date"].to_numpy().astype("datetime64[ns]").astype(np.int64)
    observed = fd.features.observed_weather(src, target_ns)
    assert (table["fcst_reh"] - observed["fcst_reh"]).abs().max() > 0  # degraded, not perfect
    assert np.corrcoef(table["fcst_wsd"], observed["fcst_wsd"])[0, 1] > 0.3
    # The upwind station's wind: the target day's observed wind there (not the city's), degraded on its own.
    assert np.corrcoef(table["fcst_upwind_wsd"], observed["fcst_upwind_wsd"])[0, 1] > 0.3
    assert (table["fcst_upwind_wsd"] - observed["fcst_upwind_wsd"]).abs().max() > 0
    assert not np.allclose(observed["fcst_upwind_wsd"], observed["fcst_wsd"])
    error, upwind_error = table["fcst_wsd"] - observed["fcst_wsd"], table["fcst_upwind_wsd"] - observed["fcst_upwind_wsd"]
    assert abs(np.corrcoef(error, upwind_error)[0, 1]) < 0.3  # drawn independently
    day = table.groupby("target_date")["fcst_wsd"].nunique()
    assert (day == 1).all()  # every station and pollutant of a day shares the day's forecast


# --- hours and advisories ----------------------------------------------------------------------------

STATS = hourly.Stats(tuple(np.linspace(0.8, 1.2, 24)), sigma_h=0.2, rho=0.8, sigma_p=0.35)


def test_hours_run_to_the_end_of_the_target_day_and_average_the_daily_forecast():
    frame = hourly.forecast("2021-03-05 17:00", "2021-03-06", daily=60.0, today=40.0, recent=45.0, stats=STATS,
                            skill=0.7)
    assert len(frame) == 31 and frame["lead_h"].tolist() == list(range(1, 32))
    assert frame["time"].iloc[0] == pd.Timestamp("2021-03-05 18:00")
    assert frame["time"].iloc[-1] == pd.Timestamp("2021-03-07 00:00")  # hour 24 closing the target day
    assert frame["value"].iloc[-24:].mean() == pytest.approx(60.0)
    # The first hour stays near what is measured now; the spread grows with the lead.
    assert abs(frame["value"].iloc[0] - 45.0) < abs(frame["value"].iloc[0] - 60.0 * STATS.profile[17])
    assert frame["log_sd"].is_monotonic_increasing


def test_advisory_probability_rises_with_the_level_and_needs_two_hours():
    probs = [hourly.forecast("2021-03-05 17:00", "2021-03-06", daily=d, today=d, recent=d, stats=STATS,
                             skill=0.7)["p_150"].iloc[-12:].mean() for d in (40.0, 120.0, 200.0, 400.0)]
    assert probs == sorted(probs) and probs[0] < 0.01 and probs[-1] > 0.95
    first = hourly.forecast("2021-03-05 17:00", "2021-03-06", daily=400.0, today=400.0, recent=400.0, stats=STATS,
                            skill=0.7, last=20.0)
    assert first["p_150"].iloc[0] == 0.0  # the hour before was clean: no 2-hour run can end at lead 1


def test_advisory_names():
    frame = hourly.forecast("2021-03-05 17:00", "2021-03-06", daily=320.0, today=300.0, recent=300.0, stats=STATS,
                            skill=0.7)
    probs = hourly.advisory_probabilities({"pm10": frame})
    assert set(probs[-1]) == {"미세먼지 주의보", "미세먼지 경보", "초미세먼지 주의보", "초미세먼지 경보"}
    assert probs[-1]["초미세먼지 주의보"] is None  # no PM2.5 forecast: no probability, not zero
    assert hourly.likely_advisory({"미세먼지 주의보": 0.9, "미세먼지 경보": 0.6, "초미세먼지 주의보": 0.7}) == \
        "미세먼지 경보, 초미세먼지 주의보"
    assert hourly.likely_advisory({"미세먼지 주의보": 0.2}) is None


def test_station_statistics_from_history(src):
    stats = hourly.station_stats(src["airkorea"])
    s = stats[(STATION, 0)]
    assert len(s.profile) == 24 and np.mean(s.profile) == pytest.approx(1.0)
    assert 0 < s.sigma_h < 2 and 0 <= s.rho < 1 and s.sigma_p > 0

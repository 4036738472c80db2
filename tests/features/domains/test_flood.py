"""Flood domain: conditions, labels per lead time, past floods, the one feature path and the cause rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import timeseries as ts
from features.domains import flood
from features.embedded import floods
from features.errors import DataError
from features.registry import get_domain
from features.sources import Sources
from tests.features.domains import assert_rebuilds, tiny_sources


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return tiny_sources(tmp_path_factory.mktemp("flood"))


@pytest.fixture(scope="module")
def table(src):
    return flood.build_table(src, rain_mm=5, fcst_mm=5, background=0.05)


def test_spec_is_registered_and_declares_its_columns():
    spec = get_domain("flood")
    assert spec is flood.SPEC
    assert spec.task == "binary" and spec.target == "flooded" and spec.keys == ("cell_id", "lead_hours")
    assert set(spec.conditions) <= set(spec.features)
    assert set(spec.extra["units"]) == set(spec.conditions)
    assert callable(spec.extra["cause"])


def test_table_has_spec_columns_and_float32_features(table):
    spec = flood.SPEC
    assert [c for c in table.columns if c in spec.features] == list(spec.features)
    assert all(table[c].dtype == np.float32 for c in spec.features)
    assert not table.duplicated(["cell_id", "time", "lead_hours"]).any()
    assert set(table["flooded"].unique()) <= {0, 1}


def test_the_generator_writes_a_truth_for_every_lead():
    assert floods.LEADS == flood.features.LEADS


def test_table_holds_every_selected_row_once_per_lead(table):
    per_lead = table.groupby("lead_hours")
    assert sorted(per_lead.groups) == list(flood.features.LEADS)
    keys = [frame[["cell_id", "time"]].reset_index(drop=True) for _, frame in per_lead]
    for other in keys[1:]:
        pd.testing.assert_frame_equal(other, keys[0])
    # Same conditions, the lead's own window and label: a longer lead never has fewer floods.
    wide = table.pivot_table(index=["cell_id", "time"], columns="lead_hours", values="flooded")
    assert (wide[3] >= wide[1]).all() and (wide[6] >= wide[3]).all()
    for k in flood.features.LEADS:
        rows = table[table["lead_hours"] == k]
        np.testing.assert_array_equal(rows["rain_fcst_lead"], rows[f"rain_fcst_{k}h"])


def test_build_rows_reproduces_table_rows(src, table):
    assert_rebuilds(flood.SPEC, src, table)
    assert_rebuilds(flood.SPEC, src, table[table["flooded"] == 1])


def test_conditions_read_the_nearest_station_and_the_tide(src):
    cell = src.grid.cells.iloc[5]
    t = pd.Timestamp("2021-07-17 20:00")  # inside the heavy storm
    stations = ts.weather_stations(src.city)
    sid = ts.nearest_key([cell["lat"]], [cell["lon"]], stations)[0]
    weather = pd.concat([src["asos"], src["aws"]])
    rain = weather.loc[weather["station_id"] == sid].set_index("time")["rain_mm"]
    got = flood.features.observed_conditions(src, [cell["cell_id"]], [t]).iloc[0]
    assert got["rain_3h"] == pytest.approx(rain[t - pd.Timedelta(hours=2):t].sum())
    assert got["rain_24h"] == pytest.approx(rain[t - pd.Timedelta(hours=23):t].sum())
    nx, ny = stations.set_index("station_id").loc[sid, ["nx", "ny"]]
    nc = src["nowcast"]
    nc = nc[(nc["issued"] == t) & (nc["nx"] == nx) & (nc["ny"] == ny)]
    lead = (nc["valid"] - nc["issued"]) / pd.Timedelta(hours=1)
    assert sorted(lead) == [1, 2, 3, 4, 5, 6]
    assert got["rain_fcst_6h"] == pytest.approx(nc["rain_mm"].sum())
    assert got["rain_fcst_3h"] == pytest.approx(nc.loc[lead <= 3, "rain_mm"].sum())
    assert got["rain_fcst_1h"] == pytest.approx(nc.loc[lead == 1, "rain_mm"].iloc[0])
    tide = src["tide"].set_index("time")
    assert got["tide_cm"] == tide.loc[t, "tide_cm"]
    for k in (3, 6):
        assert got[f"tide_pred_max_{k}h_cm"] == tide.loc[t + pd.Timedelta(hours=1):t + pd.Timedelta(hours=k),
                                                         "tide_pred_cm"].max()


def test_a_late_nowcast_issue_is_stood_in_for_by_the_previous_one_an_hour_on(src):
    t = pd.Timestamp("2021-07-17 20:00")
    nc = src["nowcast"]
    late = src.override("nowcast", nc[nc["issued"] != t])  # this hour's issue has not arrived
    cell = src.grid.cells.iloc[5]["cell_id"]
    stations = ts.weather_stations(src.city)
    sid = ts.nearest_key([src.grid.cells.iloc[5]["lat"]], [src.grid.cells.iloc[5]["lon"]], stations)[0]
    nx, ny = stations.set_index("station_id").loc[sid, ["nx", "ny"]]
    prev = nc[(nc["issued"] == t - pd.Timedelta(hours=1)) & (nc["nx"] == nx) & (nc["ny"] == ny)]
    rain = prev.set_index((prev["valid"] - prev["issued"]) / pd.Timedelta(hours=1))["rain_mm"]
    notes: list = []
    got = flood.features.read_observed(late, ts.cell_positions(late, [cell]), [t], notes)
    assert got["rain_fcst_1h"][0] == pytest.approx(rain.loc[2])
    assert got["rain_fcst_3h"][0] == pytest.approx(rain.loc[2:4].sum())
    assert got["rain_fcst_6h"][0] == pytest.approx(rain.loc[2:6].sum() + rain.loc[6])  # the sixth hour persisted
    assert any(n is not None and n[0] and "previous hour's issue" in n[0] for n in notes)
    # With this hour's issue held, it is the one read (and no note).
    notes = []
    own = flood.features.read_observed(src, ts.cell_positions(src, [cell]), [t], notes)
    mine = nc[(nc["issued"] == t) & (nc["nx"] == nx) & (nc["ny"] == ny)]
    assert own["rain_fcst_6h"][0] == pytest.approx(mine["rain_mm"].sum())
    assert not any(n is not None and n[0] and "previous hour's issue" in n[0] for n in notes)


def test_label_looks_three_hours_ahead_and_past_floods_strictly_before(src):
    tr = flood.features.located_traces(src)
    known = tr[tr["onset"].notna() & (tr["known_at"] == tr["onset"])].iloc[0]
    cell = src.grid.cells["cell_id"].iloc[known["cell_pos"]]
    onset = known["onset"]
    times = [onset - pd.Timedelta(hours=h) for h in (4, 3, 1, 0)] + [onset + pd.Timedelta(hours=1)]
    rows = flood.build_rows(src, pd.DataFrame({"cell_id": cell, "time": times}))
    assert flood.features.label(src, rows).tolist() == [0, 1, 1, 0, 0]
    before = (tr["cell_pos"] == known["cell_pos"]) & (tr["known_at"] < onset)
    assert rows["past_floods"].tolist() == [before.sum()] * 4 + [before.sum() + 1]


def test_label_window_is_the_lead_time(src):
    """An onset two hours after the issue time: not within 1 h, within 3 h and within 6 h."""
    tr = flood.features.located_traces(src)
    known = tr[tr["onset"].notna() & (tr["known_at"] == tr["onset"])].iloc[0]
    cell = src.grid.cells["cell_id"].iloc[known["cell_pos"]]
    issue = known["onset"] - pd.Timedelta(hours=2)
    requests = pd.DataFrame({"cell_id": cell, "time": issue, "lead_hours": [1, 3, 6]})
    assert flood.features.label(src, requests).tolist() == [0, 1, 1]
    five_before = requests.assign(time=known["onset"] - pd.Timedelta(hours=5))
    assert flood.features.label(src, five_before).tolist() == [0, 0, 1]


def test_a_lead_time_other_than_1_3_or_6_is_a_data_error(src):
    cell = src.grid.cells["cell_id"].iloc[0]
    with pytest.raises(DataError, match="lead_hours 2 is not one of 1, 3, 6"):
        flood.build_rows(src, pd.DataFrame({"cell_id": [cell], "time": [pd.Timestamp("2021-07-05")],
                                            "lead_hours": [2]}))


def test_lead_window_features_follow_the_lead(src):
    cell = src.grid.cells["cell_id"].iloc[5]
    t = pd.Timestamp("2021-07-17 18:00")  # rain on the way
    rows = flood.build_rows(src, pd.DataFrame({"cell_id": cell, "time": t, "lead_hours": [1, 3, 6]}))
    assert rows["rain_fcst_lead"].tolist() == [rows[f"rain_fcst_{k}h"].iloc[i] for i, k in enumerate((1, 3, 6))]
    assert rows["rain_fcst_lead"].is_monotonic_increasing
    drain = rows["drain_capacity_mmh"].to_numpy()
    np.testing.assert_allclose(rows["rain_fcst_lead_over_drain"], rows["rain_fcst_lead"] / drain, rtol=1e-6)
    # Every feature that moves with the lead never falls as it grows: with the +1 constraints, the risk cannot.
    for c in ("rain_fcst_lead", "rain_fcst_lead_over_drain", "tide_excess_cm"):
        assert rows[c].is_monotonic_increasing and flood.SPEC.monotone[c] == 1
    same = [c for c in flood.FEATURES if c not in ("lead_hours", "rain_fcst_lead", "rain_fcst_lead_over_drain",
                                                    "tide_excess_cm")]
    assert (rows[same].nunique(dropna=False) == 1).all()


def test_trace_without_hour_is_placed_at_the_wettest_hour_and_known_next_day(src):
    tr = flood.features.located_traces(src)
    raw = src["flood_traces"]
    guessed = tr[tr["known_at"] != tr["onset"]].iloc[0]
    day = guessed["start_date"].normalize()
    assert guessed["known_at"] == day + pd.Timedelta(days=1)
    cell = src.grid.cells.iloc[guessed["cell_pos"]]
    sid = flood.features.station_series(src).cell_station[cell["cell_id"]]
    weather = pd.concat([src["asos"], src["aws"]])
    rain = weather[weather["station_id"] == sid].set_index("time")["rain_mm"]
    day_rain = rain[day:day + pd.Timedelta(hours=23)]
    assert guessed["onset"] == day_rain.idxmax()
    assert raw["onset"].isna().sum() == 1


def test_given_conditions_are_used_as_given(src):
    cell = src.grid.cells["cell_id"].iloc[3]
    t = pd.Timestamp("2021-07-05 10:00")
    observed = flood.build_rows(src, pd.DataFrame({"cell_id": [cell], "time": [t]}))
    what_if = flood.build_rows(src, pd.DataFrame({"cell_id": [cell], "time": [t], "rain_fcst_3h": [150.0]}))
    drain = observed["drain_capacity_mmh"].iloc[0]
    assert what_if["rain_fcst_3h"].iloc[0] == 150.0
    assert what_if["rain_fcst_3h_over_drain"].iloc[0] == pytest.approx(150 / (3 * drain), rel=1e-6)
    same = [c for c in flood.FEATURES if not c.startswith(("rain_fcst_3h", "rain_fcst_lead"))]
    pd.testing.assert_frame_equal(what_if[same], observed[same])


def test_unknown_cell_is_a_data_error(src):
    with pytest.raises(DataError, match="unknown cell_id"):
        flood.build_rows(src, pd.DataFrame({"cell_id": ["nowhere"], "time": [pd.Timestamp("2021-07-05")]}))


def test_event_hours_are_deterministic_and_follow_thresholds(src):
    loose = flood.features.event_hours(src, rain_mm=5, fcst_mm=5, background=0.05)
    assert loose.equals(flood.features.event_hours(src, rain_mm=5, fcst_mm=5, background=0.05))
    strict = flood.features.event_hours(src, rain_mm=50, fcst_mm=50, tide_cm=2000, background=0.05)
    assert set(strict) < set(loose)
    assert flood.features.event_hours(src, rain_mm=1e9, fcst_mm=1e9, tide_cm=1e9, background=0).empty
    tide_hours = flood.features.event_hours(src, rain_mm=1e9, fcst_mm=1e9, tide_cm=886, background=0)
    assert len(tide_hours) > 0  # spring tides pass the first alert step


def test_cause_names_the_dominant_driver():
    base = dict(rain_1h=0.0, rain_3h=0.0, rain_6h=0.0, rain_24h=0.0, rain_fcst_1h=0.0, rain_fcst_3h=0.0,
                tide_cm=500.0, tide_pred_max_3h_cm=500.0, elevation_m=3.0, dist_stream_m=2000.0,
                drain_capacity_mmh=30.0)
    rows = pd.DataFrame([
        base,
        {**base, "rain_fcst_3h": 120.0},  # 120 mm against 90 mm of drain capacity
        {**base, "tide_pred_max_3h_cm": 930.0},  # above the first alert on low land
        {**base, "tide_pred_max_3h_cm": 930.0, "elevation_m": 30.0},  # high ground: tide is harmless
        {**base, "rain_24h": 180.0, "rain_3h": 20.0, "dist_stream_m": 50.0},
    ])
    assert flood.cause(rows).tolist() == ["none", "rain_over_drain", "tide", "none", "stream"]
    # At six hours, the six-hour forecast and tide window decide (not the three-hour ones).
    later = pd.DataFrame([{**base, "rain_fcst_6h": 0.0, "tide_pred_max_6h_cm": 500.0, "lead_hours": 6.0},
                          {**base, "rain_fcst_6h": 240.0, "tide_pred_max_6h_cm": 500.0, "lead_hours": 6.0},
                          {**base, "rain_fcst_6h": 0.0, "tide_pred_max_6h_cm": 930.0, "lead_hours": 6.0},
                          {**base, "rain_fcst_6h": 0.0, "tide_pred_max_6h_cm": 930.0, "lead_hours": 3.0}])
    assert flood.cause(later).tolist() == ["none", "rain_over_drain", "tide", "none"]


def test_physics_features_on_the_table(table):
    low = table["elevation_m"] <= flood.features.LOW_LYING_M
    assert (table.loc[~low, "tide_excess_cm"] == 0).all()
    window = np.where(table["lead_hours"] <= 3, table["tide_pred_max_3h_cm"], table["tide_pred_max_6h_cm"])
    high = window > 900
    assert (table.loc[low & high, "tide_excess_cm"] > 0).all()
    ratio = table["rain_3h"] / (3 * table["drain_capacity_mmh"])
    np.testing.assert_allclose(table["rain_3h_over_drain"], ratio, rtol=1e-6)


def test_small_embedded_data(small_data):
    src = Sources.from_settings(small_data)
    table = flood.build_table(src)
    positives = table.groupby("lead_hours")["flooded"].sum()
    assert positives[1] > 0 and positives[1] <= positives[3] <= positives[6]
    assert set(table["cell_id"]) == set(src.grid.cells["cell_id"])
    assert table[list(flood.CONDITIONS)].notna().mean().min() > 0.95
    assert_rebuilds(flood.SPEC, src, table[table["flooded"] == 1])
    assert_rebuilds(flood.SPEC, src, table, seed=1)


def test_a_fine_grid_keeps_every_flood_and_weights_the_calm_cell_hours_it_samples(src, table):
    """Beyond ``max_rows`` calm cell-hours are sampled at a rate and weighted by its inverse; every cell-hour
    with an onset within the longest lead stays, all its leads with it."""
    whole = table.sort_values(["time", "lead_hours", "cell_id"], ignore_index=True)
    limit = len(whole) // 4
    parts = list(flood.features.table_parts(src, limit // 3, rain_mm=5, fcst_mm=5, background=0.05,
                                            max_rows=limit))
    thin = pd.concat(parts, ignore_index=True)
    assert len(parts) > 1 and len(thin) < len(whole) / 2
    assert thin["flooded"].sum() == whole["flooded"].sum()  # no flood is thinned away
    rate = limit / len(whole)
    assert set(np.round(thin["weight"].unique(), 6)) <= {1.0, round(1 / rate, 6)}
    assert (thin.loc[thin["flooded"] > 0, "weight"] == 1).all()
    # Weighted, the sample stands for the whole table (within sampling noise).
    assert thin["weight"].sum() == pytest.approx(len(whole), rel=0.15)
    per_cell_hour = thin.groupby(["cell_id", "time"])["lead_hours"].nunique()
    assert (per_cell_hour == len(flood.features.LEADS)).all()  # a kept cell-hour keeps all its leads
    # The same rows are the same features: sampling picks rows, it does not change them.
    merged = thin.merge(whole, on=["cell_id", "time", "lead_hours"], suffixes=("", "_all"))
    assert len(merged) == len(thin)
    np.testing.assert_allclose(merged["rain_3h"], merged["rain_3h_all"], equal_nan=True)

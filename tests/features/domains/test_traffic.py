"""Traffic domain: sampling and weights, labels, past rates, conditions and the one feature path."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from features import calendar
from features.domains import traffic
from features.registry import get_domain
from features.sources import Sources
from tests.features.domains import START, assert_rebuilds, tiny_sources


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return tiny_sources(tmp_path_factory.mktemp("traffic"))


@pytest.fixture(scope="module")
def table(src):
    return traffic.build_table(src, rate=0.05)


def test_spec_is_registered_with_a_weight():
    spec = get_domain("traffic")
    assert spec is traffic.SPEC
    assert spec.task == "count" and spec.target == "accidents" and spec.weight == "weight"
    assert set(spec.conditions) <= set(spec.features)
    assert set(spec.extra["units"]) == set(spec.conditions)


def test_table_columns_slots_and_labels(src, table):
    spec = traffic.SPEC
    assert [c for c in table.columns if c in spec.features] == list(spec.features)
    assert all(table[c].dtype == np.float32 for c in spec.features)
    assert not table.duplicated(["cell_id", "time"]).any()
    assert (table["time"].dt.hour % 3 == 0).all() and (table["time"].dt.minute == 0).all()
    located = traffic.features.accidents(src)
    # Every placed accident is in exactly one kept (positive) row.
    assert table["accidents"].sum() == len(located)
    assert table["eclo"].sum() == pytest.approx(located["eclo"].sum())


def test_zero_rows_are_sampled_at_rate_with_inverse_weight(src, table):
    positive = table["accidents"] > 0
    assert (table.loc[positive, "weight"] == 1).all()
    assert (table.loc[~positive, "weight"] == 20).all()
    end = traffic.features.accidents(src)["time"].max().normalize() + pd.Timedelta(days=1)
    slots = len(pd.date_range(traffic.features.history_start(src), end, freq="3h", inclusive="left"))
    candidates = slots * len(src.grid.cells) - positive.sum()
    assert (~positive).sum() == pytest.approx(0.05 * candidates, rel=0.1)
    # Weighted zero rows estimate the number of empty cell-slots.
    assert table.loc[~positive, "weight"].sum() == pytest.approx(candidates, rel=0.1)


def test_sampling_is_reproducible_and_nested(src):
    a = traffic.features.sample_rows(src, rate=0.05)
    pd.testing.assert_frame_equal(a, traffic.features.sample_rows(src, rate=0.05))
    small = traffic.features.sample_rows(src, rate=0.02)
    keys = set(zip(a["cell_id"], a["time"], strict=True))
    assert set(zip(small["cell_id"], small["time"], strict=True)) <= keys  # hash draws do not move


def test_build_rows_reproduces_table_rows(src, table):
    assert_rebuilds(traffic.SPEC, src, table)
    assert_rebuilds(traffic.SPEC, src, table[table["weight"] > 1], seed=1)


def test_past_rates_count_strictly_before_the_slot(src):
    acc = traffic.features.accidents(src)
    late = acc[acc["time"] >= START + pd.Timedelta(days=40)].iloc[0]
    cell = src.grid.cells["cell_id"].iloc[late["cell_pos"]]
    slot = late["time"].floor("3h")
    times = [slot, slot + pd.Timedelta(hours=3), slot + pd.Timedelta(days=1)]
    rows = traffic.build_rows(src, pd.DataFrame({"cell_id": cell, "time": times}))
    in_cell = acc[acc["cell_pos"] == late["cell_pos"]]
    for t, rate, slot_rate in zip(times, rows["cell_rate_365d"], rows["cell_slot_rate_365d"], strict=True):
        days = (t - START) / pd.Timedelta(days=1)
        before = in_cell[in_cell["time"] < t]
        same_slot = before["time"].dt.hour // 3 == t.hour // 3
        assert rate == pytest.approx(len(before) / days, rel=1e-6)
        assert slot_rate == pytest.approx(same_slot.sum() / days, rel=1e-6)


def test_rates_need_thirty_days_of_history(src):
    cell = src.grid.cells["cell_id"].iloc[0]
    times = [START + pd.Timedelta(days=29), START + pd.Timedelta(days=30)]
    rows = traffic.build_rows(src, pd.DataFrame({"cell_id": cell, "time": times}))
    assert np.isnan(rows["cell_rate_365d"].iloc[0]) and not np.isnan(rows["cell_rate_365d"].iloc[1])


def test_calendar_and_weather_conditions(src):
    cells = src.grid.cells
    cell = cells["cell_id"].iloc[0]
    times = pd.to_datetime(["2021-07-01 00:00", "2021-07-01 12:00", "2021-07-17 18:00"])
    rows = traffic.build_rows(src, pd.DataFrame({"cell_id": cell, "time": times}))
    assert rows["hour"].tolist() == [0, 12, 18]
    assert rows["weekday"].tolist() == [3, 3, 5]
    assert rows["dark"].tolist() == [1, 0, 0]  # 19:30 in July is still light
    assert rows["rain_3h_mm"].iloc[2] > 10  # the heavy storm
    assert rows["holiday"].tolist() == [0, 0, 0]


def test_freezing_follows_given_weather(src):
    cell = src.grid.cells["cell_id"].iloc[0]
    req = pd.DataFrame({"cell_id": cell, "time": pd.Timestamp("2021-07-05 03:00"),
                        "temp_c": [-3.0, -3.0, 2.0], "rain_3h_mm": [0.0, 4.0, 4.0], "snow_cm": [0.0, 0.0, 0.0]})
    assert traffic.build_rows(src, req)["freezing"].tolist() == [0, 1, 0]


def test_unplaceable_accidents_are_dropped_and_logged(src, caplog):
    raw = src["taas"].copy()
    raw.loc[3, ["lat", "lon"]] = (38.5, 128.0)  # far outside Incheon
    with caplog.at_level(logging.WARNING, logger="features.domains.traffic.features"):
        placed = traffic.features.accidents(src.override("taas", raw))
    assert len(placed) == len(raw) - 4
    assert "4 of" in caplog.text and "3 without coordinates" in caplog.text


def test_korean_holidays_and_darkness():
    days = pd.to_datetime(["2021-02-12", "2021-09-21", "2022-03-09", "2023-01-24", "2021-09-23"])
    assert calendar.is_holiday(days).tolist() == [True, True, True, True, False]
    assert calendar.is_holiday(pd.to_datetime(["2030-12-25 10:00"])).tolist() == [True]  # fixed ones any year
    # Incheon: sunrise ~05:11 and sunset ~19:57 KST at the June solstice.
    at = pd.to_datetime(["2021-06-21 05:00", "2021-06-21 05:25", "2021-06-21 19:45", "2021-06-21 20:10"])
    assert calendar.is_dark(at, 37.47, 126.62).tolist() == [True, False, False, True]


def test_small_embedded_data(small_data):
    src = Sources.from_settings(small_data)
    table = traffic.build_table(src)
    assert table["accidents"].sum() == len(traffic.features.accidents(src)) > 0
    assert table[list(traffic.CONDITIONS)].notna().mean().min() > 0.95
    assert table["cell_slot_rate_365d"].notna().mean() > 0.8
    assert_rebuilds(traffic.SPEC, src, table)

"""Calendars: Korean holidays from python-holidays, the sun's elevation against astral."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from astral import Observer
from astral.sun import elevation

from features import calendar


@pytest.mark.parametrize(("day", "why"), [
    ("2021-02-12", "설날 (lunar)"), ("2023-05-27", "부처님오신날 (lunar)"), ("2025-10-06", "추석 (lunar)"),
    ("2023-01-24", "설날 substitute"), ("2024-05-06", "어린이날 substitute"), ("2025-10-08", "추석 substitute"),
    ("2022-03-09", "presidential election"), ("2024-04-10", "National Assembly election"),
    ("2022-06-01", "local election"), ("2023-10-02", "temporary holiday"), ("2030-12-25", "성탄절, any year"),
])
def test_korean_holidays(day, why):
    assert calendar.is_holiday(pd.to_datetime([f"{day} 14:00"])).tolist() == [True], why


def test_working_days_are_not_holidays():
    days = pd.to_datetime(["2021-09-23", "2024-04-11", "2025-03-04", "2022-06-02"])
    assert not calendar.is_holiday(days).any()
    assert calendar.is_holiday(pd.DatetimeIndex([])).tolist() == []


def test_sun_elevation_agrees_with_astral():
    rng = np.random.default_rng(3)
    times = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 4 * 365 * 24 * 60, 40), "min")
    lat, lon = rng.uniform(37.0, 37.8, 40), rng.uniform(124.6, 126.9, 40)
    ours = calendar.sun_elevation_deg(times, lat, lon)
    kst = dt.timezone(dt.timedelta(hours=9))
    theirs = [elevation(Observer(a, o), t.to_pydatetime().replace(tzinfo=kst), with_refraction=False)
              for t, a, o in zip(times, lat, lon, strict=True)]
    assert np.abs(ours - np.array(theirs)).max() < 0.05

"""Every domain's serving adapters (conditions, levels, requests -> build_rows -> combine, now) on the
small generated data set, plus the cached lookups that make the online path fast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import timeseries as ts
from features.domains import earthquake, fine_dust, flood, traffic
from features.registry import LEVELS, Levels, domains
from features.sources import Sources

NAMES = ("earthquake", "fine_dust", "flood", "traffic")


@pytest.fixture(scope="module")
def src(small_data) -> Sources:
    return Sources.from_settings(small_data)


@pytest.fixture(scope="module")
def cells(src) -> pd.DataFrame:
    return src.grid.cells[["cell_id", "lat", "lon"]]


def _examples(spec, required_only: bool = False) -> dict:
    return {c.name: c.example for c in spec.serving.conditions if c.required or not required_only}


def _stand_in_prediction(spec, rows: pd.DataFrame) -> np.ndarray:
    """A deterministic stand-in for a model, spread over the domain's levels (no model is trained here)."""
    lo, hi = spec.serving.levels.breaks[0], spec.serving.levels.breaks[-1]
    u = ts.stable_uniform(np.arange(len(rows)), seed=3)
    if spec.name == "fine_dust":
        return 5 + 200 * u  # ug/m3
    return lo * (hi / lo) ** u if spec.serving.levels.log else lo + (hi - lo) * u


def _answer(spec, src, cells, at, conditions):
    requests = spec.serving.requests(src, cells, at, conditions)
    rows = spec.build_rows(src, requests)
    return requests, rows, spec.serving.combine(rows, _stand_in_prediction(spec, rows))


# --- declarations ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_conditions_cover_the_spec_with_sensible_ranges(name):
    spec = domains()[name]
    serving = spec.serving
    # A key may be the caller's choice too (the flood lead time): then it is a condition of the API; an
    # answer-only condition (the earthquake's population) is a condition of the API and no request column.
    assert [c.name for c in serving.conditions if c.name not in spec.keys and not c.answer_only] == \
        list(spec.conditions)
    assert not {c.name for c in serving.conditions if c.answer_only} & set(spec.features)
    for c in serving.conditions:
        assert c.kind in ("float", "int", "bool", "date", "str") and c.description and c.unit is not None
        if c.kind in ("float", "int"):
            assert c.minimum < c.maximum and c.minimum <= c.example <= c.maximum
        if c.kind == "str":
            assert c.choices and not c.required
        if c.choices:
            assert c.example in c.choices
            assert c.kind == "str" or all(c.minimum <= v <= c.maximum for v in c.choices)
        if c.kind == "date":
            pd.Timestamp(c.example)
    assert serving.value and serving.unit


def test_required_conditions():
    required = {name: [c.name for c in domains()[name].serving.conditions if c.required] for name in NAMES}
    assert required == {"earthquake": ["magnitude", "epicentre_lat", "epicentre_lon"], "fine_dust": [],
                        "flood": [], "traffic": []}


@pytest.mark.parametrize("name", NAMES)
def test_levels_are_monotone_and_hit_the_quarters(name):
    levels = domains()[name].serving.levels
    b = np.asarray(levels.breaks)
    assert (np.diff(b) > 0).all()
    assert np.allclose(levels.score(b), [0, 25, 50, 75, 100])
    grid = np.geomspace(b[0] / 10, b[-1] * 10, 500) if levels.log else np.linspace(b[0] - 10, b[-1] * 2, 500)
    scores = levels.score(grid)
    assert (np.diff(scores) >= 0).all() and scores.min() == 0 and scores.max() == 100
    assert Levels.level(levels.score(b)).tolist() == [0, 1, 2, 3, 3]


# --- requests -> build_rows -> combine --------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("required_only", [False, True], ids=["given", "observed"])
def test_one_answer_per_cell_with_finite_values_and_scores(name, required_only, src, cells):
    spec = domains()[name]
    at = spec.serving.now(src)
    assert isinstance(at, pd.Timestamp)
    conditions = _examples(spec, required_only)
    for asked in (cells.iloc[[len(cells) // 3]], cells):
        requests, rows, answers = _answer(spec, src, asked, at, conditions)
        assert {*spec.keys, spec.time, "cell_id"} <= set(requests.columns)
        assert set(conditions) - {"hour"} <= set(requests.columns)
        assert set(spec.features) <= set(rows.columns)
        assert len(answers) == len(asked) and list(answers["cell_id"]) == list(asked["cell_id"])
        values = answers["value"].to_numpy(float)
        assert np.isfinite(values).all()
        scores = spec.serving.levels.score(values)
        assert ((scores >= 0) & (scores <= 100)).all()
        assert set(Levels.level(scores)) <= set(range(len(LEVELS)))
        assert {"cause", "details"} <= set(answers.columns)


def test_flood_omitted_conditions_are_the_observations(src, cells):
    at = flood.SERVING.now(src)
    rows = flood.build_rows(src, flood.SERVING.requests(src, cells, at, {}))
    observed = flood.features.observed_conditions(src, cells["cell_id"], np.full(len(cells), at.floor("h")))
    for c in flood.OBSERVED:
        assert np.allclose(rows[c], observed[c].astype(np.float32), equal_nan=True)
    assert (rows["lead_hours"] == flood.features.DEFAULT_LEAD).all()
    extreme = flood.build_rows(src, flood.SERVING.requests(src, cells, at, {"rain_1h": 300.0, "tide_cm": 1200.0}))
    assert (extreme["rain_1h"] == 300).all() and (extreme["tide_cm"] == 1200).all()
    assert not np.allclose(extreme["rain_1h"], rows["rain_1h"])
    # A given short window raises the longer ones; untouched ones stay observed.
    assert (extreme["rain_3h"] >= 300).all() and (extreme["rain_24h"] >= 300).all()
    assert np.allclose(extreme["rain_fcst_3h"], rows["rain_fcst_3h"], equal_nan=True)
    answers = flood.SERVING.combine(extreme, np.full(len(extreme), 0.5))
    assert set(answers["cause"]) <= {"rain_over_drain", "tide", "stream", "none"}
    assert (answers["cause"] != "none").all()
    assert answers["details"].iloc[0]["rain_1h"] == 300
    assert answers["details"].iloc[0]["lead_hours"] == flood.features.DEFAULT_LEAD


def test_flood_lead_time_is_a_condition_and_stated_in_the_answer(src, cells):
    at = flood.SERVING.now(src)
    six = flood.build_rows(src, flood.SERVING.requests(src, cells, at, {"lead_hours": 6,
                                                                        "tide_pred_max_3h_cm": 990.0}))
    assert (six["lead_hours"] == 6).all()
    np.testing.assert_array_equal(six["rain_fcst_lead"], six["rain_fcst_6h"])
    assert (six["tide_pred_max_6h_cm"] >= 990).all()  # a given tide window raises the longer one
    answers = flood.SERVING.combine(six, np.full(len(six), 0.1))
    assert answers["details"].iloc[0]["lead_hours"] == 6 and isinstance(answers["details"].iloc[0]["lead_hours"], int)


def test_traffic_time_from_at_and_weather_from_observations(src, cells):
    at = traffic.SERVING.now(src)
    one = cells.iloc[[5]]
    requests = traffic.SERVING.requests(src, one, at, {})
    assert requests["time"].iloc[0] == at.floor("3h")
    rows = traffic.build_rows(src, requests)
    weather = traffic.features.observed_weather(src, one["cell_id"], [at.floor("3h")])
    assert rows["hour"].iloc[0] == at.floor("3h").hour and rows["weekday"].iloc[0] == at.day_of_week
    assert np.allclose(rows[["rain_3h_mm", "snow_cm", "temp_c"]].to_numpy(float),
                       weather.to_numpy(float).astype(np.float32), equal_nan=True)
    given = traffic.build_rows(src, traffic.SERVING.requests(
        src, one, at, {"rain_3h_mm": 300.0, "temp_c": -30.0, "holiday": True, "weekday": 6}))
    assert given["rain_3h_mm"].iloc[0] == 300 and given["freezing"].iloc[0] == 1 and given["holiday"].iloc[0] == 1
    assert given["weekday"].iloc[0] == 6 and given["temp_c"].iloc[0] != rows["temp_c"].iloc[0]
    # ``hour`` moves the slot (and its past rates) to that hour of the day; later slots use the newest weather.
    morning = at.normalize() - pd.Timedelta(hours=14)  # 10:00 the day before: observed
    late = traffic.SERVING.requests(src, one, morning, {"hour": 19})
    assert late["time"].iloc[0] == morning.normalize() + pd.Timedelta(hours=18) and late["hour"].iloc[0] == 18
    observed = traffic.features.observed_weather(src, one["cell_id"], [morning])["temp_c"].iloc[0]
    assert np.isfinite(observed) and late["temp_c"].iloc[0] == observed
    details = traffic.SERVING.combine(traffic.build_rows(src, late), [0.01])["details"].iloc[0]
    assert details["slot"].endswith("18:00-21:00")


def test_earthquake_depth_defaults_and_scenario(src, cells):
    at = earthquake.SERVING.now(src)
    scenario = {"magnitude": 6.0, "epicentre_lat": 37.45, "epicentre_lon": 126.6}
    rows = earthquake.build_rows(src, earthquake.SERVING.requests(src, cells, at, scenario))
    assert (rows["scenario_id"] == earthquake.serving.SCENARIO_ID).all() and (rows["depth_km"] == 10).all()
    deep = earthquake.build_rows(src, earthquake.SERVING.requests(src, cells, at, {**scenario, "depth_km": 100.0}))
    assert (deep["ln_pga_site"] < rows["ln_pga_site"]).all()
    answers = earthquake.SERVING.combine(rows, np.full(len(rows), 0.2))
    empty = rows["n_buildings"].to_numpy() == 0
    expected, _, raised = earthquake.serving.apply_physics_floor(rows, np.full(len(rows), 0.2))  # strong shaking: the floor
    assert (answers["value"].to_numpy()[empty] == 0).all()
    assert np.allclose(answers["value"].to_numpy()[~empty], expected[~empty])
    assert (answers["value"].to_numpy()[~empty & ~raised] == 0.2).all()
    with pytest.raises(Exception, match="magnitude"):
        earthquake.SERVING.requests(src, cells, at, {"epicentre_lat": 37.0, "epicentre_lon": 126.0})


def test_fine_dust_requests_target_the_next_day_at_the_nearest_city_station(src, cells):
    at = fine_dust.SERVING.now(src)
    assert at.hour == fine_dust.ISSUE_HOUR
    requests = fine_dust.SERVING.requests(src, cells, at, {})
    assert len(requests) == 2 * len(cells) and requests["pollutant"].tolist()[:4] == [0, 1, 0, 1]
    assert (requests["target_date"] == at.normalize() + pd.Timedelta(days=1)).all() and (requests["time"] == at).all()
    background = {s.code for s in src.city.air_stations if s.background}
    assert not set(requests["station_code"]) & background and requests["station_code"].nunique() > 1
    # An explicit earlier target: issued at 17:00 the day before it; a later one: with the data up to ``at``.
    early = fine_dust.SERVING.requests(src, cells.iloc[:1], at, {"target_date": (at - pd.Timedelta(days=10)).date()})
    assert early["time"].iloc[0] == at - pd.Timedelta(days=11)
    later = fine_dust.SERVING.requests(src, cells.iloc[:1], at, {"target_date": (at + pd.Timedelta(days=3)).date()})
    assert later["time"].iloc[0] == at
    rows = fine_dust.build_rows(src, early)
    again = fine_dust.build_rows(src, early[["station_code", "pollutant", "target_date"]])
    assert np.allclose(rows[list(fine_dust.FEATURES)].to_numpy(float), again[list(fine_dust.FEATURES)].to_numpy(float),
                       equal_nan=True)
    answers = fine_dust.SERVING.combine(rows, [90.0, 20.0])  # PM10 bad, PM2.5 moderate
    d = answers["details"].iloc[0]
    assert (d["pm10"], d["pm25"], d["grade"], d["grade_en"]) == (90.0, 20.0, "나쁨", "bad")
    assert answers["cause"].iloc[0] == "pm10" and d["station"] and d["station_code"] == early["station_code"].iloc[0]


PM10_EDGES = [0, 15, 30, 30.4, 30.5, 30.6, 31, 55, 80, 80.6, 81, 120, 150, 150.4, 150.5, 151, 200, 300, 450]
PM25_EDGES = [0, 10, 15, 15.4, 15.5, 16, 25, 35, 35.5, 36, 60, 75, 75.4, 75.5, 76, 100, 150, 250]


def test_fine_dust_score_bands_are_the_korean_grades():
    levels = fine_dust.SERVING.levels
    pm10 = np.array(PM10_EDGES + [np.nan] * len(PM25_EDGES) + [20.0] * len(PM25_EDGES))
    pm25 = np.array([np.nan] * len(PM10_EDGES) + PM25_EDGES + PM25_EDGES)
    scores = levels.score(fine_dust.grade_index(pm10, pm25))
    assert Levels.level(scores).tolist() == fine_dust.grade(pm10, pm25).tolist()
    # Every pair on a grid: the score's quarter is the reported grade (the worse of the two).
    a, b = np.meshgrid(np.arange(0, 400, 0.5), np.arange(0, 200, 0.5))
    assert (Levels.level(levels.score(fine_dust.grade_index(a.ravel(), b.ravel())))
            == fine_dust.grade(a.ravel(), b.ravel())).all()
    assert fine_dust.grade_index([300.0], [np.nan])[0] == 100 and fine_dust.grade_index([0.0], [0.0])[0] == 0


def test_combine_finds_cells_by_id_not_by_order(src, cells):
    spec = fine_dust.SPEC
    rows = spec.build_rows(src, spec.serving.requests(src, cells.iloc[:3], spec.serving.now(src), {}))
    pred = np.arange(len(rows), dtype=float) * 10
    shuffled = rows.iloc[::-1].reset_index(drop=True)
    a = spec.serving.combine(rows, pred).set_index("cell_id")
    b = spec.serving.combine(shuffled, pred[::-1]).set_index("cell_id").loc[a.index]
    assert np.allclose(a["value"], b["value"]) and (a["cause"] == b["cause"]).all()


# --- the cached lookups behind the online path -----------------------------------------------------


def test_event_index_counts_like_brute_force():
    rng = np.random.default_rng(0)
    base = pd.Timestamp("2021-01-01")
    groups = rng.integers(0, 5, 300)
    times = base + pd.to_timedelta(rng.integers(0, 500, 300), unit="h")
    weights = rng.uniform(0, 3, 300)
    q_groups = rng.integers(-1, 6, 200)
    lo = base + pd.to_timedelta(rng.integers(-10, 500, 200), unit="h")
    hi = lo + pd.to_timedelta(rng.integers(0, 100, 200), unit="h")
    index = ts.EventIndex(groups, times, weights)
    for closed in ("left", "right"):
        got = index.count(q_groups, lo, hi, closed)
        for i in range(200):
            inside = (times >= lo[i]) & (times < hi[i]) if closed == "left" else (times > lo[i]) & (times <= hi[i])
            assert got[i] == pytest.approx(weights[(groups == q_groups[i]) & inside].sum())


def test_hourly_array_answers_like_lookup():
    hours = pd.date_range("2021-01-01", periods=48, freq="h")
    wide = pd.DataFrame(np.arange(96, dtype=float).reshape(48, 2), index=hours, columns=[10, 20])
    wide.iloc[3, 0] = np.nan
    times = [hours[3], hours[5] + pd.Timedelta(minutes=30), hours[0] - pd.Timedelta(hours=1), hours[47], pd.NaT]
    keys = [10, 20, 10, 30, 20]
    arr = ts.HourlyArray(wide)
    assert np.array_equal(arr.at(times, arr.column(keys)), ts.lookup(wide, times, keys), equal_nan=True)


def test_cell_positions(src, cells):
    ids = [cells["cell_id"].iloc[7], "NOT-A-CELL", cells["cell_id"].iloc[0]]
    assert ts.cell_positions(src, ids).tolist() == [7, -1, 0]
    many = np.tile(cells["cell_id"].to_numpy(), 20_000 // len(cells) + 1)
    assert (ts.cell_positions(src, many) == np.tile(np.arange(len(cells)), 20_000 // len(cells) + 1)).all()

"""Hotspot methods on four synthetic years of accident records over the small grid: the forecast table reads
nothing on or after ``as_of``, the Empirical Bayes estimate is the Highway Safety Manual's, more past
accidents never lower a cell's expectation, the back-test is nested, and the ranking answers for cells,
동 and districts alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.domains.traffic import forecast as fc
from features.errors import DataError
from features.sources import Sources
from serving import hotspot_report
from serving import hotspots as sh
from training import hotspots as hm

START, YEARS = pd.Timestamp("2019-01-01"), 4


def accidents(grid, rate: np.ndarray, start: pd.Timestamp, years: int, seed: int = 0) -> pd.DataFrame:
    """Canonical accident rows: Poisson counts per cell and year at ``rate`` (per year), uniform times."""
    rng = np.random.default_rng(seed)
    rows = []
    for y in range(years):
        lo = start + pd.DateOffset(years=y)
        span = ((lo + pd.DateOffset(years=1)) - lo).total_seconds()
        counts = rng.poisson(rate)
        pos = np.repeat(np.arange(len(rate)), counts)
        t = (lo + pd.to_timedelta(rng.random(len(pos)) * span, unit="s")).floor("h")
        rows.append(pd.DataFrame({"time": t, "pos": pos}))
    acc = pd.concat(rows, ignore_index=True).sort_values("time", ignore_index=True)
    cells = grid.cells.iloc[acc["pos"].to_numpy()]
    n = len(acc)
    serious = rng.binomial(1, 0.2, n)
    minor = 1 - serious
    return pd.DataFrame({
        "time": acc["time"].to_numpy(), "weather": "맑음", "district": cells["district"].to_numpy(),
        "road_type": rng.choice(["교차로 - 교차로안", "단일로 - 기타"], n), "surface": "건조",
        "accident_type": rng.choice(["차대차 - 추돌", "차대사람 - 횡단중"], n, p=[0.7, 0.3]),
        "deaths": 0, "serious": serious, "minor": minor, "reported": 0, "eclo": 5.0 * serious + 3.0 * minor,
        "lat": cells["lat"].to_numpy(), "lon": cells["lon"].to_numpy()})


@pytest.fixture(scope="module")
def city(small_data):
    small = Sources.from_settings(small_data)
    rng = np.random.default_rng(1)
    roads = small["static"].set_index("cell_id").reindex(small.grid.cells["cell_id"])
    exposure = (roads["road_km_arterial"] + 0.5 * roads["road_km_collector"]).to_numpy(float)
    rate = 2 + 20 * exposure / exposure.mean() * rng.lognormal(0, 0.5, len(exposure))
    taas = accidents(small.grid, rate, START, YEARS)
    return small, Sources.from_frames({"taas": taas, "static": small["static"]}, small.city), rate


def test_the_forecast_table_reads_nothing_on_or_after_as_of(city):
    small, src, rate = city
    as_of = pd.Timestamp("2021-07-01")
    later = accidents(small.grid, rate * 3, as_of, 1, seed=9)
    grown = Sources.from_frames({"taas": pd.concat([src["taas"][src["taas"]["time"] < as_of], later],
                                                   ignore_index=True), "static": src["static"]}, src.city)
    pd.testing.assert_frame_equal(fc.forecast_rows(src, as_of), fc.forecast_rows(grown, as_of))
    assert hm.screening(src, as_of).eb_rate == pytest.approx(hm.screening(grown, as_of).eb_rate)
    # training origins are labelled with years that end by as_of
    assert all(o + pd.DateOffset(years=1) <= as_of for o in fc.origins(src, as_of))
    assert fc.origins(src, as_of)[0] >= START + pd.DateOffset(years=1)


def test_empirical_bayes_is_the_manuals_weighting(city):
    _, src, _ = city
    s = hm.screening(src, pd.Timestamp("2022-01-01"))
    assert s.years == pytest.approx(3.0, abs=0.01) and s.k > 0 and not s.city_wide
    w = 1 / (1 + s.k * s.spf_rate * s.years)
    assert s.weight == pytest.approx(w)
    assert s.eb_rate == pytest.approx((w * s.spf_rate * s.years + (1 - w) * s.observed) / s.years)
    lo, hi = np.minimum(s.spf_rate, s.observed / s.years), np.maximum(s.spf_rate, s.observed / s.years)
    assert ((s.eb_rate >= lo - 1e-9) & (s.eb_rate <= hi + 1e-9)).all()  # between the function and the count


def test_without_static_layers_the_function_is_city_wide(city):
    _, src, _ = city
    bare = Sources.from_frames({"taas": src["taas"]}, src.city)
    s = hm.screening(bare, pd.Timestamp("2022-01-01"))
    assert s.city_wide and np.allclose(s.spf_rate, s.spf_rate[0])
    assert set(fc.not_applicable(bare)) == set(fc.STATIC)
    result = sh.rank(bare, "2023-01-01", "2024-01-01", method="model")
    assert any("city-wide" in n for n in result.notes)
    assert result.method == "model" and result.ranked["expected_accidents"].gt(0).all()


def test_more_past_accidents_never_lower_a_cells_expectation(city):
    _, src, _ = city
    as_of = pd.Timestamp("2023-01-01")
    taas = src["taas"]
    first = taas.iloc[[0]]
    cell = src.grid.cells.iloc[int(src.grid.locate(first["lat"].to_numpy(), first["lon"].to_numpy())[0])]
    extra = pd.concat([first.assign(time=pd.Timestamp("2022-06-01 10:00"))] * 30, ignore_index=True)
    more = Sources.from_frames({"taas": pd.concat([taas, extra]).sort_values("time", ignore_index=True),
                                "static": src["static"]}, src.city)
    pos = int(np.flatnonzero(src.grid.cells["cell_id"].to_numpy() == cell["cell_id"])[0])
    base, grown = hm.fit(src, as_of), hm.fit(more, as_of)
    for method in ("eb", "counts", "counts_3y", "model"):
        assert grown.rates[method][pos] > base.rates[method][pos], method


def test_the_back_test_is_nested_and_the_choice_says_why(city):
    _, src, _ = city
    results = hm.backtest(src)
    assert sorted(results["as_of"].unique()) == [pd.Timestamp("2020-01-01"), pd.Timestamp("2021-01-01"),
                                                  pd.Timestamp("2022-01-01")]
    first = results[results["as_of"] == pd.Timestamp("2020-01-01")].set_index("method")
    assert not first.loc["model", "fitted"] and first.loc["eb", "fitted"]  # the model needs two years
    fitted = results[results["fitted"]]
    assert fitted[["top5_accidents", "top5_eclo", "top100_accidents"]].apply(lambda c: c.between(0, 1)).all().all()
    assert (fitted["top5_accidents_lo"] <= fitted["top5_accidents"]).all()
    assert (fitted["top5_accidents"] <= fitted["top5_accidents_hi"]).all()
    method, reason = hm.choose(results[results["as_of"] < pd.Timestamp("2022-01-01")])
    assert method in hm.METHODS and "2021" in reason and "2022" not in reason
    # the service chooses on the years complete before as_of only
    until = hm.backtest(src, until=pd.Timestamp("2022-01-01"), consistency=False, bootstrap=False)
    assert until["as_of"].max() == pd.Timestamp("2021-01-01") and "mct" not in until


def test_a_past_period_is_ranked_as_at_its_start_and_compared_with_what_happened(city):
    _, src, _ = city
    result = sh.rank(src, "2022-01-01", "2022-04-01")
    assert result.as_of == pd.Timestamp("2022-01-01") and result.observed_through == pd.Timestamp("2022-04-01")
    assert 0.2 < result.exposure_years < 0.3
    # mid-year as_of: the day-of-year profile counts whole years only (here uniform: a quarter is a quarter)
    assert fc.exposure_years(src, "2022-07-01", "2022-07-01", "2022-10-01") == pytest.approx(92 / 365.25, rel=0.05)
    assert fc.exposure_years(src, "2022-07-01", "2023-01-01", "2023-04-01") == pytest.approx(90 / 365.25, rel=0.05)
    observed = result.ranked["observed_accidents"].sum()
    assert result.ranked["expected_accidents"].sum() == pytest.approx(observed, rel=0.15)
    dong = sh.rank(src, "2022-01-01", "2022-04-01", group="dong")
    assert dong.ranked["expected_accidents"].sum() == pytest.approx(result.ranked["expected_accidents"].sum())
    assert dong.ranked["cells"].sum() == len(src.grid.cells)


@pytest.mark.parametrize("kwargs, column", [
    ({"start": "2023-02-01", "end": "2023-03-01", "as_of": "2023-02-02"}, "as_of"),
    ({"start": "2023-02-01", "end": "2023-03-01", "as_of": "2019-06-01"}, "as_of"),
    ({"start": "2024-02-01", "end": "2024-03-01", "as_of": "2023-06-01"}, "as_of"),  # after the record ends
    ({"start": "2019-06-01", "end": "2019-07-01"}, "period.from"),
    ({"start": "2023-02-01", "end": "2023-01-01"}, "period.to"),
    ({"start": "2026-01-01", "end": "2026-02-01"}, "period.from"),
])
def test_bad_questions_name_the_field(city, kwargs, column):
    _, src, _ = city
    with pytest.raises(DataError) as err:
        sh.rank(src, **kwargs)
    assert err.value.column == column


def test_the_monthly_report_says_what_changed(city, tmp_path):
    _, src, _ = city
    first = hotspot_report.write(src, "2022-11-01", tmp_path, as_of="2022-10-01")
    assert "No earlier report" in first.read_text(encoding="utf-8")
    second = hotspot_report.write(src, "2023-01-01", tmp_path).read_text(encoding="utf-8")
    assert "Against 2022-11:" in second and "## Districts" in second
    listed = pd.read_csv(tmp_path / "hotspots_report_2023-01.csv", encoding="utf-8-sig")
    assert listed.groupby("district")["district_rank"].max().le(hotspot_report.PER_DISTRICT).all()
    assert listed["dominant_type"].notna().all()


def test_fits_are_kept_per_data_not_per_snapshot(city):
    _, src, _ = city
    as_of = pd.Timestamp("2022-01-01")
    # a service taking new weather rows holds a new Sources with the same accidents: the fit is kept
    same = src.replaced({"asos": pd.DataFrame({"station_id": [1], "time": [as_of]})})
    assert fc.fingerprint(same) == fc.fingerprint(src) and hm.fit(same, as_of) is hm.fit(src, as_of)
    fewer = Sources.from_frames({"taas": src["taas"].iloc[:-1], "static": src["static"]}, src.city)
    assert fc.fingerprint(fewer) != fc.fingerprint(src) and hm.fit(fewer, as_of) is not hm.fit(src, as_of)


def test_records_off_the_grid_or_a_gap_in_them_are_named_not_a_crash(city):
    _, src, _ = city
    taas = src["taas"]
    away = Sources.from_frames({"taas": taas.assign(lat=10.0, lon=10.0)}, src.city)
    with pytest.raises(DataError) as err:
        sh.rank(away, "2023-01-01", "2023-02-01")
    assert err.value.column == "taas" and "grid" in err.value.message
    # nothing recorded in the three years before as_of: no function to fit, said so
    gap = taas[(taas["time"] < pd.Timestamp("2019-02-01")) | (taas["time"] >= pd.Timestamp("2022-03-01"))]
    holed = Sources.from_frames({"taas": gap, "static": src["static"]}, src.city)
    with pytest.raises(DataError) as err:
        sh.rank(holed, "2022-02-01", "2022-03-01")
    assert err.value.column == "as_of" and "no accident" in err.value.message

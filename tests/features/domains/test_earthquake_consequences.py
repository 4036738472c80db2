"""Earthquake consequences and retrofit priorities: physical sense, hand-checked figures, the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.domains import earthquake as eq
from features.domains.earthquake import consequences as cq
from features.domains.earthquake import retrofit as rf
from features.domains.earthquake import seismic
from features.sources import Sources
from urban_safety.cli import app

WEST_COAST = {"magnitude": 5.5, "epicentre_lat": 37.45, "epicentre_lon": 126.45, "depth_km": 10.0}
COUNTS = ("buildings", *cq.STATES, "loss_krw", *cq.SEVERITIES)


@pytest.fixture(scope="module")
def src(small_data) -> Sources:
    return Sources.from_settings(small_data)


def _one_cell_register(src, buildings: list[dict]) -> tuple[Sources, int]:
    """``src`` with a register of only ``buildings``, all in the most populous cell (returned by position)."""
    cells = src.grid.cells.reset_index(drop=True)
    pos = int(np.argmax(pd.Series(src.static["pop_night"]).reindex(cells["cell_id"]).to_numpy()))
    base = src["buildings"].iloc[:1]
    rows = [base.assign(lat=cells.loc[pos, "lat"], lon=cells.loc[pos, "lon"], other_structure=None,
                        seismic_design=pd.array([b.pop("seismic_design", pd.NA)], dtype="boolean"), **b)
            for b in buildings]
    return src.override("buildings", pd.concat(rows, ignore_index=True)), pos


def _at_least(frame: pd.DataFrame) -> np.ndarray:
    """Buildings at or past each state (the cumulative counts that must grow with shaking)."""
    states = frame[list(cq.STATES)].to_numpy()
    return np.cumsum(states[:, ::-1], axis=1)[:, ::-1]


# --- constants -------------------------------------------------------------------------------------


def test_ratios_and_casualty_rates_never_fall_as_damage_worsens():
    for occ, ratios in cq.DAMAGE_RATIOS.items():
        assert np.all(np.diff(ratios) > 0) and ratios[-1] < 1, occ
    assert cq.DAMAGE_RATIOS["RES1"] == (0.005, 0.023, 0.117, 0.234)  # HAZUS Table 15.2
    assert np.all(np.diff(cq.CASUALTY_RATES, axis=1) >= 0)
    w1, c1l = (seismic.HAZUS_CLASSES.index(c) for c in ("W1", "C1L"))
    # Complete damage mixes no-collapse and collapse rates by the class's collapse rate (Tables 13.6-13.8).
    assert cq.CASUALTY_RATES[w1, 3] == pytest.approx(np.array([6.05, 1.57, 0.0997, 0.1597]) / 100)
    assert cq.CASUALTY_RATES[c1l, 3, 0] == pytest.approx((0.87 * 5 + 0.13 * 40) / 100)


def test_occupancy_of_register_purposes():
    got = [cq.OCCUPANCIES[i] for i in cq.occupancy(["단독주택", "공동주택", "제2종근린생활시설", "업무시설", "공장",
                                                    "창고시설", "교육연구시설", None])]
    assert got == ["RES1", "RES3", "COM1", "COM4", "IND2", "COM2", "EDU1", "COM1"]


# --- one scenario ----------------------------------------------------------------------------------


def test_states_sum_to_at_most_the_buildings_and_agree_with_the_fragility_feature(src):
    at = eq.SERVING.now(src)
    cells = cq.cell_consequences(src, WEST_COAST, at)
    assert (cells[list(cq.STATES)].sum(axis=1) <= cells["buildings"] + 1e-9).all()
    assert (cells[list(COUNTS)] >= 0).all().all()
    requests = eq.SERVING.requests(src, src.grid.cells[["cell_id", "lat", "lon"]], at, WEST_COAST)
    rows = eq.build_rows(src, requests)
    assert (rows["n_buildings"].to_numpy() == cells["buildings"].to_numpy()).all()
    built = cells["buildings"].to_numpy() > 0
    moderate_plus = cells[list(cq.STATES[1:])].sum(axis=1).to_numpy()
    share = rows["fragility_damage_share"].to_numpy()
    # The model's feature is HAZUS's raw curve; the consequences add the spectral shape of an event below
    # M7 and Korea's capacity factor, which only ever raise the medians: never more damage than the feature.
    assert (moderate_plus[built] <= share[built] * cells["buildings"].to_numpy()[built] + 1e-9).all()
    assert moderate_plus.sum() > 0


def test_no_buildings_means_no_consequences(src):
    cells = cq.cell_consequences(src, {**WEST_COAST, "magnitude": 7.0})
    empty = cells["buildings"] == 0
    assert empty.any()
    assert (cells.loc[empty, list(COUNTS)] == 0).all().all()
    nothing = src.override("buildings", src["buildings"].iloc[:0])
    assert (cq.totals(cq.cell_consequences(nothing, WEST_COAST))[list(COUNTS)] == 0).all().all()


def test_more_magnitude_never_lowers_damage_loss_or_casualties(src):
    previous = None
    for magnitude in np.arange(4.0, 7.51, 0.25):
        cells = cq.cell_consequences(src, {**WEST_COAST, "magnitude": float(magnitude)})
        if previous is not None:
            assert (_at_least(cells) >= _at_least(previous) - 1e-9).all(), magnitude
            for col in ("loss_krw", *cq.SEVERITIES):
                assert (cells[col] >= previous[col] - 1e-9).all(), (magnitude, col)
        previous = cells


def test_a_closer_epicentre_never_lowers_a_cells_consequences(src):
    cells = src.grid.cells.reset_index(drop=True)
    built = cq.cell_consequences(src, WEST_COAST)["buildings"].to_numpy() > 0
    pos = int(np.flatnonzero(built)[0])
    lat, lon = cells.loc[pos, "lat"], cells.loc[pos, "lon"]
    previous = None
    for km in (150, 100, 60, 30, 15, 5, 0):  # due west of the cell, coming closer; then shallower
        for depth in ((20.0, 10.0, 2.0) if km == 0 else (10.0,)):
            scenario = {"magnitude": 6.0, "epicentre_lat": lat, "depth_km": depth,
                        "epicentre_lon": lon - km / (111.2 * np.cos(np.radians(lat)))}
            now = cq.cell_consequences(src, scenario).iloc[[pos]]
            if previous is not None:
                assert (_at_least(now) >= _at_least(previous) - 1e-9).all(), (km, depth)
                for col in ("loss_krw", *cq.SEVERITIES):
                    assert now[col].iloc[0] >= previous[col].iloc[0] - 1e-9, (km, depth, col)
            previous = now


def test_loss_of_a_hand_computed_building(src):
    one, pos = _one_cell_register(src, [dict(structure="철근콘크리트구조", purpose="단독주택", floor_area_m2=200.0,
                                             floors_above=2, approval_date=pd.Timestamp("1980-05-01"),
                                             seismic_design=False)])
    cells = cq.cell_consequences(one, WEST_COAST)
    gm = cq.motion(one, WEST_COAST)
    pga, beta = np.exp(gm["ln_pga"][pos]), np.hypot(seismic.FRAGILITY_BETA, gm["sigma"][pos])
    shape = np.exp(seismic.ln_shape_factor(gm["mw"][pos])[seismic.HAZUS_CLASSES.index("C1L")])
    medians = np.array(seismic.MEDIANS_G["C1L"][seismic.PRE_CODE]) * shape * cq.CAPACITY_FACTOR  # pre-1988 2-storey
    exceed = np.array([seismic.exceedance(pga, m, beta) for m in medians])
    states = exceed - np.append(exceed[1:], 0.0)
    cost = one.city.earthquake_costs.replacement()["RES1"]["concrete"]
    # HAZUS direct loss: structural (Table 15.2) + non-structural (15.3 + 15.4) + contents (15.5 x 50%).
    structural, nonstructural = (0.005, 0.023, 0.117, 0.234), (0.015, 0.077, 0.330, 0.766)
    ratios = np.add(structural, nonstructural) + 0.5 * np.array((0.01, 0.05, 0.25, 0.50))
    expected = 200.0 * cost * float(np.dot(states, ratios))
    assert cells.loc[pos, "loss_krw"] == pytest.approx(expected, rel=1e-9)
    assert cells[list(cq.STATES)].iloc[pos].to_numpy() == pytest.approx(states)
    assert cells["loss_krw"].sum() == pytest.approx(expected, rel=1e-9)


def test_day_and_night_populations_move_casualties_not_loss(src):
    night = cq.cell_consequences(src, WEST_COAST, population="night")
    day = cq.cell_consequences(src, WEST_COAST, population="day")
    assert np.allclose(night["loss_krw"], day["loss_krw"])
    assert cq.totals(night)["population"].iloc[0] != cq.totals(day)["population"].iloc[0]
    differs = ~np.isclose(night["severity_1"], day["severity_1"])
    assert differs.any()
    # At night the residents are at home: in a cell with homes, nobody is counted in its shops and offices.
    stock = cq.building_stock(src)
    everyone = np.ones(len(stock), dtype=bool)
    at_night, by_day = (cq.occupants(src, stock, everyone, p) for p in ("night", "day"))
    home = np.isin(stock.occupancy, cq.RESIDENTIAL)
    with_homes = np.isin(stock.cell, stock.cell[home])
    assert (at_night[with_homes & ~home] == 0).all() and (by_day[with_homes & ~home] > 0).any()
    with pytest.raises(ValueError, match="population"):
        cq.cell_consequences(src, WEST_COAST, population="noon")


def test_district_totals_add_up_to_the_city(src):
    cells = cq.cell_consequences(src, WEST_COAST)
    city, districts = cq.totals(cells), cq.totals(cells, by="district")
    for col in COUNTS:
        assert districts[col].sum() == pytest.approx(city[col].iloc[0])


def test_buildings_approved_later_do_not_count(src):
    everything = cq.totals(cq.cell_consequences(src, WEST_COAST))
    early = cq.totals(cq.cell_consequences(src, WEST_COAST, at=pd.Timestamp("1990-01-01")))
    assert early["buildings"].iloc[0] < everything["buildings"].iloc[0]
    assert early["loss_krw"].iloc[0] < everything["loss_krw"].iloc[0]


# --- retrofit ----------------------------------------------------------------------------------------


def test_scenario_set_rates_follow_the_catalogue(src):
    scenarios = rf.scenario_set(src, 40)
    assert 4 <= len(scenarios) <= 40 and (scenarios["rate_per_year"] > 0).all()
    cat = src["quakes"]
    mags, times = cat["magnitude"].to_numpy(float), pd.to_datetime(cat["time"])
    years = (times.max() - times.min()).total_seconds() / (365.25 * 86400)
    b, m_c = rf.quakes.b_value(mags, m_min=mags.min()), mags.min()
    lo, hi = rf.quakes.SCENARIO_ML
    expected = len(cat) / years * (10 ** (-b * (lo - m_c)) - 10 ** (-b * (hi - m_c)))
    assert scenarios["rate_per_year"].sum() == pytest.approx(expected)
    with pytest.raises(ValueError, match="scenarios"):
        rf.scenario_set(src, 3)


def test_the_quadrature_converges_and_draws_nothing(src):
    """Expected annual loss and casualties hardly move from 300 to 1,000 scenarios; nothing is drawn."""
    def annual(count):
        ranked = rf.priorities(src, rf.scenario_set(src, count))
        return ranked["expected_annual_loss_krw"].sum(), ranked["expected_annual_casualties"].sum()
    coarse, fine = annual(300), annual(1000)
    assert coarse[0] == pytest.approx(fine[0], rel=0.05) and coarse[1] == pytest.approx(fine[1], rel=0.05)
    assert annual(300) == coarse


def test_retrofit_of_a_pre_code_building_avoids_more_than_of_a_high_code_one(src):
    old = dict(structure="벽돌구조", purpose="단독주택", floor_area_m2=150.0, floors_above=2,
               approval_date=pd.Timestamp("1975-01-01"), seismic_design=False)
    new = dict(structure="철근콘크리트구조", purpose="단독주택", floor_area_m2=150.0, floors_above=2,
               approval_date=pd.Timestamp("2020-01-01"), seismic_design=True)
    two, _ = _one_cell_register(src, [old, new])
    ranked = rf.priorities(two, rf.scenario_set(two, 40)).set_index("building_id")
    assert ranked.loc[0, "code_level"] == "pre_code" and ranked.loc[1, "code_level"] == "high_code"
    assert ranked.loc[0, "avoided_annual_loss_krw"] > 0 and ranked.loc[0, "avoided_annual_casualties"] > 0
    assert ranked.loc[1, "avoided_annual_loss_krw"] == pytest.approx(0, abs=1e-9)
    assert ranked.loc[1, "avoided_annual_casualties"] == pytest.approx(0, abs=1e-12)
    assert ranked.loc[0, "rank"] == 1
    assert ranked.loc[0, "retrofit_cost_krw"] == 150.0 * two.city.earthquake_costs.retrofit_krw_per_m2


def test_retrofit_ranking_is_sorted_and_complete(src):
    ranked = rf.priorities(src, rf.scenario_set(src, 40), by="casualties")
    assert len(ranked) == len(cq.building_stock(src))
    assert ranked["avoided_annual_casualties"].is_monotonic_decreasing
    assert (ranked["avoided_annual_loss_krw"] <= ranked["expected_annual_loss_krw"] + 1e-6).all()
    for col in ("building_id", "address", "structure", "floors_above", "floor_area_m2", "purpose", "approval_date",
                "code_level", "hazus_class", "cell_id", "district"):
        assert col in ranked


def test_retrofit_command_writes_the_ranked_csv_and_a_summary(small_data, tmp_path):
    env = _env(small_data)
    out = tmp_path / "priorities.csv"
    result = CliRunner().invoke(app, ["retrofit", "--scenarios", "40", "--top", "5", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    ranked = pd.read_csv(out)
    assert ranked["rank"].tolist()[:5] == [1, 2, 3, 4, 5]
    assert ranked["avoided_annual_loss_krw"].is_monotonic_decreasing
    assert "programme cost" in result.output and "expected annual loss" in result.output
    bad = CliRunner().invoke(app, ["retrofit", "--scenarios", "2"], env=env)
    assert bad.exit_code == 2 and "--scenarios" in bad.output


def _env(small_data) -> dict:
    return {"URBAN_SAFETY_DATA_DIR": str(small_data.data_dir), "URBAN_SAFETY_GRID_M": str(small_data.grid_m),
            "URBAN_SAFETY_YEARS": str(small_data.years), "URBAN_SAFETY_START": str(small_data.start),
            "URBAN_SAFETY_SEED": str(small_data.seed), "COLUMNS": "250"}


def test_scenario_command_prints_the_totals_of_post_scenario(small_data, src):
    import json

    args = ["scenario", "--magnitude", "5.5", "--lat", "37.45", "--lon", "126.45", "--depth", "10"]
    result = CliRunner().invoke(app, [*args, "--json"], env=_env(small_data))
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    expected = cq.report(src, WEST_COAST, "ML", None, "night")["city"]
    for q in ("deaths", "injuries", "displaced", "loss_krw"):
        assert set(body[q]) == {"mean", "p05", "p95"}
        assert body[q]["mean"] == pytest.approx(expected[q]) and body[q]["p05"] <= body[q]["p95"]
    assert body["magnitude"]["type"] == "ML" and body["districts"]
    table = CliRunner().invoke(app, ["scenario", "--ready", "1", "--population", "day"], env=_env(small_data))
    assert table.exit_code == 0 and "city" in table.output and "5-95%" in table.output, table.output


@pytest.mark.parametrize("args, named", [
    (["--magnitude", "9.9", "--lat", "37.45", "--lon", "126.45"], "--magnitude"),
    (["--magnitude", "5.5", "--lat", "37.45", "--lon", "126.45", "--depth", "150"], "--depth"),
    (["--magnitude", "5.5", "--lat", "33.2", "--lon", "125.0"], "300 km"),
    (["--magnitude", "5.5", "--lat", "37.45"], "--lon"),
    (["--ready", "Atlantis"], "ready:"),
])
def test_scenario_command_refuses_with_the_field(small_data, args, named):
    result = CliRunner().invoke(app, ["scenario", *args], env=_env(small_data))
    assert result.exit_code == 1 and named in result.output, result.output


def test_a_few_cells_answer_as_the_whole_city_does(src):
    everywhere = cq.cell_consequences(src, WEST_COAST)
    some = [int(p) for p in np.flatnonzero(everywhere["buildings"].to_numpy() > 0)[:3]]
    few = cq.cell_consequences(src, WEST_COAST, positions=[*some, some[0], -1])
    pd.testing.assert_frame_equal(few.loc[some, list(COUNTS)], everywhere.loc[some, list(COUNTS)])
    assert (few.drop(index=some)[list(COUNTS)] == 0).all().all()


def test_city_costs_refuse_unknown_keys_naming_them(tmp_path):
    from features.city import CITIES_DIR, load_city
    from features.errors import DataError

    text = (CITIES_DIR / "incheon.toml").read_text(encoding="utf-8")
    assert load_city("incheon").earthquake_costs.retrofit_krw_per_m2 == 250_000
    bad = tmp_path / "city.toml"
    bad.write_text(text.replace("RES1 = { concrete", "RES1 = { concret"), encoding="utf-8")
    with pytest.raises(DataError, match=r"(?s)earthquake_costs.*unknown structure family .concret."):
        load_city(str(bad))

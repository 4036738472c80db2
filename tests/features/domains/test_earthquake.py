"""Earthquake domain: seismic physics, as-of building stock, and the one feature path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.city import load_city
from features.domains import earthquake as eq
from features.domains.earthquake import seismic
from features.sources import Sources

# --- seismic functions ---------------------------------------------------------------------------


@pytest.mark.parametrize(("approved", "floors", "area", "level"), [
    ("1988-02-29", 10, 5_000, seismic.PRE_CODE),  # before the first code
    ("1988-03-01", 6, 5_000, seismic.HIGH_CODE),  # >= 6 storeys designed from 1988
    ("1988-03-01", 5, 5_000, seismic.LOW_CODE),  # code era, but not required to be designed
    ("1990-06-01", 1, 120_000, seismic.HIGH_CODE),  # >= 100,000 m2 designed from 1988
    ("2005-06-30", 4, 900, seismic.LOW_CODE),  # 3-5 storeys only from 2005
    ("2005-07-01", 3, 900, seismic.HIGH_CODE),
    ("2005-07-01", 1, 1_000, seismic.HIGH_CODE),  # >= 1,000 m2 from 2005
    ("2015-08-31", 1, 600, seismic.LOW_CODE),  # 500 m2 only from 2015
    ("2015-09-01", 1, 600, seismic.HIGH_CODE),
    ("2016-06-01", 2, 300, seismic.LOW_CODE),  # 2 storeys from 2017
    ("2017-02-04", 2, 300, seismic.HIGH_CODE),
    ("2017-11-30", 1, 300, seismic.LOW_CODE),  # 200 m2 only from December 2017
    ("2017-12-01", 1, 300, seismic.HIGH_CODE),
    ("2020-01-01", 1, 80, seismic.LOW_CODE),  # a small one-storey shop is never required
    (None, 10, 5_000, seismic.PRE_CODE),  # undated: assume old
])
def test_code_level_follows_the_rule_years(approved, floors, area, level):
    assert seismic.code_level(pd.Series([approved], dtype="datetime64[ns]"), [floors], [area])[0] == level


def test_all_new_houses_are_designed_from_december_2017():
    dates = pd.to_datetime(pd.Series(["2017-11-30", "2017-12-01", "2017-12-01"]))
    levels = seismic.code_level(dates, [1, 1, 1], [80, 80, 80], purpose=["단독주택", "단독주택", "창고시설"])
    assert levels.tolist() == [seismic.LOW_CODE, seismic.HIGH_CODE, seismic.LOW_CODE]


def test_seismic_design_flag_overrides_the_rule():
    dates = pd.to_datetime(pd.Series(["1995-01-01", "1980-01-01", "2020-01-01", "2020-01-01", None]))
    flags = pd.array([True, True, False, pd.NA, True], dtype="boolean")
    levels = seismic.code_level(dates, [2, 2, 10, 10, 2], [100, 100, 5_000, 5_000, 100], flags)
    assert levels.tolist() == [seismic.HIGH_CODE] * 2 + [seismic.LOW_CODE, seismic.HIGH_CODE, seismic.HIGH_CODE]


def test_structure_families_classes_and_piloti():
    names = ["철근콘크리트구조", "철골철근콘크리트구조", "벽돌구조", "블록구조", "철골구조", "일반목구조", None, "기타"]
    got = [seismic.FAMILIES[i] for i in seismic.structure_family(names)]
    assert got == ["concrete", "concrete", "masonry", "masonry", "steel", "wood", "other", "other"]
    classes = seismic.hazus_class(["철근콘크리트구조", "철근콘크리트구조", "철골철근콘크리트구조", "벽돌구조", "벽돌구조",
                                   "경량철골구조", "철골구조", "일반목구조", None], [3, 5, 20, 2, 3, 1, 9, 2, 1])
    assert [seismic.HAZUS_CLASSES[c] for c in classes] == [
        "C1L", "C1M", "C1H", "URML", "URMM", "S3", "S1H", "W1", "C1L"]
    assert seismic.is_piloti(["필로티", "철근콘크리트조 필로티구조", None, "없음"]).tolist() == [True, True, False, False]


def test_piloti_is_one_level_worse():
    c1l = seismic.HAZUS_CLASSES.index("C1L")
    groups = seismic.fragility_group([c1l] * 3, [2, 2, 0], [False, True, True])
    assert [seismic.FRAGILITY_GROUPS[g] for g in groups] == [("C1L", 2), ("C1L", 1), ("C1L", 0)]


def test_fragility_medians_as_in_design():
    assert seismic.MEDIANS_G["C1L"] == ((0.10, 0.12, 0.21, 0.36), (0.12, 0.15, 0.27, 0.45),
                                        (0.21, 0.35, 0.70, 1.37))
    assert seismic.MEDIANS_G["URML"][seismic.LOW_CODE] == (0.14, 0.20, 0.32, 0.46)
    for medians in seismic.MEDIANS_G.values():  # states in order of severity
        assert all(np.all(np.diff(m) > 0) for m in medians)
    assert seismic.FRAGILITY_BETA == 0.64
    # At the median PGA the probability of reaching the state is one half.
    assert seismic.exceedance(0.35, 0.35) == pytest.approx(0.5)
    mods = dict(zip(seismic.FRAGILITY_GROUPS, seismic.moderate_medians(), strict=True))
    assert mods[("C1L", seismic.HIGH_CODE)] == 0.35


def test_fragility_is_monotone_in_pga_and_code_level():
    ln_pga = np.log(np.linspace(0.01, 2.0, 50))
    for g in range(len(seismic.FRAGILITY_GROUPS)):
        shares = np.zeros((50, len(seismic.FRAGILITY_GROUPS)))
        shares[:, g] = 1.0
        share = seismic.fragility_share(ln_pga, shares)
        assert np.all(np.diff(share) > 0) and 0 < share[0] < share[-1] < 1
    medians = seismic.moderate_medians().reshape(len(seismic.HAZUS_CLASSES), 3)
    assert np.all(np.diff(medians, axis=1) > 0)  # better code -> higher median
    n_groups = len(seismic.FRAGILITY_GROUPS)
    assert np.isnan(seismic.fragility_share([0.0], np.full((1, n_groups), np.nan))[0])  # no buildings


def test_ground_motion_sizes_and_distances():
    gm = seismic.ground_motion(5.5, 37.5, 126.6, 12.0, 37.5, 126.6, 760.0)
    assert gm["epi_km"] == pytest.approx(0.0) and gm["hypo_km"] == pytest.approx(12.0)
    # Plausible size: an ML 5.5 right under a rock site is a few tenths of g.
    assert 0.1 < np.exp(gm["ln_pga"]) < 0.5
    assert gm["ln_pga"] == pytest.approx(gm["ln_pga_rock"])  # 760 m/s is BSSA14's reference rock


# --- the domain on hand-built frames -------------------------------------------------------------

CITY = load_city("incheon", grid_m=2000)


def _sources(n_buildings: int = 4000, seed: int = 0) -> Sources:
    src = Sources("/nonexistent", CITY)
    cells = src.grid.cells
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(cells), n_buildings)
    buildings = pd.DataFrame({
        "sgg_cd": 28110, "purpose": "공동주택",
        "structure": rng.choice(["철근콘크리트구조", "벽돌구조", "철골구조", "일반목구조", "기타"], n_buildings),
        "other_structure": rng.choice(np.array([None, "필로티"], dtype=object), n_buildings, p=[0.85, 0.15]),
        "floor_area_m2": rng.uniform(50, 3_000, n_buildings),
        "floors_above": rng.integers(1, 15, n_buildings), "floors_below": 0, "height_m": 10.0,
        "approval_date": pd.Timestamp("1970-01-01") + pd.to_timedelta(rng.integers(0, 20_000, n_buildings), "D"),
        "seismic_design": pd.array(rng.choice(np.array([True, False, None], dtype=object), n_buildings),
                                   dtype="boolean"),
        "seismic_ability": None,
        "lat": cells["lat"].to_numpy()[pick] + rng.uniform(-0.005, 0.005, n_buildings),
        "lon": cells["lon"].to_numpy()[pick] + rng.uniform(-0.005, 0.005, n_buildings),
    })
    buildings.loc[::40, "approval_date"] = pd.NaT
    n_sc, per = 6, 25
    surveys = pd.DataFrame({
        "scenario_id": [f"S{k:04d}" for k in range(n_sc) for _ in range(per)],
        "time": np.repeat(pd.date_range("2021-01-01", periods=n_sc, freq="60D"), per),
        "magnitude": np.repeat(rng.uniform(4.0, 6.5, n_sc), per),
        "depth_km": np.repeat(rng.uniform(5, 20, n_sc), per),
        "lat": np.repeat(rng.uniform(37.3, 37.6, n_sc), per),
        "lon": np.repeat(rng.uniform(126.3, 126.8, n_sc), per),
        "cell_id": rng.choice(cells["cell_id"].to_numpy(), n_sc * per),
        "buildings": rng.integers(5, 50, n_sc * per),
    })
    surveys["damaged"] = surveys["buildings"] // 3
    static = pd.DataFrame({"cell_id": cells["cell_id"], "vs30_mps": rng.uniform(200, 900, len(cells))})
    return (src.override("buildings", buildings).override("damage_surveys", surveys)
            .override("static", static))


@pytest.fixture(scope="module")
def src() -> Sources:
    return _sources()


@pytest.fixture(scope="module")
def table(src) -> pd.DataFrame:
    return eq.build_table(src)


def test_table_has_the_spec_columns_and_labels(src, table):
    spec = eq.SPEC
    # The epicentre rides along as a request column: the model sees it only through distances and motion.
    assert list(table.columns) == [*spec.keys, spec.time, "epicentre_lat", "epicentre_lon", *spec.features,
                                   spec.target, spec.weight]
    assert not {"epicentre_lat", "epicentre_lon"} & set(spec.features)
    surveys = src["damage_surveys"]
    assert len(table) == len(surveys)
    assert table["damage_share"].between(0, 1).all()
    assert table["weight"].sum() == surveys["buildings"].sum()
    shares = table[list(eq.features.LEVEL_SHARES)].sum(axis=1)
    assert np.allclose(shares[table["n_buildings"] > 0], 1.0)
    assert table["fragility_damage_share"].dropna().between(0, 1).all()


def test_build_rows_reproduces_table_rows(src, table):
    rows = table.sample(12, random_state=1)
    requests = rows[[*eq.SPEC.keys, eq.SPEC.time, *eq.SPEC.conditions]]
    again = eq.build_rows(src, requests)
    pd.testing.assert_frame_equal(again[list(eq.SPEC.features)].reset_index(drop=True),
                                  rows[list(eq.SPEC.features)].reset_index(drop=True))


def test_stock_as_of_matches_a_direct_count(src):
    buildings = src["buildings"]
    cell = src.grid.cell_ids(buildings["lat"], buildings["lon"])
    cell_ids = pd.Series(cell).value_counts().index[:5].tolist()
    times = pd.to_datetime(["1980-01-01", "2000-06-15", "2030-01-01"])
    stock = eq.features.BuildingStock(buildings, src.grid)
    for cid in cell_ids:
        got = stock.as_of([cid] * 3, times)
        for i, t in enumerate(times):
            mine = buildings[(cell == cid) & ~(buildings["approval_date"] > t)]
            assert got.loc[i, "n"] == len(mine)
            assert got.loc[i, "floors"] == mine["floors_above"].sum()
            assert got.loc[i, "piloti"] == seismic.is_piloti(mine["other_structure"]).sum()


def test_buildings_approved_after_the_scenario_do_not_count(src):
    cell = src.grid.cells.iloc[3]
    t = pd.Timestamp("2021-03-01 12:00")
    request = pd.DataFrame({"scenario_id": ["X"], "cell_id": [cell["cell_id"]], "time": [t], "magnitude": [5.5],
                            "epicentre_lat": [37.5], "epicentre_lon": [126.5], "depth_km": [10.0]})
    before = eq.build_rows(src, request)
    new = src["buildings"].iloc[:3].assign(lat=cell["lat"], lon=cell["lon"], structure="벽돌구조",
                                          approval_date=[t + pd.Timedelta(seconds=1), t + pd.Timedelta(days=30),
                                                         pd.Timestamp("2030-01-01")])
    later = src.override("buildings", pd.concat([src["buildings"], new], ignore_index=True))
    pd.testing.assert_frame_equal(eq.build_rows(later, request), before)
    # The same buildings, approved at t, do count.
    now = src.override("buildings", pd.concat([src["buildings"], new.assign(approval_date=t)], ignore_index=True))
    assert eq.build_rows(now, request)["n_buildings"].iloc[0] == before["n_buildings"].iloc[0] + 3


def test_requests_for_any_scenario_and_cell(src):
    cells = src.grid.cells["cell_id"].iloc[:4].tolist() + ["NOT-A-CELL"]
    request = pd.DataFrame({"scenario_id": "what-if", "cell_id": cells, "time": pd.Timestamp("2024-01-01"),
                            "magnitude": 6.0, "epicentre_lat": 37.45, "epicentre_lon": 126.6,
                            "depth_km": [8.0, 8.0, np.nan, 8.0, 8.0]})
    rows = eq.build_rows(src, request)
    assert len(rows) == 5 and list(rows.columns[-len(eq.FEATURES):]) == list(eq.FEATURES)
    assert rows["n_buildings"].iloc[-1] == 0 and np.isnan(rows["fragility_damage_share"].iloc[-1])
    assert rows["hypo_dist_km"].iloc[2] >= rows["epi_dist_km"].iloc[2]  # default depth used
    stronger = eq.build_rows(src, request.assign(magnitude=6.5))
    assert (stronger["fragility_damage_share"].iloc[:4] > rows["fragility_damage_share"].iloc[:4]).all()


# --- the served answer: never below the physics in strong shaking --------------------------------


def _scenario_rows(src, magnitude: float, km: float, depth: float = 8.0, cells: int = 60) -> pd.DataFrame:
    """Feature rows (the real builder) of the ``cells`` most built-up cells, epicentre ``km`` north of each."""
    stock = eq.features.building_stock(src).as_of(src.grid.cells["cell_id"], [pd.NaT] * len(src.grid.cells))
    pick = src.grid.cells.iloc[np.argsort(-stock["n"].to_numpy(), kind="stable")[:cells]]
    return eq.build_rows(src, pd.DataFrame({
        "scenario_id": "floor", "cell_id": pick["cell_id"].to_numpy(), "time": pd.Timestamp("2024-01-01"),
        "magnitude": magnitude, "epicentre_lat": pick["lat"].to_numpy() + km / 111.2,
        "epicentre_lon": pick["lon"].to_numpy(), "depth_km": depth}))


def test_strong_shaking_raises_a_low_prediction_to_the_physics_floor(src):
    rows = _scenario_rows(src, magnitude=7.0, km=0.0)
    pga = np.exp(rows["ln_pga_site"].to_numpy())
    assert (pga >= eq.serving.STRONG_SHAKING_G).all() and (rows["n_buildings"] > 0).all()
    bad = np.full(len(rows), 0.01)  # a model that misses the damage entirely
    answer = eq.serving.serving_combine(rows, bad)
    floor = rows["fragility_floor_share"].to_numpy()
    assert (floor > 0.3).all()  # the physics says heavy damage at M7 under the cell
    assert np.allclose(answer["value"], floor)
    assert all(d["physics_floor"] == pytest.approx(f, abs=1e-4) for d, f in zip(answer["details"], floor, strict=True))
    assert all(n == [eq.serving.FLOOR_NOTE] for n in answer["notes"])
    # A prediction above the floor is the answer as it is, with the floor shown and no note.
    good = np.minimum(floor + 0.05, 1.0)
    kept = eq.serving.serving_combine(rows, good)
    assert np.allclose(kept["value"], good) and kept["notes"].isna().all()
    assert kept["details"].iloc[0]["physics_floor"] is not None


def test_weak_shaking_is_the_model_alone(src):
    rows = _scenario_rows(src, magnitude=4.5, km=60.0)
    assert (np.exp(rows["ln_pga_site"]) < eq.serving.STRONG_SHAKING_G).all()
    pred = np.linspace(-0.1, 0.2, len(rows))
    answer = eq.serving.serving_combine(rows, pred)
    assert np.allclose(answer["value"], np.clip(pred, 0, 1))
    assert answer["notes"].isna().all() and all(d["physics_floor"] is None for d in answer["details"])
    value, floor, raised = eq.serving.apply_physics_floor(rows, pred)
    assert np.isnan(floor).all() and not raised.any()


def test_the_served_floor_never_falls_as_the_hazard_grows(src):
    """A model answering 0 everywhere: what is served is the floor alone, from weak to strong shaking."""
    def served(magnitude, km, depth=8.0):
        rows = _scenario_rows(src, magnitude, km, depth, cells=20)
        return eq.serving.serving_combine(rows, np.zeros(len(rows)))["value"].to_numpy()

    by_magnitude = np.array([served(m, 5.0) for m in np.arange(5.0, 8.01, 0.5)])
    by_distance = np.array([served(6.5, km) for km in (0.0, 5.0, 10.0, 20.0, 40.0, 80.0)])
    by_depth = np.array([served(6.5, 5.0, d) for d in (5.0, 15.0, 30.0, 60.0)])
    assert np.all(np.diff(by_magnitude, axis=0) >= -1e-12) and np.all(np.diff(by_distance, axis=0) <= 1e-12)
    assert np.all(np.diff(by_depth, axis=0) <= 1e-12)
    assert by_magnitude[0].max() < by_magnitude[-1].min()  # the floor switches on somewhere in between
    assert by_distance[-1].max() == 0.0  # weak shaking far away: nothing added


def test_a_missing_prediction_stays_missing(src):
    rows = _scenario_rows(src, magnitude=7.0, km=0.0, cells=3)
    assert np.isnan(eq.serving.serving_combine(rows, np.full(3, np.nan))["value"]).all()


def test_spec_registration():
    from features.registry import get_domain

    spec = get_domain("earthquake")
    assert spec is eq.SPEC and spec.feature_set_version == "earthquake-v5"
    assert set(spec.extra["units"]) == set(spec.conditions)


# --- the generated small data set ----------------------------------------------------------------


def test_small_data_table(small_data):
    src = Sources.from_settings(small_data)
    table = eq.build_table(src)
    assert len(table) == len(src["damage_surveys"]) > 0
    assert table[list(eq.FEATURES)].notna().all().all() or table["n_buildings"].eq(0).any()
    # Physics should already explain much of the damage: the fragility feature correlates with the label.
    corr = table[["fragility_damage_share", "damage_share"]].corr().iloc[0, 1]
    assert corr > 0.3

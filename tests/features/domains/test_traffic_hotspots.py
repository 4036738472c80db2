"""Traffic hotspots on the small data set with a small booster: the expected counts are the sums of the
per-slot predictions the service makes, the ranking follows ECLO or count, tiers follow their breakpoints
and the observed axes are the period's accidents."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from features.domains.traffic import hotspots as th
from features.registry import get_domain
from features.sources import Sources
from serving.engine import Engine, LoadedModel

START, END = pd.Timestamp("2021-06-01"), pd.Timestamp("2021-06-04")


@pytest.fixture(scope="module")
def parts(small_tables):
    spec = get_domain("traffic")
    rng = np.random.default_rng(0)
    X = rng.random((400, len(spec.features)))
    data = xgb.DMatrix(X, rng.poisson(0.2 + X[:, 0], 400), feature_names=list(spec.features))
    booster = xgb.train({"max_depth": 3, "objective": "count:poisson"}, data, 10)
    return Sources.from_settings(small_tables), booster


@pytest.fixture(scope="module")
def result(parts):
    src, booster = parts
    return th.hotspots(src, "xgboost", booster, START, END, by="eclo", top_n=10)


def test_expected_counts_are_the_sum_of_the_services_slot_predictions(parts, result):
    src, booster = parts
    engine = Engine(src, {"traffic": LoadedModel("xgboost", booster, {})})
    spec = get_domain("traffic")
    cells = engine.grid.cells[["cell_id", "lat", "lon", "district"]].reset_index(drop=True)
    slots = pd.date_range(START, END, freq="3h", inclusive="left")
    assert result.slots == len(slots) == 24
    total = np.zeros(len(cells))
    for at in slots:
        rows, answers = engine._predict(spec, engine.models["traffic"], cells, at, {})
        total += np.nan_to_num(answers["value"].reindex(cells["cell_id"]).to_numpy(float))
    got = result.cells.set_index("cell_id")["expected_accidents"].reindex(cells["cell_id"]).to_numpy()
    np.testing.assert_allclose(got, total, rtol=1e-5)


@pytest.mark.parametrize("by, key", [("eclo", "expected_eclo"), ("count", "expected_accidents")])
def test_ranked_by_eclo_or_count(parts, result, by, key):
    src, _ = parts
    expected = result.cells.set_index("cell_id")["expected_accidents"].reindex(src.grid.cells["cell_id"]).to_numpy()
    ranked = th.rank_cells(src, expected, START, by, END)
    assert (np.diff(ranked[key].to_numpy()) <= 0).all()
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    np.testing.assert_allclose(ranked["expected_eclo"], ranked["expected_accidents"] * ranked["eclo_per_accident"])
    if by == "eclo":
        assert ranked["cell_id"].tolist() == result.cells["cell_id"].tolist()


def test_tiers_follow_the_tercile_breakpoints_of_the_listed_cells(result):
    listed = result.top(10)
    for axis, (expected_col, observed_col) in th.AXES.items():
        for kind, col in (("expected", expected_col), ("observed", observed_col)):
            low, high = result.breakpoints[f"{kind}_{axis}"]
            assert (low, high) == pytest.approx(tuple(np.quantile(listed[col], th.TIER_QUANTILES)))
            values, tiers = result.cells[col].to_numpy(), result.cells[f"{kind}_{axis}_tier"].to_numpy()
            assert set(tiers) <= set(th.TIERS)
            assert (tiers == np.where(values > high, "high", np.where(values > low, "medium", "low"))).all()


def test_observed_axes_are_the_periods_accidents(parts, result):
    src, _ = parts
    raw = src["taas"]
    t = pd.to_datetime(raw["time"])
    inside = raw[(t >= START) & (t < END) & raw["lat"].notna()]
    cell = src.grid.cell_ids(inside["lat"].to_numpy(float), inside["lon"].to_numpy(float))
    inside, cell = inside[cell != None], cell[cell != None]  # noqa: E711 (an object array of ids)
    assert len(inside) > 0
    got = result.cells.set_index("cell_id")
    truth = inside.assign(cell_id=cell, severe=inside["deaths"] + inside["serious"],
                          all=inside[["deaths", "serious", "minor", "reported"]].sum(axis=1)
                          ).groupby("cell_id")[["eclo", "severe", "all"]].agg(["sum", "size"])
    assert got["observed_accidents"].sum() == len(inside)
    for cid, row in truth.iterrows():
        assert got.loc[cid, "observed_accidents"] == row[("eclo", "size")]
        assert got.loc[cid, "observed_eclo"] == pytest.approx(row[("eclo", "sum")])
        assert got.loc[cid, "observed_serious"] == row[("severe", "sum")]
        assert got.loc[cid, "observed_casualties"] == row[("all", "sum")]


def test_top_factors_name_features(result):
    spec = get_domain("traffic")
    assert set(result.factors) == set(result.top(10)["cell_id"])
    for factors in result.factors.values():
        assert len(factors) == th.TOP_FACTORS and {f["feature"] for f in factors} <= set(spec.features)

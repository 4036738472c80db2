"""Ground motion: the array form of BSSA14 against pygmm's model, and the physics' directions."""

from __future__ import annotations

import numpy as np
import pygmm
import pytest

from features.domains.earthquake import seismic


def test_bssa14_matches_pygmm():
    rng = np.random.default_rng(0)
    mw, rjb, vs30 = rng.uniform(3.5, 7.5, 60), rng.uniform(0, 200, 60), rng.uniform(160, 1400, 60)
    rjb[:5] = 0.0
    vs30[5:10] = [200, 360, 760, 1000, 1500]
    ours_ln, ours_sigma = seismic.bssa14_ln_pga(mw, rjb, vs30), seismic.bssa14_sigma(mw, rjb, vs30)
    for k in range(len(mw)):
        model = pygmm.BooreStewartSeyhanAtkinson2014(
            pygmm.Scenario(mag=mw[k], dist_jb=rjb[k], v_s30=vs30[k], mechanism="SS", region="global"))
        assert ours_ln[k] == pytest.approx(np.log(model.pga), abs=1e-9)
        assert ours_sigma[k] == pytest.approx(model.ln_std_pga, abs=1e-9)


def test_rock_is_the_reference_and_soft_soil_deamplifies_in_strong_shaking():
    assert seismic.bssa14_ln_pga(6.0, 20.0) == pytest.approx(seismic.bssa14_ln_pga(6.0, 20.0, 760.0))
    weak_gain = seismic.bssa14_ln_pga(4.5, 60.0, 200.0) - seismic.bssa14_ln_pga(4.5, 60.0)
    strong_gain = seismic.bssa14_ln_pga(7.0, 1.0, 200.0) - seismic.bssa14_ln_pga(7.0, 1.0)
    assert weak_gain > 0.3 and strong_gain < weak_gain - 0.3


def test_more_hazard_never_lowers_the_expected_share():
    ml = np.linspace(3.0, 8.0, 51)[:, None]
    dist = np.linspace(0.0, 300.0, 61)[None, :]
    for vs30 in (180.0, 400.0, 900.0):
        gm = seismic.ground_motion(ml, 37.5, 126.6, 10.0, 37.5 + dist / 111.2, 126.6, vs30)
        assert np.all(np.diff(gm["ln_pga"], axis=0) > 0) and np.all(np.diff(gm["ln_pga"], axis=1) < 0)
        shares = np.zeros((gm["ln_pga"].size, len(seismic.FRAGILITY_GROUPS)))
        shares[:, 0] = 1.0
        share = seismic.fragility_share(gm["ln_pga"].ravel(), shares, gm["sigma"].ravel()).reshape(gm["ln_pga"].shape)
        assert np.all(np.diff(share, axis=0) >= -1e-12) and np.all(np.diff(share, axis=1) <= 1e-12)


def test_variability_widens_the_fragility():
    shares = np.zeros((2, len(seismic.FRAGILITY_GROUPS)))
    shares[:, 0] = 1.0
    median = seismic.moderate_medians()[0]
    low, high = np.log([median / 4, median * 4])
    narrow = seismic.fragility_share([low, high], shares)
    wide = seismic.fragility_share([low, high], shares, 0.6)
    assert wide[0] > narrow[0] and wide[1] < narrow[1]
    assert seismic.fragility_share([np.log(median)], shares[:1], 0.6)[0] == pytest.approx(0.5)


def test_magnitude_conversion():
    assert seismic.ml_to_mw(5.8) == pytest.approx(5.54, abs=0.01)  # 2016 Gyeongju, reported Mw 5.4-5.5
    ml = np.linspace(2.0, 8.5, 14)
    assert np.allclose(seismic.mw_to_ml(seismic.ml_to_mw(ml)), ml)
    assert np.all(np.diff(seismic.ml_to_mw(ml)) > 0)


def _one_group(n: int, group: int = 0) -> np.ndarray:
    shares = np.zeros((n, len(seismic.FRAGILITY_GROUPS)))
    shares[:, group] = 1.0
    return shares


def test_the_floor_is_the_lower_of_the_median_field_and_the_expected_share():
    ln_pga = np.log(np.geomspace(0.02, 1.5, 40))
    for group in range(len(seismic.FRAGILITY_GROUPS)):
        shares = _one_group(len(ln_pga), group)
        floor = seismic.fragility_floor(ln_pga, shares, 0.6)
        median_field = seismic.fragility_share(ln_pga, shares)
        expected = seismic.fragility_share(ln_pga, shares, 0.6)
        assert np.allclose(floor, np.minimum(median_field, expected))
    # A mixed stock: the bound holds group by group, so it is below both stock-wide answers.
    rng = np.random.default_rng(1)
    mixed = rng.dirichlet(np.ones(len(seismic.FRAGILITY_GROUPS)), len(ln_pga))
    floor = seismic.fragility_floor(ln_pga, mixed, 0.6)
    assert np.all(floor <= seismic.fragility_share(ln_pga, mixed) + 1e-12)
    assert np.all(floor <= seismic.fragility_share(ln_pga, mixed, 0.6) + 1e-12)
    assert np.isnan(seismic.fragility_floor([0.0], np.full((1, len(seismic.FRAGILITY_GROUPS)), np.nan), 0.6)[0])


def test_more_hazard_never_lowers_the_floor():
    ml = np.linspace(3.0, 8.0, 51)[:, None]
    dist = np.linspace(0.0, 300.0, 61)[None, :]
    for vs30 in (180.0, 400.0, 900.0):
        for depth in (5.0, 40.0):
            gm = seismic.ground_motion(ml, 37.5, 126.6, depth, 37.5 + dist / 111.2, 126.6, vs30)
            for group in (0, 5, len(seismic.FRAGILITY_GROUPS) - 1):
                floor = seismic.fragility_floor(gm["ln_pga"].ravel(), _one_group(gm["ln_pga"].size, group),
                                                gm["sigma"].ravel()).reshape(gm["ln_pga"].shape)
                assert np.all(np.diff(floor, axis=0) >= -1e-12) and np.all(np.diff(floor, axis=1) <= 1e-12)
    shallow, deep = (seismic.ground_motion(6.5, 37.5, 126.6, d, 37.6, 126.6, 400.0) for d in (10.0, 60.0))
    low, high = (seismic.fragility_floor(np.atleast_1d(g["ln_pga"]), _one_group(1), np.atleast_1d(g["sigma"]))
                 for g in (deep, shallow))
    assert high[0] >= low[0]

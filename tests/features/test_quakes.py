"""Generated earthquake scenarios: strong shaking over-sampled, weights back to the catalogue's rates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.embedded import quakes


def test_scenarios_oversample_large_near_events_and_weigh_back():
    rng = np.random.default_rng(5)
    cat = pd.DataFrame({"규모": quakes._gr(rng, 400, 1.0, 2.0, 4.9).round(1),
                        "_lat": rng.uniform(37.0, 37.8, 400), "_lon": rng.uniform(124.5, 125.3, 400)})  # far off
    scen = quakes.scenarios(cat, 40_000, pd.Timestamp("2021-01-01"), pd.Timestamp("2024-01-01"), 37.45, 126.6, rng)
    w = scen["weight"].to_numpy()
    assert w.mean() == pytest.approx(1.0) and (w > 0).all()
    b = quakes.b_value(cat["규모"].to_numpy())
    lo, hi = quakes.SCENARIO_ML
    big = scen["magnitude"].to_numpy() >= 6.5
    rate_big = (np.exp(-b * np.log(10) * (6.45 - lo)) - np.exp(-b * np.log(10) * (hi - lo))) / \
        (1 - np.exp(-b * np.log(10) * (hi - lo)))  # catalogue share of ML >= 6.5 (rounded to 0.1)
    assert big.mean() > 5 * rate_big  # over-represented as drawn ...
    assert np.average(big, weights=w) == pytest.approx(rate_big, rel=0.25)  # ... and weighted back
    km = quakes.haversine_km(scen["lat"], scen["lon"], 37.45, 126.6)
    near = km < quakes.NEAR_KM * 0.999
    assert near.mean() > 0.3 and np.average(near, weights=w) == pytest.approx(quakes.NEAR_SHARE, abs=0.03)


def test_ground_motion_residuals_scatter_about_the_median():
    scen = pd.DataFrame({"magnitude": [6.0] * 400, "lat": 37.45, "lon": 126.6, "depth_km": 10.0})
    pga = quakes.pga(scen, np.full(50, 37.55), np.full(50, 126.6), np.full(50, 400.0), np.random.default_rng(1))
    median = quakes.seismic.ground_motion(6.0, 37.45, 126.6, 10.0, 37.55, 126.6, 400.0)
    assert np.log(pga).mean() == pytest.approx(float(median["ln_pga"]), abs=0.08)
    assert np.log(pga).std() == pytest.approx(float(median["sigma"]), abs=0.08)

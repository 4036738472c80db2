"""Point-in-time correctness of every registered domain, on the small embedded data set.

Build a domain's table, then change every time-stamped source *after* a cut time T in ways that would
show up in any feature that peeks ahead (values scaled, accidents dropped and moved, nowcasts issued
after T changed, later flood traces and buildings removed, ...) and rebuild. Features of rows with
time <= T must be identical; labels may differ. Rows after T must change, or the test proves nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import timeseries as ts
from features.errors import DataError
from features.registry import domains
from features.sources import Sources
from features.sources.canonical import SCHEMAS

DAY = pd.Timedelta(days=1)


def _weather(f: pd.DataFrame, after) -> pd.DataFrame:
    f = f.copy()
    late = f["time"] > after  # a reading stamped T covers the hour ending at T: known at T
    f.loc[late, "temp_c"] = f.loc[late, "temp_c"] * 1.3 + 2
    f.loc[late, "rain_mm"] = f.loc[late, "rain_mm"] * 2 + 1
    f.loc[late, "snow_cm"] = f.loc[late, "snow_cm"].fillna(0) + 3
    for col in ("wind_ms", "humidity_pct"):
        f.loc[late, col] = f.loc[late, col] * 0.7
    f.loc[late, "wind_dir_deg"] = (f.loc[late, "wind_dir_deg"] + 90) % 360
    f.loc[late, "pressure_hpa"] = f.loc[late, "pressure_hpa"] + 7
    return f


def _air(f: pd.DataFrame, after) -> pd.DataFrame:
    f = f.copy()
    late = f["time"] > after
    for col in ("so2", "co", "o3", "no2", "pm10", "pm25"):
        f.loc[late, col] = f.loc[late, col] * 1.5 + 1
    return f


def _accidents(f: pd.DataFrame, after) -> pd.DataFrame:
    # An accident stamped T happened in the hour starting at T: after T. Drop half, move the rest.
    late = f["time"] >= after
    f = f.loc[~late | (np.arange(len(f)) % 2 == 0)].copy()
    late = f["time"] >= after
    f.loc[late, "time"] = f.loc[late, "time"] + pd.Timedelta(hours=5)
    f.loc[late, "lat"] = f.loc[late, "lat"] + 0.01
    f.loc[late, "eclo"] = f.loc[late, "eclo"] + 3
    return f


def _tide(f: pd.DataFrame, after) -> pd.DataFrame:
    f = f.copy()  # predictions are published ahead of time: only the observations change
    f.loc[f["time"] > after, "tide_cm"] = f.loc[f["time"] > after, "tide_cm"] + 60
    return f


def _nowcast(f: pd.DataFrame, after) -> pd.DataFrame:
    f = f.copy()
    late = f["issued"] > after
    f.loc[late, "rain_mm"] = f.loc[late, "rain_mm"] * 3 + 2
    return f


def _traces(f: pd.DataFrame, after) -> pd.DataFrame:
    # A trace without an hour is placed within its start date, so it counts as later until the day ends.
    later = (f["onset"] > after) | (f["onset"].isna() & (f["start_date"].dt.normalize() + DAY > after))
    return f.loc[~later].copy()


def _buildings(f: pd.DataFrame, after) -> pd.DataFrame:
    return f.loc[~(f["approval_date"] > after)].copy()


def _surveys(f: pd.DataFrame, after) -> pd.DataFrame:
    f = f.copy()
    late = f["time"] > after
    f.loc[late, "damaged"] = f.loc[late, "buildings"] - f.loc[late, "damaged"]
    return f


def _quakes(f: pd.DataFrame, after) -> pd.DataFrame:
    f = f.copy()
    late = f["time"] > after
    f.loc[late, "magnitude"] = f.loc[late, "magnitude"] + 1.5
    return f


PERTURB = {
    "asos": _weather, "aws": _weather, "airkorea": _air, "taas": _accidents, "tide": _tide,
    "nowcast": _nowcast, "flood_traces": _traces, "buildings": _buildings, "damage_surveys": _surveys,
    "quakes": _quakes,
}
UNTIMED = {"static", "parcels", "addresses"}  # layers without time; the last two place buildings
# Strong-motion records of a live quake: the impact alert reads them (live/impact.py), no feature does.
UNTIMED |= {"quake_stations"}


def perturbed(src: Sources, after: pd.Timestamp) -> Sources:
    """A copy of ``src`` with every time-stamped source changed after ``after``."""
    out = src
    for name, change in PERTURB.items():
        try:
            frame = src[name]
        except DataError:  # a source without files: nothing to perturb
            continue
        out = out.override(name, change(frame, after))
    return out


def test_every_time_stamped_source_is_perturbed():
    assert set(SCHEMAS) == set(PERTURB) | UNTIMED


@pytest.fixture(scope="module")
def base(small_data) -> Sources:
    return Sources.from_settings(small_data)


@pytest.mark.parametrize("name", sorted(domains()))
def test_features_use_only_data_up_to_the_row_time(name, base):
    spec = domains()[name]
    before = spec.build_table(base)
    times = pd.to_datetime(before[spec.time])
    cut = times.quantile(0.5).normalize()
    assert (times <= cut).any() and (times > cut).any()
    after = spec.build_table(perturbed(base, cut))

    key = [*spec.keys, spec.time]
    # A key may double as a feature (fine_dust); forecast stand-ins read the target period by design.
    features = [c for c in spec.features if c not in key and c not in spec.forecast]
    joined = before[[*key, *features]].merge(after[[*key, *features]], on=key, suffixes=("", "_new"),
                                             validate="one_to_one")
    early = (pd.to_datetime(joined[spec.time]) <= cut).to_numpy()
    n_early = int((times <= cut).sum())
    # Row sets may differ only where the sampling depends on a label (e.g. traffic positives at T).
    assert early.sum() >= 0.99 * n_early, f"{name}: {n_early - early.sum()} early rows vanished"
    differs = _differs(joined[features], joined[[f"{c}_new" for c in features]])
    leaks = [c for c, bad in zip(features, differs[early].any(axis=0), strict=True) if bad]
    assert not leaks, f"{name}: features {leaks} change when data after T change"
    rows_changed = differs[~early].any(axis=1).sum() + abs(len(after) - len(before))
    assert rows_changed > 0, f"{name}: nothing after T changed; the test is vacuous"


def _differs(old: pd.DataFrame, new: pd.DataFrame) -> np.ndarray:
    """Cell-wise "changed" (rows x columns); NaN equals NaN. Floats may differ by rounding only (1e-9):
    prefix-sum features (cumulative sums minus cumulative sums) move in the last bits when unrelated
    later rows are removed, which is not a leak."""
    out = np.zeros(old.shape, dtype=bool)
    for j, (a, b) in enumerate(zip(old.columns, new.columns, strict=True)):
        x, y = old[a], new[b]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            out[:, j] = ~np.isclose(x.to_numpy(dtype=float), y.to_numpy(dtype=float), rtol=1e-9, atol=1e-9,
                                    equal_nan=True)
        else:
            out[:, j] = ~((x.to_numpy() == y.to_numpy()) | (x.isna().to_numpy() & y.isna().to_numpy()))
    return out


def test_shared_window_helpers_respect_their_windows():
    hours = pd.date_range("2021-01-01", periods=6, freq="h")
    wide = ts.hourly_wide(pd.DataFrame({"station_id": 1, "time": hours[[0, 1, 2, 4, 5]],
                                        "v": [1.0, 2.0, 4.0, 8.0, 16.0]}), "v")
    assert len(wide) == 6 and np.isnan(wide.loc[hours[3], 1])  # the missing hour is a NaN row
    assert ts.trailing_sum(wide, 3)[1].tolist()[2:] == [7.0, 6.0, 12.0, 24.0]  # (t - 3h, t]
    assert ts.leading_agg(wide, 2, "max")[1].tolist()[:3] == [4.0, 4.0, 8.0]  # (t, t + 2h]
    # As-of: the latest value at or before t, never a later one; too old -> NaN.
    got = ts.asof_lookup(wide, [hours[3], hours[2] - pd.Timedelta(minutes=1), hours[5] + DAY], [1, 1, 1],
                         tolerance=pd.Timedelta(hours=2))
    np.testing.assert_array_equal(got, [4.0, 2.0, np.nan])
    count = ts.count_in_window([0, 0, 1], hours[[1, 3, 3]], [0, 0, 1], hours[[1, 1, 0]], hours[[3, 3, 3]],
                               closed="left")
    assert count.tolist() == [1, 1, 0]

"""Training from a table stored in parts: rows taken by position come back whole and in order, and the
final fit streamed from the parts learns what the in-memory fit learns on the same rows."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from features.build import build_features, table_path
from features.registry import get_domain
from features.sources import Sources
from features.store import MANIFEST, file_sha256, part_files, read_table
from training import table as training_table
from training.models import fit, fit_parts, predict
from training.table import TrainingTable

DOMAIN = "flood"  # many rows, a weight column, several parts at a small part size


@pytest.fixture(scope="module")
def parted(small_tables, tmp_path_factory):
    """The flood table rebuilt in parts of 20,000 rows."""
    settings = small_tables.model_copy(update={"data_dir": tmp_path_factory.mktemp("parted")})
    for name in ("raw", "truth"):
        (settings.data / name).symlink_to(small_tables.data / name)
    result = build_features(get_domain(DOMAIN), Sources.from_settings(settings), settings.features_dir,
                            rows_per_part=20_000)
    assert result.parts > 3
    return settings


def test_rows_by_position_are_the_time_ordered_table(parted):
    spec = get_domain(DOMAIN)
    table = TrainingTable.open(spec, parted)
    whole = read_table(table_path(parted.features_dir, DOMAIN))
    ordered = whole.iloc[np.argsort(whole[spec.time].to_numpy(), kind="stable")].reset_index(drop=True)
    assert len(table) == len(whole) and table.times.is_monotonic_increasing
    positions = np.random.default_rng(0).choice(len(table), 5000, replace=False)  # any order, any part
    pd.testing.assert_frame_equal(table.rows(positions), ordered.iloc[positions].reset_index(drop=True))
    np.testing.assert_array_equal(table.y[positions], ordered[spec.target].to_numpy(float)[positions])


def hashed_parts(folder) -> str:
    """The table digest as it was computed before the manifest carried the parts' digests."""
    return hashlib.sha256("".join(file_sha256(p) for p in part_files(folder)).encode()).hexdigest()


def test_the_table_digest_comes_from_the_manifest_and_is_the_digest_of_its_parts(parted, monkeypatch):
    def no_reading(path):
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr(training_table, "file_sha256", no_reading)
    table = TrainingTable.open(get_domain(DOMAIN), parted)
    assert table.sha256 == hashed_parts(table_path(parted.features_dir, DOMAIN))


@pytest.mark.parametrize("dropped", ["every", "some"])
def test_a_manifest_without_part_digests_opens_with_the_same_digest(parted, tmp_path, dropped):
    settings = parted.model_copy(update={"data_dir": tmp_path})
    old = table_path(settings.features_dir, DOMAIN)
    shutil.copytree(table_path(parted.features_dir, DOMAIN), old)
    meta = json.loads((old / MANIFEST).read_text())
    for i, part in enumerate(meta["parts"]):
        if dropped == "every" or i % 2:
            del part["sha256"]
    (old / MANIFEST).write_text(json.dumps(meta))
    assert TrainingTable.open(get_domain(DOMAIN), settings).sha256 == hashed_parts(old) == \
        TrainingTable.open(get_domain(DOMAIN), parted).sha256


@pytest.mark.parametrize("family", ["lightgbm", "xgboost"])
def test_the_fit_streamed_from_parts_matches_the_fit_in_memory(parted, family):
    spec = get_domain(DOMAIN)
    table = TrainingTable.open(spec, parted)
    rng = np.random.default_rng(1)
    positions = np.sort(rng.choice(len(table), 30_000, replace=False))  # fewer than LightGBM's bin sample
    weights = rng.uniform(0.5, 2.0, len(positions))
    params = ({"objective": "binary", "num_leaves": 15, "learning_rate": 0.1} if family == "lightgbm" else
              {"objective": "binary:logistic", "max_depth": 4, "eta": 0.1}) | {"num_boost_round": 30}
    parts, y, w = table.feature_parts(positions, weights)
    assert len(parts) > 1 and sum(rows for rows, _ in parts) == len(positions)
    streamed = fit_parts(family, spec.task, params, parts, y, w, monotone=spec.monotone_vector())

    rows = table.rows(positions)
    X = rows[list(spec.features)].astype(np.float32)
    in_memory = fit(family, spec.task, params, X, rows[spec.target].to_numpy(float), weights,
                    monotone=spec.monotone_vector())
    probe = table.rows(rng.choice(len(table), 2000, replace=False))[list(spec.features)]
    # LightGBM bins the same rows alike; XGBoost's quantile sketch, merged batch by batch, puts a few bin
    # edges slightly apart, which moves some predictions by a fraction of a percent.
    tolerance = {"rtol": 1e-4, "atol": 1e-6} if family == "lightgbm" else {"rtol": 1e-2, "atol": 1e-4}
    streamed_pred, in_memory_pred = predict(family, streamed.booster, probe), predict(family, in_memory.booster, probe)
    np.testing.assert_allclose(streamed_pred, in_memory_pred, **tolerance)
    assert np.mean(np.abs(streamed_pred - in_memory_pred)) < 1e-4

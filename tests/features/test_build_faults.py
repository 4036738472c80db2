"""A feature build that fails half-way leaves the previous table as it was and no temporary file."""

from __future__ import annotations

import dataclasses
import shutil

import pandas as pd
import pytest

from features import store
from features.build import build_features, table_path
from features.errors import DataError
from features.registry import get_domain

DOMAIN = "fine_dust"


@pytest.fixture
def previous(small_tables, tmp_path):
    """A features folder holding the domain's previous table; yields (folder, its bytes, its frame)."""
    folder = tmp_path / "features"
    folder.mkdir()
    path = table_path(folder, DOMAIN)
    shutil.copy2(table_path(small_tables.features_dir, DOMAIN), path)
    return folder, path.read_bytes(), pd.read_parquet(path)


def assert_untouched(folder, before: bytes) -> None:
    assert [p.name for p in folder.iterdir()] == [f"{DOMAIN}.parquet"]  # no temporary file left
    assert table_path(folder, DOMAIN).read_bytes() == before


def builder_failing_half_way(sources):
    half = pd.DataFrame({"cell_id": ["a", "b"]})  # some work done, then a bug
    raise RuntimeError(f"builder crashed after {len(half)} rows")


@pytest.mark.parametrize(("build_table", "error"), [
    (builder_failing_half_way, RuntimeError),
    (lambda sources: pd.DataFrame({"cell_id": ["a"]}), DataError),  # a builder that lost its columns
    (lambda sources: pd.DataFrame(columns=list(get_domain(DOMAIN).features) + ["cell_id"]), DataError),
], ids=["raises", "missing-columns", "empty"])
def test_a_failing_builder_keeps_the_previous_table(previous, build_table, error):
    folder, before, _ = previous
    spec = dataclasses.replace(get_domain(DOMAIN), build_table=build_table)
    with pytest.raises(error):
        build_features(spec, None, folder)
    assert_untouched(folder, before)


def write_half_then(exc: BaseException):
    def write_table(table, where, **kwargs):
        with open(where, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise exc
    return write_table


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()],
                         ids=["disk-full", "interrupted"])
def test_a_write_failing_half_way_keeps_the_previous_table(previous, monkeypatch, exc):
    folder, before, frame = previous
    spec = dataclasses.replace(get_domain(DOMAIN), build_table=lambda sources: frame.iloc[::-1])
    monkeypatch.setattr(store.pq, "write_table", write_half_then(exc))
    with pytest.raises(type(exc)):
        build_features(spec, None, folder)
    assert_untouched(folder, before)


def test_a_failing_rename_keeps_the_previous_table(previous, monkeypatch):
    folder, before, frame = previous
    spec = dataclasses.replace(get_domain(DOMAIN), build_table=lambda sources: frame.iloc[::-1])

    def replace(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(store.os, "replace", replace)
    with pytest.raises(PermissionError):
        build_features(spec, None, folder)
    assert_untouched(folder, before)


def test_a_successful_build_replaces_the_table(previous):
    folder, before, frame = previous
    spec = dataclasses.replace(get_domain(DOMAIN), build_table=lambda sources: frame.iloc[::-1])
    build_features(spec, None, folder)
    assert [p.name for p in folder.iterdir()] == [f"{DOMAIN}.parquet"]
    after = pd.read_parquet(table_path(folder, DOMAIN))
    pd.testing.assert_frame_equal(after, frame.iloc[::-1].reset_index(drop=True))

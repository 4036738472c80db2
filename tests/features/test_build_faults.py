"""A feature build that fails half-way leaves the previous table as it was and no build folder of its own;
a large table is written and read in parts."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest

from features import store
from features.build import build_features, table_path
from features.errors import DataError
from features.registry import get_domain

DOMAIN = "fine_dust"


def snapshot(folder) -> dict:
    """Every file under the domain's table folder, by relative path, with its bytes."""
    root = table_path(folder, DOMAIN)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def previous(small_tables, tmp_path):
    """A features folder holding the domain's previous table; yields (folder, its files, its frame)."""
    folder = tmp_path / "features"
    folder.mkdir()
    shutil.copytree(table_path(small_tables.features_dir, DOMAIN), table_path(folder, DOMAIN))
    return folder, snapshot(folder), store.read_table(table_path(folder, DOMAIN))


def assert_untouched(folder, before: dict) -> None:
    assert [p.name for p in folder.iterdir()] == [DOMAIN]
    assert snapshot(folder) == before  # same manifest, same parts, no build folder left behind


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


def test_a_builder_failing_after_some_parts_keeps_the_previous_table(previous):
    folder, before, frame = previous

    def parts(sources, rows_per_part):
        yield frame.iloc[:100]
        raise RuntimeError("the second part's sources went missing")

    spec = dataclasses.replace(get_domain(DOMAIN), build_parts=parts)
    with pytest.raises(RuntimeError):
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


def test_a_failing_commit_keeps_the_previous_table(previous, monkeypatch):
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
    root = table_path(folder, DOMAIN)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) != sorted(k.split("/")[0] for k in before
                                                                          if "/" in k)  # a new build folder
    assert len([p for p in root.iterdir() if p.is_dir()]) == 1  # the old one is gone
    pd.testing.assert_frame_equal(store.read_table(root), frame.iloc[::-1].reset_index(drop=True))


def test_a_table_is_written_and_read_in_parts_in_float32(previous):
    folder, _, frame = previous
    spec = dataclasses.replace(get_domain(DOMAIN), build_parts=lambda sources, rows: (
        frame.iloc[lo:lo + rows] for lo in range(0, len(frame), rows)))
    result = build_features(spec, None, folder, rows_per_part=1000)
    root = table_path(folder, DOMAIN)
    assert result.parts == len(store.part_files(root)) == -(-len(frame) // 1000)
    assert result.rows == len(frame) == sum(p["rows"] for p in store.read_meta(root)["parts"])
    back = store.read_table(root)
    floats = [c for c, t in frame.dtypes.items() if t.kind == "f"]
    assert floats and all(back[c].dtype == np.float32 for c in floats)
    pd.testing.assert_frame_equal(back, store.compact(frame).reset_index(drop=True))
    assert store.read_columns(root, ["time"])["time"].equals(frame["time"].reset_index(drop=True))


def test_the_manifest_carries_each_part_s_sha256(previous):
    folder, _, frame = previous
    root = table_path(folder, DOMAIN)
    entries = store.write_parts((frame.iloc[lo:lo + 1000] for lo in range(0, len(frame), 1000)), root,
                                {"domain": DOMAIN})
    parts = store.read_meta(root)["parts"]
    assert parts == entries and len(parts) == -(-len(frame) // 1000)
    assert [p["sha256"] for p in parts] == [hashlib.sha256(f.read_bytes()).hexdigest()
                                            for f in store.part_files(root)]

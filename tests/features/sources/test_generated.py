"""The embedded generator's raw files load through the same loaders as real exports."""

from __future__ import annotations

import pytest

from features.sources import Sources, source_files
from features.sources.canonical import SCHEMAS
from features.sources.check import check_files
from features.sources.formats import FORMATS, USER_SUPPLIED

GENERATED = sorted(set(FORMATS) - set(USER_SUPPLIED))


@pytest.fixture(scope="module")
def generated(request):
    embedded = pytest.importorskip("features.embedded")
    if not hasattr(embedded, "generate"):
        pytest.skip("features.embedded.generate is not written yet")
    return request.getfixturevalue("small_data")


@pytest.mark.parametrize("source", GENERATED)
def test_generated_source_loads(generated, source):
    files = source_files(generated.raw_dir, source)
    assert files, f"the generator wrote no {FORMATS[source].pattern} in {generated.raw_dir / source}"
    frame = Sources.from_settings(generated)[source]
    assert list(frame.columns) == list(SCHEMAS[source].columns)
    assert len(frame) > 0


@pytest.mark.parametrize("source", GENERATED)
def test_generated_source_passes_check(generated, source):
    reports = check_files(source, source_files(generated.raw_dir, source), city=generated.city_config)
    assert all(r.ok for r in reports), [p for r in reports for p in r.problems]
    # No warnings either: no gaps, duplicates, unknown stations or empty columns in generated data.
    assert not [p for r in reports for p in r.problems]

"""Fixture files of every raw source: ``tests/fixtures/sources/<source>/``."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sources"


def fixture(source: str, name: str) -> Path:
    """Path of one hand-written fixture file."""
    return FIXTURES / source / name


@pytest.fixture
def city():
    from features.city import load_city

    return load_city("incheon")

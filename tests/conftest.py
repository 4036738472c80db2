"""Shared fixtures: a small embedded data set (coarse grid, one year) generated once per test session."""

from __future__ import annotations

from datetime import date

import pytest

from urban_safety.settings import Settings


def small_settings(tmp_path, **overrides) -> Settings:
    """Settings for a small, fast data set under ``tmp_path`` (2 km grid, one year, few scenarios).

    The year runs from September so that its final fifth, the training holdout, is the summer with
    its heavy rain and floods."""
    values = dict(data_dir=tmp_path / "data", grid_m=2000, years=1, quake_scenarios=40, seed=7,
                  start=date(2020, 9, 1))
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Settings:
    """Raw and truth files of the small data set; treat as read-only."""
    from features.embedded import generate

    settings = small_settings(tmp_path_factory.mktemp("small"))
    generate(settings)
    return settings


@pytest.fixture(scope="session")
def small_tables(small_data, tmp_path_factory) -> Settings:
    """Feature tables of every domain built from the small data set; ``root`` is a fresh project folder
    (so MLflow's default store lands there). Treat the tables as read-only."""
    from features.build import build_features
    from features.registry import domains
    from features.sources import Sources

    settings = small_data.model_copy(update={"root": tmp_path_factory.mktemp("project")})
    sources = Sources.from_settings(settings)
    for spec in domains().values():
        build_features(spec, sources, settings.features_dir)
    return settings

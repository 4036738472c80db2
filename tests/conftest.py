"""Shared fixtures: a small embedded data set (coarse grid, one year) generated once per test session."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from urban_safety.settings import Settings

CITY_FIXTURES = Path(__file__).parent / "fixtures" / "cities"


def small_settings(tmp_path, **overrides) -> Settings:
    """Settings for a small, fast data set under ``tmp_path`` (2 km grid, one year, few scenarios).

    The year runs from September so that its final fifth, the training holdout, is the summer with
    its heavy rain and floods."""
    values = dict(data_dir=tmp_path / "data", grid_m=2000, years=1, quake_scenarios=40, seed=7,
                  start=date(2020, 9, 1))
    values.update(overrides)
    return Settings(**values)


def copy_of_testville(folder: Path, domains: list[str] | None = None, drop: tuple[str, ...] = (),
                   append: str = "") -> Path:
    """tests/fixtures/cities/testville.toml written into ``folder`` (with the files it refers to beside it):
    with ``domains = [...]`` when given, without the tables named in ``drop`` (``air_stations`` leaves
    ``air_stations = []``, no station at all; ``tide``: no gauge), and ``append`` (TOML) at its end."""
    folder.mkdir(parents=True, exist_ok=True)
    for extra in CITY_FIXTURES.glob("testville*"):
        if extra.suffix == ".geojson":
            # The fixture's district codes (1, 2) are no 5-digit 시군구 codes, which the building register and
            # flood traces the generator writes must carry: the copy numbers them 99001, 99002.
            text = re.sub(r'"GU_CD": "(\d)"', r'"GU_CD": "9900\1"', extra.read_text(encoding="utf-8"))
            (folder / extra.name).write_text(text, encoding="utf-8")
        elif extra.suffix != ".toml":
            shutil.copy(extra, folder / extra.name)
    lines, keep = [], True
    for line in (CITY_FIXTURES / "testville.toml").read_text(encoding="utf-8").splitlines():
        if header := re.match(r"^\[\[?([\w.]+)\]\]?\s*$", line):
            keep = header.group(1).split(".")[0] not in drop
        if keep and not line.startswith("domains ="):
            lines.append(line)
    top = ([f"domains = {json.dumps(domains)}"] if domains is not None else []) + \
        (["air_stations = []"] if "air_stations" in drop else [])
    first = next(i for i, line in enumerate(lines) if line.startswith("["))  # top-level keys go before tables
    lines[first:first] = [*top, ""]
    path = folder / "testville.toml"
    path.write_text("\n".join(lines) + "\n" + append, encoding="utf-8")
    return path


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


@pytest.fixture(scope="session")
def quake_cities(tmp_path_factory):
    """``city(name)``: the built-in city generated at its real size with only the earthquake domain
    (:func:`features.domains.earthquake.record.generate_city`) as loaded Sources, once per session. Read-only."""
    from features.domains.earthquake import record
    from features.sources import Sources

    made = {}

    def city(name: str):
        if name not in made:
            made[name] = Sources.from_settings(record.generate_city(name, tmp_path_factory.mktemp(f"quake-{name}")))
        return made[name]
    return city

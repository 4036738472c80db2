"""Korea's record of damaging earthquakes, and the consequence model run against it.

Two events of the instrumental record, each with the published tallies and the bands the model's totals
must fall in (a factor of about three around the tally, which absorbs that the government's 재산피해 is
a narrower quantity than HAZUS's direct building loss):

- **Pohang, 2017-11-15 14:29 KST**: KMA ML 5.4 (USGS Mw 5.5), 36.12 N 129.36 E, 7 km. No deaths, 92
  injured, 1,797 displaced, 27,317 facilities damaged, 551억원 of property damage (Central Disaster and
  Safety Countermeasures Headquarters, December 2017). The calibration event (daytime population).
- **Gyeongju, 2016-09-12 20:32 KST**: KMA ML 5.8 (USGS Mw 5.4), 35.76 N 129.19 E, about 15 km. No deaths,
  23 injured, 111 displaced, 110억원. The out-of-sample check (night population).

Each runs on the built-in city of its name, generated with only the earthquake domain's sources
(:func:`generate_city`), with the scenario's moment magnitude (USGS's: the ML-to-Mw conversion runs 0.3
low for Pohang, see :func:`features.domains.earthquake.seismic.ml_to_mw`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from features.city import CITIES_DIR


@dataclass(frozen=True)
class Event:
    """A recorded event: its scenario, the population at its hour, the record and the bands."""

    name: str
    city: str
    conditions: dict
    population: str
    record: dict  # deaths, injuries, displaced, loss_krw (the government's 재산피해)
    bands: dict = field(default_factory=dict)  # quantity: (low, high); deaths: (0, high)


EUK = 1e8  # 억원 in KRW
EVENTS = {
    "pohang2017": Event(
        "Pohang 2017-11-15 (calibration)", "pohang",
        {"magnitude": 5.5, "magnitude_type": "Mw", "epicentre_lat": 36.12, "epicentre_lon": 129.36, "depth_km": 7.0},
        "day", {"deaths": 0, "injuries": 92, "displaced": 1797, "loss_krw": 551 * EUK},
        {"deaths": (0, 5), "injuries": (30, 300), "displaced": (600, 5400), "loss_krw": (180 * EUK, 1650 * EUK)}),
    "gyeongju2016": Event(
        "Gyeongju 2016-09-12 (out of sample)", "gyeongju",
        {"magnitude": 5.4, "magnitude_type": "Mw", "epicentre_lat": 35.76, "epicentre_lon": 129.19, "depth_km": 15.0},
        "night", {"deaths": 0, "injuries": 23, "displaced": 111, "loss_krw": 110 * EUK},
        {"deaths": (0, 5), "injuries": (8, 70), "displaced": (35, 350), "loss_krw": (37 * EUK, 330 * EUK)}),
}
QUANTITIES = ("deaths", "injuries", "displaced", "loss_krw")


def generate_city(city: str, folder: Path, seed: int = 7, grid_m: int | None = None):
    """Generate the built-in ``city`` with only the earthquake domain into ``folder``; returns its Settings.
    ``grid_m``: the grid's cell size (m) instead of the city config's (None: the config's, or
    ``URBAN_SAFETY_GRID_M``)."""
    from features.embedded import generate
    from urban_safety.settings import Settings

    folder.mkdir(parents=True, exist_ok=True)
    text = (CITIES_DIR / f"{city}.toml").read_text(encoding="utf-8")
    text = re.sub(r"^domains = .*$", 'domains = ["earthquake"]', text, flags=re.M)
    config = folder / f"{city}.toml"
    config.write_text(text, encoding="utf-8")
    settings = Settings(data_dir=folder / "data", city=str(config), years=1, quake_scenarios=40, seed=seed,
                        start=date(2020, 1, 1), **({"grid_m": grid_m} if grid_m is not None else {}))
    if not (settings.data / "raw").exists():
        generate(settings)
    return settings


def run(event: Event, src) -> dict:
    """The city totals of ``event`` on ``src``: {quantity: (mean, p05, p95)}."""
    from features.domains.earthquake import consequences as cq

    cells, sums = cq.consequences(src, event.conditions, None, event.population)
    total = cq.totals(cells, sums).iloc[0]
    return {q: (float(total[q]), float(total[f"{q}_p05"]), float(total[f"{q}_p95"])) for q in QUANTITIES}


def inside(event: Event, result: dict) -> dict[str, bool]:
    """Whether each mean total lies in its band."""
    return {q: event.bands[q][0] <= result[q][0] <= event.bands[q][1] for q in QUANTITIES}

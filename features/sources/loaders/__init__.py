"""Loaders of every raw source format; importing this package registers them with ``features.sources``."""

from features.sources.loaders import (  # noqa: F401  (imported for their @loader registrations)
    airkorea,
    buildings,
    damage_surveys,
    flood_traces,
    kma,
    places,
    static,
    taas,
    tide,
)

"""Which sources the domains a city runs read, and whether its config can give them.

A city config names its domains (``domains = [...]``; none: every registered one). The generator writes
only the sources those domains read, the CLI says which domains it skips, and a config naming a domain
whose essential source it has no station for is refused here, naming the config key to add.
"""

from __future__ import annotations

from features.errors import DataError

#: Sources measured at the city's own stations: the config key listing them, and whether a city has one.
STATION_KEYS = {
    "asos": ('[[weather_stations]] with kind = "asos"', lambda c: any(s.kind == "asos" for s in c.weather_stations)),
    "aws": ('[[weather_stations]] with kind = "aws"', lambda c: any(s.kind == "aws" for s in c.weather_stations)),
    "airkorea": ("[[air_stations]]", lambda c: bool(c.air_stations)),
    "tide": ("[tide]", lambda c: c.tide is not None),
}


def missing_station(city, source: str) -> str | None:
    """The config key ``source`` needs when ``city`` lists none of its stations, else None."""
    key, has = STATION_KEYS.get(source, (None, None))
    return None if has is None or has(city) else key


def readers_of(source: str) -> list[str]:
    """The domains reading ``source``, required or optional."""
    from features.registry import domains

    return [name for name, spec in domains().items() if source in (*spec.sources, *spec.optional_sources)]


def sources_of(city) -> dict[str, list[str]]:
    """Each source the domains ``city`` runs read, with the names of the domains reading it: optional ones
    (the earthquake catalogue) included, sources the city has no station for (the tide without a gauge)
    left out."""
    from features.registry import domains

    out: dict[str, list[str]] = {}
    for name, spec in domains().items():
        if not city.runs(name):
            continue
        spec = spec.for_city(city)
        for source in (*spec.sources, *spec.optional_sources):
            if missing_station(city, source) is None:  # no station: nothing to read (check_city_domains)
                out.setdefault(source, []).append(name)
    return out


def check_city_domains(city, origin: str = "") -> None:
    """Raise :class:`DataError` when a domain ``city`` runs needs a source its config has no station for
    (fine dust without ``[[air_stations]]``), naming the key to add; ``origin`` (the TOML file) leads the
    message. Sources a domain can do without (the tide, AWS) are not applicable there, never an error."""
    from features.registry import domains

    named = f"domains = {city.domains}" if city.domains is not None else "no domains key, so every domain"
    for name, spec in domains().items():
        if not city.runs(name):
            continue
        for source in spec.for_city(city).sources:
            if (key := missing_station(city, source)) is not None:
                if any(source not in needs for needs in spec.products.values()):
                    continue  # a product runs without it (traffic's hotspots); the model is skipped for no data
                raise DataError(f"{origin + ': ' if origin else ''}invalid city config: it runs {name} ({named}), "
                                f"which needs {source} observations, but it lists no {key}: add one, or leave "
                                f"{name} out of domains")

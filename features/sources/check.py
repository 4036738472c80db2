"""``data check`` and ``data import``: validate raw files of one source and install them in the raw folder.

A file is ok when its loader accepts it. Warnings (duplicate timestamps, hourly gaps, stations or
districts the city config does not know, columns with no values, values beyond the warning thresholds of
the limits table) are listed but do not fail a file.
An import installs all files of a source or none: raw data is never rewritten, only replaced whole.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.errors import DataError
from features.sources import load_files
from features.sources.formats import FORMATS, SIDECARS
from features.sources.limits import limit_of


@dataclass
class FileReport:
    """What checking one file found. ``problems`` holds the error (if not ok) and any warnings."""

    file: str
    ok: bool
    rows: int = 0
    period: tuple[pd.Timestamp, pd.Timestamp] | None = None
    entities: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    stored_as: str | None = None  # name given to the file in the raw folder by import_files
    container: str | None = None  # e.g. "CSV text", "XLSX workbook", "API JSON response", "Shapefile"
    encoding: str | None = None
    layout: str | None = None  # a header-less layout applied
    columns: dict[str, str] = field(default_factory=dict)  # canonical field <- the file's header
    matched: list[str] = field(default_factory=list)  # stations (or districts) the city config knows
    unmatched: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what reading did (rows made hourly, buildings placed)
    outside_city: bool = False  # located rows, none of them in the city: import refuses the file


# The time column whose range is the file's period, and the columns naming what a row is about.
TIME_COLUMN = {
    "asos": "time", "aws": "time", "airkorea": "time", "taas": "time", "quakes": "time",
    "buildings": "approval_date", "flood_traces": "start_date", "tide": "time", "nowcast": "issued",
    "damage_surveys": "time",
}
ENTITY_COLUMNS = {
    "asos": ("station_id",), "aws": ("station_id",), "airkorea": ("station_code",), "taas": ("district",),
    "buildings": ("sgg_cd",), "flood_traces": ("sgg_cd",), "tide": ("station",), "nowcast": ("nx", "ny"),
}
# Sources whose stations are matched (by code or name) with advice for the city config, not plain warnings.
MATCHED = ("asos", "aws", "airkorea", "tide")
# Hourly series: duplicates of these keys and missing hours between first and last are reported.
HOURLY_KEYS = {
    "asos": ("station_id", "time"), "aws": ("station_id", "time"), "airkorea": ("station_code", "time"),
    "tide": ("station", "time"),
}
# Canonical columns a source's format has no column for: always empty, not worth a warning.
ALWAYS_EMPTY = {"aws": {"snow_cm"}, "airkorea": {"station_code"}, "taas": {"lat", "lon"}, "buildings": {"pnu", "address", "lat", "lon"}}
UNIQUE_KEYS = {"nowcast": ("issued", "valid", "nx", "ny"), "damage_surveys": ("scenario_id", "cell_id")}


def entity_labels(source: str, frame: pd.DataFrame) -> pd.Series:
    """Each row's entity label (``ENTITY_COLUMNS`` joined by commas: ``"112"``, ``"55,124"``), as
    :func:`known_entities` lists them."""
    parts = [frame[c].astype("string") for c in ENTITY_COLUMNS[source]]
    label = parts[0]
    for part in parts[1:]:
        label = label + "," + part
    return label


def known_entities(source: str, city, own: bool = False) -> set[str] | None:
    """Entity labels the city config knows for ``source`` (None: nothing to compare against). ``own``: only
    the city's own stations, without the upwind weather station and the background air stations (they
    inform fine dust but do not hold up the city's hour)."""
    weather = [s for s in city.weather_stations if not (own and s.upwind)]
    if source in ("asos", "aws"):
        return {str(s.id) for s in weather if s.kind == source}
    if source == "airkorea":
        return {str(s.code) for s in city.air_stations if not (own and s.background)}
    if source in ("taas", "buildings", "flood_traces"):  # any name or code, past or present, of its 구
        return set(city.places().aliases())
    if source == "tide":  # no gauge: no tide station is the city's
        return {city.tide.station} if city.tide is not None else set()
    if source == "nowcast":
        return {f"{s.nx},{s.ny}" for s in weather}
    return None


def _warnings(source: str, frame: pd.DataFrame, entities: list[str], city) -> list[str]:
    found: list[str] = []
    keys = HOURLY_KEYS.get(source) or UNIQUE_KEYS.get(source)
    if keys:
        keyed = frame.dropna(subset=list(keys))  # rows of a station known by name only are matched later
        duplicated = int(keyed.duplicated(list(keys)).sum())
        if duplicated:
            found.append(f"{duplicated} duplicate rows of ({', '.join(keys)})")
    if source in HOURLY_KEYS:
        entity, time = HOURLY_KEYS[source]
        span = frame.groupby(entity)[time].agg(["min", "max", "nunique"])
        expected = (span["max"] - span["min"]) // pd.Timedelta(hours=1) + 1
        missing = (expected - span["nunique"]).clip(lower=0)
        for name, count in missing[missing > 0].items():
            found.append(f"{entity} {name}: {count} missing hours between {span.loc[name, 'min']} and "
                         f"{span.loc[name, 'max']}")
    known = known_entities(source, city) if city is not None and source not in MATCHED else None
    if known is not None:
        unknown = [e for e in entities if e not in known]
        if unknown:
            found.append(f"not in the city config ({city.name}): {', '.join(unknown)}")
    if source in ("static", "damage_surveys") and city is not None:
        from features.grid import build_grid

        cells = set(build_grid(city).cells["cell_id"])
        outside = frame.loc[~frame["cell_id"].isin(cells), "cell_id"]
        if len(outside):
            found.append(f"{outside.nunique()} cell_id values not in the {city.grid_m} m grid of "
                         f"{city.name}, e.g. {outside.iloc[0]}")
    empty = [c for c in frame.columns
             if c not in ALWAYS_EMPTY.get(source, set()) and frame[c].isna().all()]
    if empty:
        found.append(f"no values in: {', '.join(empty)}")
    found.extend(extremes(source, frame))
    return found


def extremes(source: str, frame: pd.DataFrame) -> list[str]:
    """One line per column with values beyond the warning thresholds of the limits table
    (``features/sources/limits.py``): plausible but extreme, so worth a look; they load all the same."""
    headers = frame.attrs.get("read", {}).get("columns", {})
    found = []
    for column in frame.columns:
        limit = limit_of(column)
        if limit is None:
            continue
        excess = limit.excess(frame[column])
        mask = excess > 0
        if not mask.any():
            continue
        rows = frame.loc[mask]
        top = rows.index[int(excess[mask].argmax())]  # the most extreme value is the example
        where = [f"{c} {rows.at[top, c]}" for c in (*ENTITY_COLUMNS.get(source, ()), TIME_COLUMN.get(source))
                 if c is not None and c in rows.columns and pd.notna(rows.at[top, c])]
        named = f"{column} ({headers[column]})" if column in headers and headers[column] != column else column
        found.append(f"{named}: {int(mask.sum()):,} value(s) {limit.warning_text()}, plausible but extreme "
                     f"(check them), e.g. {rows.at[top, column]:g}" + (f" at {', '.join(where)}" if where else ""))
    return found


def check_file(source: str, path: Path, city=None) -> FileReport:
    """Load one file and describe it; never raises for bad data."""
    path = Path(path)
    try:
        frame = load_files(source, [path])
    except DataError as exc:
        return FileReport(str(path), ok=False, problems=[str(exc)])
    except OSError as exc:
        return FileReport(str(path), ok=False, problems=[f"file {path}: cannot read: {exc}"])
    read = frame.attrs.get("read", {})
    period = None
    time = TIME_COLUMN.get(source)
    if time and frame[time].notna().any():
        period = (frame[time].min(), frame[time].max())
    entities: list[str] = []
    if source in ENTITY_COLUMNS:
        labels = entity_labels(source, frame).dropna().unique()
        entities = sorted(str(label) for label in labels)
    report = FileReport(str(path), ok=True, rows=len(frame), period=period, entities=entities,
                        problems=_warnings(source, frame, entities, city), container=read.get("container"),
                        encoding=read.get("encoding"), layout=read.get("layout"),
                        columns=dict(read.get("columns", {})), notes=list(read.get("notes", [])))
    if city is not None:
        _match(source, frame, city, report, path)
        _times(source, frame, city, report, path)
    return report


def _times(source: str, frame: pd.DataFrame, city, report: FileReport, path: Path) -> None:
    """Rows the source's time rules refuse (a time in the future or before the city's first accepted time):
    the file is refused, naming the first such row (nothing of it is stored)."""
    from features.clock import now_kst
    from features.sources.timing import violations

    bad = violations(source, frame, city.observations_since, now_kst(), live=False)
    if bad:
        i, column, reason = bad[0]
        rows = frame.attrs.get("rows")
        row = int(rows[i]) if rows is not None and i < len(rows) else None
        more = f" ({len(bad) - 1} more row{'s' if len(bad) > 2 else ''} like this)" if len(bad) > 1 else ""
        report.ok = False
        report.problems.append(str(DataError(reason + more, file=str(path), row=row, column=column)))


def _match(source: str, frame: pd.DataFrame, city, report: FileReport, path: Path) -> None:
    """Stations matched by code or name (with what to add to the city config), buildings placed."""
    from features.sources import stations

    found = None
    if source == "airkorea":
        _, found = stations.match_air(frame, city)
    elif source in ("asos", "aws"):
        found = stations.match_weather(frame, city, source)
    elif source == "tide":
        found = stations.match_tide(frame, city)
    elif (known := known_entities(source, city)) is not None:  # districts, forecast grid points
        report.matched = [e for e in report.entities if e in known]
        report.unmatched = [e for e in report.entities if e not in known]
    if found is not None:
        report.matched, report.unmatched = found.matched, found.unmatched
        if found.advice:
            report.problems.append(f"stations not in the city config ({city.name}): their rows are not used "
                                   "until you add them: " + " | ".join(found.advice))
    _outside(source, frame, city, report)
    if source == "buildings":
        report.notes.extend(_placement(frame, path).lines())
    if source == "taas" and (unplaced := int((frame["lat"].isna() | frame["lon"].isna()).sum())):
        report.notes.append(f"{unplaced:,} accidents without coordinates (경도/위도 or 발생위치X/Y_UTMK): the traffic "
                            "model counts accidents per grid cell, so these rows are not used")


#: Sources whose coordinates are places in the city (an epicentre or a survey's scenario may lie anywhere).
LOCATED = ("taas", "buildings", "flood_traces", "parcels", "addresses")


def _outside(source: str, frame: pd.DataFrame, city, report: FileReport) -> None:
    """Rows whose coordinates fall in no land cell of the city's grid (cells are the land of its real outline,
    the config's [boundary]): counted and named, and features never use them; a file with none in the city
    is marked ``outside_city`` (``import_files`` refuses it: another city's file, or lat/lon swapped?)."""
    if source not in LOCATED or not {"lat", "lon"} <= set(frame.columns) or frame["lat"].isna().all():
        return
    from features.grid import build_grid

    located = frame[["lat", "lon"]].dropna()
    inside = build_grid(city).locate(located["lat"].to_numpy(), located["lon"].to_numpy()) >= 0
    if inside.all():
        return
    first = located.index[~inside][0]
    example = f"e.g. row {first} at ({located.at[first, 'lat']:.5f}, {located.at[first, 'lon']:.5f})"
    if not inside.any():
        report.outside_city = True
        report.problems.append(f"no row's coordinates lie in {city.name} (its land cells; [boundary] of the city "
                               f"config), {example}: is this another city's file, or latitude and longitude swapped?")
    else:
        report.problems.append(f"{int((~inside).sum()):,} of {len(located):,} rows lie outside {city.name}'s "
                               f"land cells and are not used, {example}")


def _placement(frame: pd.DataFrame, path: Path):
    """Place the checked buildings with the parcel layer / address table imported in the raw folder."""
    from features.sources import source_files
    from features.sources.placement import place_buildings
    from urban_safety.settings import get_settings

    raw = get_settings().raw_dir
    layers = {name: (load_files(name, files) if (files := source_files(raw, name)) else None)
              for name in ("parcels", "addresses")}
    return place_buildings(frame, layers["parcels"], layers["addresses"])[1]


def _city(city):
    if city is not None:
        return city
    from urban_safety.settings import get_settings

    return get_settings().city_config


def check_files(source: str, files: Iterable[Path], city=None) -> list[FileReport]:
    """Check each file of ``source``; ``city`` defaults to the configured city (for station warnings)."""
    if source not in FORMATS:
        raise DataError(f"unknown source {source!r}; known: {', '.join(sorted(FORMATS))}")
    city = _city(city)
    return [check_file(source, Path(f), city) for f in files]


def stored_name(source: str, path: Path) -> str:
    """The file's name in the raw folder: its own when it matches the source's pattern, else one built
    from the pattern around the original name (``my.csv`` -> ``OBS_ASOS_TIM_my.csv``)."""
    pattern = FORMATS[source].pattern
    if fnmatch.fnmatchcase(path.name, pattern):
        return path.name
    prefix, _, suffix = pattern.partition("*")
    joiner = "" if not prefix or prefix.endswith("_") else "_"
    return f"{prefix}{joiner}{path.stem}{suffix or path.suffix}"


def sidecars(path: Path) -> list[Path]:
    """The files read together with ``path``: a Shapefile's .shx, .dbf, .prj, .cpg beside its .shp."""
    if path.suffix.lower() != ".shp":
        return []
    return [f for f in sorted(path.parent.glob(f"{glob.escape(path.stem)}.*"))
            if f.suffix.lower() in SIDECARS]


def import_files(source: str, files: Iterable[Path], raw_dir: Path, city=None) -> list[FileReport]:
    """Replace ``raw_dir/<source>`` with ``files`` if every one of them is valid; else write nothing.

    Files are copied byte for byte into a temporary folder beside the target, which is then renamed
    into place; the previous folder is deleted only after that rename succeeded.
    """
    files = [Path(f) for f in files]
    reports = check_files(source, files, city)
    if not files:
        return reports
    for report, path in zip(reports, files, strict=True):
        if report.outside_city:
            report.ok = False
        report.stored_as = stored_name(source, path)
        if report.stored_as != path.name:
            report.problems.append(f"stored as {report.stored_as} (the name must match "
                                   f"{FORMATS[source].pattern})")
    names = [r.stored_as for r in reports]
    for report in reports:
        if names.count(report.stored_as) > 1:
            report.ok = False
            report.problems.append(f"two files would be stored as {report.stored_as}")
    if not all(r.ok for r in reports):
        return reports
    _install(source, files, names, Path(raw_dir))
    return reports


def _install(source: str, files: list[Path], names: list[str], raw_dir: Path) -> None:
    raw_dir.mkdir(parents=True, exist_ok=True)
    target = raw_dir / source
    staging = Path(tempfile.mkdtemp(prefix=f".{source}.new.", dir=raw_dir))
    parked = Path(tempfile.mkdtemp(prefix=f".{source}.old.", dir=raw_dir)) / source
    try:
        for path, name in zip(files, names, strict=True):
            shutil.copy2(path, staging / name)
            for extra in sidecars(path):
                shutil.copy2(extra, staging / (Path(name).stem + extra.suffix))
        had_target = target.exists()
        if had_target:
            os.replace(target, parked)
        try:
            os.replace(staging, target)
        except OSError:
            if had_target:  # put the previous data back before reporting the failure
                os.replace(parked, target)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(parked.parent, ignore_errors=True)

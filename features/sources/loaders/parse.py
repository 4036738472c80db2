"""Column parsers: text cells in, typed Series out, or a :class:`DataError` at the first bad cell.

All parsers are vectorised; Python only runs per row on the error path (to quote the bad value).
A column the file does not have (an optional one) parses to all-missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.sources.loaders.csvfile import RawTable

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")
_COORD = r"(?i)^(?P<pre>[NSEW])?\s*(?P<num>[+-]?\d+(?:\.\d+)?)\s*°?\s*(?P<post>[NSEW])?$"


def extract(values: pd.Series, pattern: str) -> pd.DataFrame:
    """Named groups of an RE2 ``pattern`` as text columns; NaN where a cell does not match or a group
    took no part in the match (all groups must be named).

    Arrow runs the regex in C++; pandas' ``str.extract`` loops in Python (seconds on 250k rows).
    """
    matched = pc.extract_regex(pa.array(values, type=pa.large_string(), from_pandas=True), pattern)
    columns = {}
    for i in range(matched.type.num_fields):
        group = pc.struct_field(matched, [i])
        group = pc.if_else(pc.equal(group, ""), pa.scalar(None, group.type), group)
        # to_pandas() numbers rows from 0: relabel them, never align on the index.
        columns[matched.type.field(i).name] = group.to_pandas().astype("str").set_axis(values.index)
    return pd.DataFrame(columns, index=values.index)


def to_float(values: pd.Series) -> pd.Series:
    """Text to float64: NaN where blank (null) or not a number."""
    try:
        cast = pc.cast(pa.array(values, type=pa.large_string(), from_pandas=True), pa.float64())
        return pd.Series(cast.to_numpy(zero_copy_only=False), index=values.index, dtype="float64")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Some cell is not a number: the slower pandas path marks exactly which ones.
        return pd.to_numeric(values, errors="coerce").astype("float64")


def _missing(table: RawTable, dtype) -> pd.Series:
    return pd.Series(np.nan, index=table.index, dtype=dtype)


def text(table: RawTable, key: str, missing: Iterable[str] = ("",)) -> pd.Series:
    """Stripped text; ``missing`` tokens become NaN."""
    if not table.has(key):
        return _missing(table, "str")
    raw = table.raw(key)
    return raw.mask(raw.isin(list(missing)))


def number(table: RawTable, key: str, missing: Iterable[str] = ("",), required: bool = False,
           expected: str = "a number", sentinels: bool = True) -> pd.Series:
    """Floats; thousands separators ("1,234.5") are dropped, ``missing`` tokens become NaN, and so do the
    source's sentinels (``table.sentinels``, e.g. KMA's -99 for "not observed") unless ``sentinels`` is
    false (identifiers and codes are not measurements)."""
    if not table.has(key):
        return _missing(table, "float64")
    raw = table.raw(key)
    blank = raw.isin(list(missing))
    if required:
        table.check(key, blank, f"{expected} (blank not allowed)")
    cleaned = raw
    if raw.str.contains(",", regex=False).any():
        cleaned = raw.str.replace(_THOUSANDS, "", regex=True)
    values = to_float(cleaned.mask(blank))
    table.check(key, values.isna() & ~blank | np.isinf(values), expected)
    return values.mask(values.isin(table.sentinels)) if sentinels and table.sentinels else values


def integer(table: RawTable, key: str, missing: Iterable[str] = ("",), default: int | None = None,
            expected: str = "a whole number") -> pd.Series:
    """Integers (int64). Blank cells take ``default``, or are an error when there is none."""
    values = number(table, key, missing, required=default is None, expected=expected, sentinels=False)
    if default is not None:
        values = values.fillna(default)
    table.check(key, values != np.round(values), expected)
    return values.astype("int64")


def codes(table: RawTable, key: str, digits: int | None = None, nullable: bool = False) -> pd.Series:
    """Administrative codes (digits only, optionally of a fixed length) as integers (Int64 if nullable)."""
    raw = table.raw(key)
    blank = raw == ""
    expected = f"a {digits}-digit code" if digits else "a numeric code"
    if not nullable:
        table.check(key, blank, f"{expected} (blank not allowed)")
    pattern = rf"\d{{{digits}}}" if digits else r"\d+"
    table.check(key, ~blank & ~raw.str.fullmatch(pattern), expected)
    values = to_float(raw.mask(blank))
    return values.astype("Int64") if nullable else values.astype("int64")


def date_parts(table: RawTable, key: str, patterns: str | Iterable[str], expected: str, required: bool = True,
               max_hour: int = 23, values: pd.Series | None = None) -> pd.Series:
    """Datetimes from regexes with named groups year, month, day and optional hour, minute, second, tried
    in turn on the cells still unmatched (a contract's time layouts).

    A group the pattern lacks, or that did not take part in the match, counts as 0. The hour is added
    as a duration, so ``max_hour=24`` turns AirKorea's hour 24 into 00:00 of the next day.
    ``values`` replaces the cells (e.g. after repairing a quirk); messages still quote the file.
    """
    if not table.has(key) and values is None:
        return _missing(table, "datetime64[ns]")
    raw = table.raw(key) if values is None else values
    blank = raw == ""
    if required:
        table.check(key, blank, f"{expected} (blank not allowed)")
    patterns = (patterns,) if isinstance(patterns, str) else tuple(patterns)
    names = ("year", "month", "day", "hour", "minute", "second")
    parts = pd.DataFrame(np.nan, index=raw.index, columns=list(names))
    todo = ~blank
    for pattern in patterns:
        if not todo.any():
            break
        found = extract(raw[todo], pattern)
        hit = found["year"].notna()
        for name in names:
            if name in found:
                parts.loc[found.index[hit], name] = to_float(found.loc[hit, name])
        todo &= parts["year"].isna()
    matched = parts["year"].notna()
    day = pd.to_datetime(parts[["year", "month", "day"]], errors="coerce")
    hour, minute, second = (parts[n].fillna(0) for n in ("hour", "minute", "second"))
    bad = ~blank & (~matched | day.isna() | ~hour.between(0, max_hour) | ~minute.between(0, 59)
                    | ~second.between(0, 59))
    table.check(key, bad, expected)
    return (day + pd.to_timedelta(hour, unit="h") + pd.to_timedelta(minute, unit="min")
            + pd.to_timedelta(second, unit="s")).astype("datetime64[ns]")


def coordinate(table: RawTable, key: str, axis: str) -> pd.Series:
    """Degrees from "37.50 N", "N 37.50", "126.20 E" or a plain number; S and W are negative."""
    raw = table.raw(key)
    plain = to_float(raw)
    if plain.notna().all():  # the common case, without the regex
        return plain
    letters = "NS" if axis == "lat" else "EW"
    expected = f"a {'latitude' if axis == 'lat' else 'longitude'} like 37.50, '37.50 {letters[0]}'"
    parts = extract(raw, _COORD)
    hemi = parts["pre"].fillna(parts["post"]).str.upper()
    bad = parts["num"].isna() | (parts["pre"].notna() & parts["post"].notna()) | (
        hemi.notna() & ~hemi.isin(list(letters)))
    table.check(key, bad, expected)
    values = to_float(parts["num"])
    return values.where(hemi != letters[1], -values)

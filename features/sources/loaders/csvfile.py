"""Reading a raw CSV export: encoding, header matching, and turning schema failures into a located error.

Every value is read as text (``dtype=str``, no NA guessing) so the loaders decide what a blank, a "-"
or "강수없음" means. The frame keeps pandas' row position as its index and blank lines are kept while
reading, so ``index + 2`` is always the line number in the file (the header is line 1).
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from features.errors import DataError
from features.sources.canonical import SCHEMAS

# CP949 is a superset of EUC-KR, so one attempt covers both; UTF-8 is tried first because a CP949
# decoder accepts many byte sequences that are really UTF-8 and would produce mojibake.
ENCODINGS = ("utf-8-sig", "cp949")
_UNIT_SUFFIX = re.compile(r"[\(\[（][^\)\]）]*[\)\]）]$")


def header_key(name: str) -> str:
    """The matching key of a header: width-normalised, unit suffix, spaces and dots removed, lowercase.

    "강수량(mm)", "강수량 (mm)" and "강수량" match; so do "PM2.5" and "PM25", "기온(°C)" and "기온(℃)".
    """
    text = unicodedata.normalize("NFKC", str(name)).strip().lstrip("\ufeff")
    text = _UNIT_SUFFIX.sub("", text.strip())
    return re.sub(r"[\s.]", "", text).casefold()


def detect_encoding(data: bytes, path: Path) -> str:
    """The encoding ``data`` decodes with: UTF-8 (with or without BOM), else CP949."""
    first_error: UnicodeDecodeError | None = None
    for encoding in ENCODINGS:
        try:
            data.decode(encoding)
            return encoding
        except UnicodeDecodeError as exc:
            first_error = first_error or exc
    line = data.count(b"\n", 0, first_error.start) + 1
    raise DataError(f"not UTF-8 or CP949/EUC-KR text (undecodable byte at offset {first_error.start})",
                    file=str(path), row=line)


@dataclass
class RawTable:
    """One file's cells as stripped text, with the header each wanted column was found under."""

    path: Path
    frame: pd.DataFrame
    headers: dict[str, str]  # loader's key -> header as printed in this file
    encoding: str

    @property
    def file(self) -> str:
        return str(self.path)

    @property
    def index(self) -> pd.Index:
        return self.frame.index

    def subset(self, rows: pd.Series) -> RawTable:
        """The same file restricted to some rows (positions, hence line numbers, are kept)."""
        return RawTable(self.path, self.frame[rows], self.headers, self.encoding)

    def has(self, key: str) -> bool:
        return key in self.headers

    def column(self, key: str) -> str:
        """The source's own name of a column, for messages."""
        return self.headers.get(key, key)

    def raw(self, key: str) -> pd.Series:
        """The column's cells, whitespace-stripped ("" where blank)."""
        return self.frame[self.headers[key]].str.strip()

    def fail(self, key: str, bad: pd.Series, expected: str, raw: pd.Series | None = None) -> DataError:
        """A :class:`DataError` for the first row where ``bad`` holds, quoting the file's value."""
        bad = bad.fillna(False).astype(bool)
        first = bad.idxmax()
        value = (raw if raw is not None else self.raw(key)).loc[first]
        more = int(bad.sum()) - 1
        tail = f" ({more} more row{'s' if more > 1 else ''} like this)" if more > 0 else ""
        return DataError(f"bad value {value!r}: expected {expected}{tail}",
                         file=self.file, row=line_of(first), column=self.column(key))

    def check(self, key: str, bad: pd.Series, expected: str, raw: pd.Series | None = None) -> None:
        """Raise :meth:`fail` if ``bad`` holds anywhere."""
        if bad.any():
            raise self.fail(key, bad, expected, raw)


def line_of(index) -> int:
    """Line number in the file of a frame row (header = line 1)."""
    return int(index) + 2


def read_table(path: Path, columns: Mapping[str, Iterable[str]], optional: Iterable[str] = ()) -> RawTable:
    """Read ``path`` as text and find each wanted column.

    ``columns`` maps the loader's key to the header names it accepts (the first is the name the source
    prints, used in messages); keys not in ``optional`` must be present.
    """
    path = Path(path)
    data = path.read_bytes()
    encoding = detect_encoding(data, path)
    frame = _parse_csv(data, encoding, path)
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    # Short rows leave NaN behind; blank lines are kept while reading (so positions stay line numbers)
    # and dropped here.
    frame = frame.fillna("")
    frame = frame[(frame != "").any(axis=1)] if len(frame.columns) else frame
    found: dict[str, str] = {}
    for name in frame.columns:
        found.setdefault(header_key(name), name)
    optional = set(optional)
    headers: dict[str, str] = {}
    for key, names in columns.items():
        names = tuple(names)
        hit = next((found[header_key(n)] for n in names if header_key(n) in found), None)
        if hit is not None:
            headers[key] = hit
        elif key not in optional:
            raise DataError(f"missing column {names[0]!r} (the file has: {', '.join(frame.columns)})",
                            file=str(path), column=names[0])
    if frame.empty:
        raise DataError("no data rows", file=str(path))
    return RawTable(path, frame, headers, encoding)


def _has_blank_line(data: bytes) -> bool:
    # Plain substring scans: a regex over the whole file costs more than the parse it guards.
    return data.startswith((b"\n", b"\r\n")) or b"\n\n" in data or b"\n\r\n" in data


def _parse_csv(data: bytes, encoding: str, path: Path) -> pd.DataFrame:
    """All cells as text, one frame row per file line after the header."""
    # Arrow's reader is several times faster but drops blank lines (shifting line numbers) and rejects
    # ragged rows, so those files take pandas' C reader, which keeps blank lines as empty rows.
    if not _has_blank_line(data):
        try:
            return pd.read_csv(io.BytesIO(data), encoding=encoding, dtype=str, keep_default_na=False,
                               engine="pyarrow")
        except Exception:  # any Arrow failure: the C reader decides, and explains where
            pass
    try:
        return pd.read_csv(io.BytesIO(data), encoding=encoding, dtype=str, keep_default_na=False,
                           skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise DataError(f"not a readable CSV file: {exc}", file=str(path),
                        row=int(line.group(1)) if line else None) from exc


_CHECK_TEXT = [
    (re.compile(r"in_range\((.+), (.+)\)"), "a value between {0} and {1}"),
    (re.compile(r"greater_than_or_equal_to\((.+)\)"), "a value >= {0}"),
    (re.compile(r"less_than_or_equal_to\((.+)\)"), "a value <= {0}"),
    (re.compile(r"isin\((.+)\)"), "one of {0}"),
    (re.compile(r"not_nullable"), "a value (blank not allowed)"),
    (re.compile(r"field_uniqueness"), "a unique value (this one repeats)"),
    (re.compile(r"coerce_dtype\('?(\w+)'?\)"), "a value of type {0}"),
]


def _describe(check: str) -> str:
    for pattern, text in _CHECK_TEXT:
        match = pattern.search(check)
        if match:
            return text.format(*match.groups())
    return check


def finish(table: RawTable, frame: pd.DataFrame, source: str, origin: Mapping[str, str]) -> pd.DataFrame:
    """Validate a loader's frame with the canonical schema of ``source`` and return it.

    ``origin`` maps each canonical column to the loader's key of the file column it came from, so a
    failure is reported under the source's own column name at the file's line.
    """
    schema = SCHEMAS[source]
    frame = frame[list(schema.columns)]
    try:
        out = schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        raise _schema_error(table, exc.failure_cases, origin) from None
    return out.reset_index(drop=True)


def _schema_error(table: RawTable, cases: pd.DataFrame, origin: Mapping[str, str]) -> DataError:
    located = cases[cases["index"].notna()]
    if located.empty:
        case = cases.iloc[0]
        key = origin.get(str(case["column"]), str(case["column"]))
        return DataError(f"{case['check']}: {case['failure_case']}", file=table.file,
                         column=table.column(key))
    order = located["index"].astype("int64").sort_values(kind="stable")
    case = located.loc[order.index[0]]
    index = int(case["index"])
    key = origin.get(str(case["column"]), str(case["column"]))
    value = table.raw(key).get(index, case["failure_case"]) if table.has(key) else case["failure_case"]
    more = int((located["column"] == case["column"]).sum()) - 1
    tail = f" ({more} more row{'s' if more > 1 else ''} like this)" if more > 0 else ""
    return DataError(f"bad value {value!r}: expected {_describe(str(case['check']))}{tail}",
                     file=table.file, row=line_of(index), column=table.column(key))

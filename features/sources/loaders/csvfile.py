"""Reading a raw export: its cells from the container's reader, its header matched to the source's contract,
and schema failures turned into a located error.

Every value is text (no NA guessing) so the loaders decide what a blank, a "-" or "강수없음" means. The
frame's index is the row's number in the file (see ``features/sources/readers.py``), so messages name
the line of a text file, the row of a sheet or the item of an API response.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from features.errors import DataError
from features.sources.canonical import SCHEMAS
from features.sources.contracts import Contract, Layout
from features.sources.limits import limit_of
from features.sources.readers import Cells, detect_encoding, read_cells  # noqa: F401  (re-exported)

_UNIT_SUFFIX = re.compile(r"[\(\[（][^\)\]）]*[\)\]）]$")
HEADER_SEARCH_ROWS = 30  # title rows above the header (older KMA workbooks) are skipped up to this


def header_key(name: str) -> str:
    """The matching key of a header: width-normalised, unit suffix, spaces and dots removed, lowercase.

    "강수량(mm)", "강수량 (mm)" and "강수량" match; so do "PM2.5" and "PM25", "기온(°C)" and "기온(℃)".
    """
    text = unicodedata.normalize("NFKC", str(name)).strip().lstrip("\ufeff")
    text = _UNIT_SUFFIX.sub("", text.strip())
    return re.sub(r"[\s.]", "", text).casefold()


@dataclass
class RawTable:
    """One file's cells as stripped text, with the header each wanted column was found under."""

    path: Path
    frame: pd.DataFrame
    headers: dict[str, str]  # loader's key -> header as printed in this file
    encoding: str | None
    container: str = "CSV text"
    layout: str | None = None  # the header-less layout applied, if any
    notes: list[str] = field(default_factory=list)  # what reading did to the rows (e.g. made hourly)
    sentinels: tuple[float, ...] = ()  # numbers the source writes for "not observed" (its contract's)

    @property
    def file(self) -> str:
        return str(self.path)

    @property
    def index(self) -> pd.Index:
        return self.frame.index

    def subset(self, rows: pd.Series) -> RawTable:
        """The same file restricted to some rows (positions, hence line numbers, are kept)."""
        return RawTable(self.path, self.frame[rows], self.headers, self.encoding, self.container, self.layout,
                        self.notes, self.sentinels)

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
        values = (raw if raw is not None else self.raw(key))
        value = values.loc[first]
        more = int(bad.sum()) - 1
        tail = f" ({more} more row{'s' if more > 1 else ''} like this)" if more > 0 else ""
        cases = [(line_of(i), f"bad value {v!r}: expected {expected}") for i, v in values[bad].items()]
        return DataError(f"bad value {value!r}: expected {expected}{tail}",
                         file=self.file, row=line_of(first), column=self.column(key), cases=cases)

    def check(self, key: str, bad: pd.Series, expected: str, raw: pd.Series | None = None) -> None:
        """Raise :meth:`fail` if ``bad`` holds anywhere."""
        if bad.any():
            raise self.fail(key, bad, expected, raw)

    def describe(self) -> dict:
        """What reading found: container, encoding, layout and the header each field was read from."""
        return {"container": self.container, "encoding": self.encoding, "layout": self.layout,
                "columns": dict(self.headers), "notes": list(self.notes)}


def line_of(index) -> int:
    """Line (row, item) number in the file of a frame row: the index is that number."""
    return int(index)


def _match(cells: list[str], contract: Contract) -> dict[str, int]:
    """Position of each contract field among a row's cells (first alias that matches)."""
    found: dict[str, int] = {}
    for pos, name in enumerate(cells):
        found.setdefault(header_key(name), pos)
    out = {}
    for key, names in contract.columns.items():
        hit = next((found[header_key(n)] for n in names if header_key(n) in found), None)
        if hit is not None:
            out[key] = hit
    return out


def _header(cells: Cells, contract: Contract, path: Path) -> tuple[pd.DataFrame, dict[str, str], str | None]:
    """(data rows with named columns, key -> header, layout name): the header row is the first of the top
    rows holding every required field; a header-less file takes a layout of the same width."""
    frame = cells.frame
    required = set(contract.required())
    if cells.named:
        names = [str(c) for c in frame.columns]
        hits = _match(names, contract)
        _require(hits, contract, names, path)
        return frame, {k: names[p] for k, p in hits.items()}, None
    best_row, best = None, {}
    for line, row in frame.head(HEADER_SEARCH_ROWS).iterrows():
        hits = _match([str(v) for v in row.tolist()], contract)
        if required <= hits.keys():
            names = [str(v).strip().lstrip("\ufeff") or f"column {i + 1}" for i, v in enumerate(row.tolist())]
            data = frame.loc[frame.index > line].set_axis(names, axis=1)
            return data, {k: names[p] for k, p in hits.items()}, None
        if len(hits) > len(best):
            best_row, best = line, hits
    width = len(frame.columns)
    for layout in contract.layouts:
        if not best and width == layout.width:
            return _positional(frame, layout), {k: f"field {p + 1}" for k, p in layout.positions.items()}, \
                layout.name
    shown = frame.loc[best_row].tolist() if best_row is not None else (frame.iloc[0].tolist() if len(frame) else [])
    _require(best, contract, [str(v) for v in shown if str(v)], path)
    raise AssertionError("unreachable")  # _require raised


def _positional(frame: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    return pd.DataFrame({f"field {p + 1}": frame.iloc[:, p] for p in layout.positions.values()}, index=frame.index)


def _require(hits: dict, contract: Contract, names: list[str], path: Path) -> None:
    missing = [k for k in contract.required() if k not in hits]
    if missing:
        first = contract.columns[missing[0]]
        aliases = f" (or {', '.join(repr(a) for a in first[1:])})" if len(first) > 1 else ""
        layouts = "".join(f"; nor is it the header-less {lay.name} ({lay.width} fields)" for lay in contract.layouts)
        raise DataError(f"missing column {first[0]!r}{aliases} (the file has: {', '.join(names)}){layouts}",
                        file=str(path), column=first[0])
    if contract.one_of and not any(k in hits for k in contract.one_of):
        wanted = ", ".join(contract.columns[k][0] for k in contract.one_of)
        raise DataError(f"none of the value columns {wanted} (the file has: {', '.join(names)})", file=str(path))


def read_table(path: Path, contract: Contract) -> RawTable:
    """Read ``path`` in whatever container it came and find each field of the source's ``contract``."""
    path = Path(path)
    cells = read_cells(path)
    frame, headers, layout = _header(cells, contract, path)
    if frame.empty:
        raise DataError(f"no data rows ({cells.container})", file=str(path))
    return RawTable(path, frame, headers, cells.encoding, cells.container, layout, sentinels=contract.sentinels)


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
    rows = out.index.to_numpy()
    out = out.reset_index(drop=True)
    out.attrs["read"] = table.describe()  # for `data check`: container, encoding, header mapping
    out.attrs["rows"] = rows  # each row's number in the file, for messages about rows found later
    return out


def hourly(frame: pd.DataFrame, source: str, key: str, cumulative: pd.Series | None = None) -> pd.DataFrame:
    """A finished frame with its finer rows made hourly by the source's time rule
    (:func:`features.sources.timing.to_cadence`); what was done, and the rows left out, are noted in
    ``attrs`` (``read.notes``, ``dropped``)."""
    from features.sources.timing import to_cadence

    read, rows = frame.attrs["read"], frame.attrs["rows"]
    rolled = to_cadence(source, frame, key, rows, cumulative)
    out = rolled.frame
    if rolled.note:
        read["notes"].append(rolled.note)
    out.attrs.update(read=read, rows=rolled.rows, dropped=rolled.dropped)
    return out


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
    expected = _describe(str(case["check"]))
    if (limit := limit_of(str(case["column"]))) is not None and "between" in expected:
        expected += f" {limit.unit}, the physical limits"  # the bound comes from features/sources/limits.py
    same = located[(located["column"] == case["column"]) & (located["check"] == case["check"])]
    cases = [(line_of(int(i)), f"bad value {table.raw(key).get(int(i), v) if table.has(key) else v!r}: "
              f"expected {expected}") for i, v in zip(same["index"], same["failure_case"], strict=True)]
    return DataError(f"bad value {value!r}: expected {expected}{tail}",
                     file=table.file, row=line_of(index), column=table.column(key), cases=cases)

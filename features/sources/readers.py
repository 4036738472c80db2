"""Readers by container: whatever a portal delivered, one grid of text cells comes out.

The container is told by the file's bytes, not its name (the KMA earthquake list is an HTML table saved
as ``.xls``): ZIP -> XLSX workbook, OLE2 -> XLS workbook, SQLite -> GeoPackage, ``.shp``/``.dbf`` ->
Shapefile, ``<table`` -> HTML table, a GML FeatureCollection -> WFS answer, ``{``/``[`` -> API JSON
response (``response.body.items.item``) or GeoJSON, anything else -> delimited text (``,``, ``|``, tab or ``;``, CP949/EUC-KR or UTF-8 with or
without BOM). File formats and projections are left to well-kept libraries: python-calamine for
workbooks, lxml for HTML, pyogrio (GDAL) + shapely + pyproj for vector layers.

A :class:`Cells` frame holds text only ("" where blank); its index is the row's number in the file
(line of a text file, row of a sheet, item of a JSON list, feature of a layer), so messages can point
at it. Tabular containers keep their header row among the cells (``named=False``): the source's
contract finds it, which also skips title rows above it. JSON items and layer attributes come named.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from pathlib import Path

import pandas as pd

from features.errors import DataError

# CP949 is a superset of EUC-KR, so one attempt covers both; UTF-8 is tried first because a CP949
# decoder accepts many byte sequences that are really UTF-8 and would produce mojibake.
ENCODINGS = ("utf-8-sig", "cp949")
DELIMITERS = (",", "|", "\t", ";")
DELIMITER_NAMES = {",": "comma", "|": "|", "\t": "tab", ";": ";"}


@dataclass
class Cells:
    """One file's cells as text, the container they came in and the encoding of its text."""

    frame: pd.DataFrame
    container: str  # e.g. "CSV text", "XLSX workbook", "HTML table", "API JSON response", "Shapefile"
    encoding: str | None = None  # of the text, where the container is text
    named: bool = False  # columns already carry the source's names (JSON items, layer attributes)
    crs: str | None = None  # of a vector layer's geometry, before it was made WGS84


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


def encoding_name(encoding: str | None, data: bytes = b"") -> str | None:
    if encoding == "utf-8-sig":
        return "UTF-8 with BOM" if data.startswith(b"\xef\xbb\xbf") else "UTF-8"
    return {"cp949": "CP949/EUC-KR"}.get(encoding, encoding)


GEO_SUFFIXES = (".shp", ".dbf", ".shx", ".geojson", ".gpkg")


def read_cells(path: Path) -> Cells:
    """The cells of ``path``, whatever its container (raises :class:`DataError` naming the container)."""
    path = Path(path)
    if path.suffix.lower() in (".shp", ".dbf", ".shx"):
        return _read_layer(path.with_suffix(".shp"), "Shapefile")
    data = path.read_bytes()
    if data.startswith(b"PK\x03\x04"):
        return _read_workbook(path, "XLSX workbook")
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        return _read_workbook(path, "XLS workbook")
    if data.startswith(b"SQLite format 3\x00"):
        return _read_layer(path, "GeoPackage")
    if data.startswith(b"%PDF"):
        raise DataError("a PDF document, not a data file: download the data as CSV, XLSX or JSON",
                        file=str(path))
    encoding = detect_encoding(data, path)
    text = data.decode(encoding)
    head = text.lstrip()[:2000].lower()
    if head.startswith("<") and "featurecollection" in head:  # a WFS GetFeature answer in GML
        return _read_layer(path, "WFS GML")
    if head.startswith("<") and "<table" in text[:200_000].lower():
        return _read_html(text, path, encoding_name(encoding, data))
    if head.startswith("<"):
        raise DataError("an XML/HTML document without a table (an API XML response? ask the API for JSON: "
                        "dataType=JSON or _type=json)", file=str(path))
    if head.startswith(("{", "[")):
        return _read_json(text, path, encoding_name(encoding, data))
    return _read_delimited(data, text, encoding, path)


def _read_delimited(data: bytes, text: str, encoding: str, path: Path) -> Cells:
    """Delimited text: the delimiter is the most frequent candidate on the first non-blank line."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max(DELIMITERS, key=first.count)
    if not first.count(delimiter):
        delimiter = ","
    container = "CSV text" if delimiter == "," else f"delimited text ({DELIMITER_NAMES[delimiter]})"
    frame = _parse_delimited(data, encoding, delimiter, path, container)
    # Short rows leave NaN behind; blank lines were kept (so positions are lines) and are dropped here.
    frame = frame.fillna("")
    frame.index = frame.index + 1  # line numbers
    frame = frame[(frame != "").any(axis=1)] if len(frame.columns) else frame
    return Cells(frame, container, encoding_name(encoding, data))


def _has_blank_line(data: bytes) -> bool:
    # Plain substring scans: a regex over the whole file costs more than the parse it guards.
    return data.startswith((b"\n", b"\r\n")) or b"\n\n" in data or b"\n\r\n" in data


def _parse_delimited(data: bytes, encoding: str, delimiter: str, path: Path, container: str) -> pd.DataFrame:
    """All cells as text, one frame row per file line (header included)."""
    # Arrow's reader is several times faster but drops blank lines (shifting line numbers) and rejects
    # ragged rows, so those files take pandas' C reader, which keeps blank lines as empty rows.
    options = dict(encoding=encoding, dtype=str, keep_default_na=False, header=None, sep=delimiter)
    if delimiter != ",":  # bulk register text has no quoting: a stray '"' is part of a value
        options["quoting"] = csv.QUOTE_NONE
    if not _has_blank_line(data) and delimiter == ",":
        try:
            return pd.read_csv(io.BytesIO(data), engine="pyarrow", **options)
        except Exception:  # any Arrow failure: the C reader decides, and explains where
            pass
    try:
        return pd.read_csv(io.BytesIO(data), skip_blank_lines=False, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise DataError(f"not readable as {container}: {exc}", file=str(path),
                        row=int(line.group(1)) if line else None) from exc


def cell_text(value) -> str:
    """A typed workbook or JSON cell as the text a CSV export would print."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S" if value.second else "%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return str(value).strip()


def _rows_frame(rows: list[list], first: int = 1) -> pd.DataFrame:
    width = max((len(r) for r in rows), default=0)
    frame = pd.DataFrame([[cell_text(v) for v in r] + [""] * (width - len(r)) for r in rows],
                         dtype=object)
    frame.index = pd.RangeIndex(first, first + len(frame))
    return frame[(frame != "").any(axis=1)] if width else frame


def _read_workbook(path: Path, container: str) -> Cells:
    """The first sheet with any cells; the index is the sheet's row number."""
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(str(path))
        for name in book.sheet_names:
            rows = book.get_sheet_by_name(name).to_python(skip_empty_area=False)
            if any(any(cell not in ("", None) for cell in row) for row in rows):
                return Cells(_rows_frame(rows), container)
    except Exception as exc:  # calamine's own errors: a damaged or password-protected workbook
        raise DataError(f"not readable as an {container}: {exc}", file=str(path)) from None
    raise DataError(f"an {container} with no cells", file=str(path))


def _read_html(text: str, path: Path, encoding: str | None) -> Cells:
    """The largest ``<table>``: each ``<tr>`` a row, ``<th>`` and ``<td>`` cells alike."""
    import lxml.html

    doc = lxml.html.fromstring(text)
    tables = [[[" ".join(c.text_content().split()) for c in tr.xpath("./th|./td")] for tr in t.xpath(".//tr")]
              for t in doc.xpath("//table")]
    rows = max(tables, key=len, default=[])
    if not rows:
        raise DataError("an HTML table with no rows", file=str(path))
    return Cells(_rows_frame(rows), "HTML table", encoding)


def _read_json(text: str, path: Path, encoding: str | None) -> Cells:
    """An open-API response (``response.body.items.item``, or a bare list of items), or GeoJSON."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not readable as an API JSON response: {exc.msg}", file=str(path),
                        row=exc.lineno) from None
    if isinstance(doc, dict) and doc.get("type") in ("FeatureCollection", "Feature"):
        return _read_layer(path, "GeoJSON")
    items = api_items(doc, path)
    frame = pd.DataFrame([{k: cell_text(v) for k, v in item.items()} for item in items], dtype=object)
    frame = frame.fillna("")
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    return Cells(frame, "API JSON response", encoding, named=True)


def api_items(doc, path: Path) -> list[dict]:
    """The item list of a data.go.kr response; an error header (resultCode other than 00) is the error."""
    if isinstance(doc, list):
        items = doc
    else:
        response = doc.get("response", doc) if isinstance(doc, dict) else {}
        header = response.get("header") or {}
        code = str(header.get("resultCode", "00"))
        if code not in ("00", "0", "0000"):
            raise DataError(f"the API JSON response is an error: resultCode {code} "
                            f"{header.get('resultMsg', '')}".rstrip(), file=str(path))
        body = response.get("body") or {}
        items = (body.get("items") or {}) if isinstance(body, dict) else {}
        items = items.get("item", []) if isinstance(items, dict) else items
    items = [items] if isinstance(items, dict) else items
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise DataError("an API JSON response without response.body.items.item", file=str(path))
    if not items:
        raise DataError("an API JSON response with no items (totalCount 0)", file=str(path))
    return items


def _dbf_encoding(shp: Path) -> str | None:
    """The DBF's text encoding: its .cpg when there is one, else UTF-8 if its records decode, else CP949
    (Korean portals ship DBFs in CP949 without a .cpg, which GDAL would read as Latin-1)."""
    cpg = shp.with_suffix(".cpg")
    if cpg.exists():
        return None  # GDAL reads the .cpg itself
    dbf = shp.with_suffix(".dbf")
    if not dbf.exists():
        return None
    data = dbf.read_bytes()
    header_len = int.from_bytes(data[8:10], "little") if len(data) > 10 else 0
    try:
        data[header_len:].decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "cp949"


@cache
def _to_wgs84(crs: str):
    from pyproj import Transformer

    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def _read_layer(path: Path, container: str) -> Cells:
    """A vector layer's attributes, with its geometry as a WGS84 point WKT in ``geometry`` (the feature's
    centroid, or a point on it for shapes whose centroid falls outside) whatever CRS the layer declares."""
    import pyogrio
    import shapely

    if not path.exists():
        raise DataError(f"{container} {path.name} not found (a Shapefile needs its .shp, .shx and .dbf)",
                        file=str(path))
    try:
        encoding = _dbf_encoding(path) if container == "Shapefile" else None
        meta, _, geometry, fields = pyogrio.raw.read(str(path), encoding=encoding)
    except Exception as exc:  # GDAL's errors: a missing .shx, a broken layer
        raise DataError(f"not readable as a {container}: {exc}", file=str(path)) from None
    frame = pd.DataFrame({str(name): [cell_text(v) for v in values]
                          for name, values in zip(meta["fields"], fields, strict=True)}, dtype=object)
    crs = meta.get("crs")
    if geometry is not None:
        shapes = shapely.from_wkb(geometry)
        centre = shapely.centroid(shapes)
        outside = ~shapely.contains(shapes, centre) & (shapely.get_type_id(shapes) > 2)
        centre[outside] = shapely.point_on_surface(shapes[outside])
        x, y = shapely.get_x(centre), shapely.get_y(centre)
        if crs is None:
            raise DataError(f"a {container} without a CRS (.prj missing): cannot place its geometry",
                            file=str(path))
        if crs.upper() not in ("EPSG:4326", "OGC:CRS84"):
            x, y = _to_wgs84(crs).transform(x, y)
        frame["geometry"] = [f"POINT ({lon:.6f} {lat:.6f})" if math.isfinite(lon) else ""
                             for lon, lat in zip(x, y, strict=True)]
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    return Cells(frame, container, encoding_name(encoding) or meta.get("encoding"), named=True, crs=crs)

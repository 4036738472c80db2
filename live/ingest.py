"""The ways observations come in: an API batch, a file dropped in the inbox, a fetch from an open API.

Every way reads its rows through the source's contract and canonical schema, the same path as
``urban-safety data import`` (``features.sources.load_files``), so a field name, a "-" or a "강수없음" means
the same whatever door it came through. A row that fails is refused with its row number and reason; the
other rows of the batch land. A row of a station the city does not know is refused too (it would be
stored and never read). Nothing is lost silently: every batch reports accepted, duplicate and refused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.clock import now_kst
from features.errors import DataError
from features.sources import load_files
from features.sources.check import entity_labels, known_entities
from features.sources.formats import FORMATS
from features.sources.timing import violations
from live.store import EVENT_SOURCES, KEYS, LIVE_SOURCES, Appended, ObservationStore

log = logging.getLogger("urban_safety.ingest")

MAX_ROWS = 10_000  # per API batch
MAX_LISTED = 100  # refusals an answer lists (it counts them all)
MAX_PASSES = 50  # kinds of fault a batch may have before it is refused whole: its layout is wrong, not a row
#: Files younger than this may still be being written by the job that drops them (write, then rename, is
#: better; this catches the rest).
SETTLE_S = 1.0


@dataclass
class Batch:
    """The validated rows of one batch and the refusals (1-based row numbers of the batch)."""

    source: str
    frame: pd.DataFrame
    refused: list[dict]


def read_batch(source: str, path: Path, city, store: ObservationStore | None = None) -> Batch:
    """Load a file of ``source`` row by row: rows the contract, the schema or the source's time rules
    (``features/sources/timing.py``, against the clock) refuse, and rows of stations the city does
    not know, are set aside with their reason; the others come back as the canonical frame.

    A refusal names the row as the source's errors do: the item of a JSON batch (1-based), the line of a
    text file. Every row failing one check is set aside at once, so a batch is read once per kind of fault,
    not once per bad row. Raises :class:`DataError` for what no row can fix (unknown source, missing column,
    unreadable file). Events are checked too (:func:`_plausible_events`; a strong-motion record against the
    quakes ``store`` holds)."""
    if source not in LIVE_SOURCES:
        raise DataError(f"source {source!r} is not an observation the store holds; live sources: "
                        f"{', '.join(LIVE_SOURCES)} (static layers and other event lists go through `data import`)")
    path = Path(path)
    units = _units(path)  # items of a JSON batch, lines of a text file
    numbers = list(range(1, len(units) + 1))  # the original number of each unit still in the batch
    refused: list[dict] = []
    for _ in range(MAX_PASSES):
        try:
            frame = load_files(source, [_write(path, units, numbers)] if len(numbers) < len(units) else [path])
            break
        except DataError as exc:
            cases = exc.cases or ([(exc.row, str(exc).split(": ", 1)[-1])] if exc.row is not None else [])
            cases = [(row, reason) for row, reason in cases if 1 <= row <= len(numbers)]
            if not cases or len(cases) == len(numbers) and path.suffix.lower() != ".json" and not refused:
                raise
            originals = {row: numbers[row - 1] for row, _ in cases}
            refused += [{"row": originals[row], "field": exc.column, "reason": reason} for row, reason in cases]
            gone = set(originals.values())
            numbers = [n for n in numbers if n not in gone]
            if not numbers:
                return Batch(source, _empty(source), _sorted(refused))
    else:
        raise DataError(f"{len(refused)} rows refused in {MAX_PASSES} passes and the batch still does not read: "
                        "check its layout", file=str(path))
    # Each frame row's number in the batch as read, then in the batch as sent.
    rows = np.asarray([numbers[r - 1] if 1 <= r <= len(numbers) else None
                       for r in frame.attrs.get("rows", range(1, len(frame) + 1))], dtype=object)
    refused += [{**d, "row": numbers[d["row"] - 1] if 1 <= d["row"] <= len(numbers) else d["row"]}
                for d in frame.attrs.get("dropped", [])]
    frame, keep, late = _on_time(source, frame, city)
    refused += [{"row": rows[i], **why} for i, why in late]
    frame, rows = frame.loc[keep].reset_index(drop=True), rows[keep]
    frame, strangers = _known_only(source, frame, city, rows if source != "nowcast" else None)
    refused.extend(strangers)
    if source in EVENT_SOURCES:
        frame, odd = _plausible_events(source, frame, city, store, rows)
        refused.extend(odd)
    return Batch(source, frame, _sorted(refused))


#: A quake's origin time may be this far ahead of the clock (clocks differ by seconds, not minutes).
EVENT_SKEW = pd.Timedelta(minutes=5)


def _plausible_events(source: str, frame: pd.DataFrame, city, store: ObservationStore | None,
                      rows) -> tuple[pd.DataFrame, list[dict]]:
    """Event rows that can be true: a quake not after the clock (EVENT_SKEW); a strong-motion record inside
    the city's seismic region (``seismic_region`` in its config: a station far outside it is a wrong
    coordinate or another city's record) and of a quake the store holds (its time is taken from it)."""
    bad: dict[int, tuple[str, str]] = {}
    if source == "quakes":
        latest = pd.Timestamp(now_kst()) + EVENT_SKEW
        for i in np.flatnonzero((frame["time"] > latest).to_numpy()):
            bad[i] = ("time", f"{frame['time'].iloc[i]:%Y-%m-%d %H:%M:%S} is in the future: a quake's origin "
                              f"time may be at most {EVENT_SKEW.total_seconds() / 60:g} min ahead of the clock")
    else:
        region = city.seismic_region
        if region is None:
            raise DataError(f"{city.name} has no seismic_region in its city config: it does not run the "
                            "earthquake domain, so strong-motion records have nothing to condition")
        (lon0, lon1), (lat0, lat1) = region.lon, region.lat
        outside = ~(frame["lat"].between(lat0, lat1) & frame["lon"].between(lon0, lon1))
        for i in np.flatnonzero(outside.to_numpy()):
            bad[i] = ("lat", f"station {frame['station'].iloc[i]} at {frame['lat'].iloc[i]:.3f} N "
                             f"{frame['lon'].iloc[i]:.3f} E is outside {city.name}'s seismic region (lat {lat0:g}-"
                             f"{lat1:g}, lon {lon0:g}-{lon1:g}, seismic_region in its city config)")
        held = store.frame("quakes", frame["event_no"].unique()).set_index("event_no")["time"] \
            if store is not None else pd.Series(dtype=object)
        frame = frame.copy()
        frame["time"] = frame["event_no"].map(held).astype("datetime64[ns]")
        for i in np.flatnonzero(frame["time"].isna().to_numpy()):
            bad.setdefault(i, ("event_no", f"no quake {frame['event_no'].iloc[i]} in the store: send the event "
                                           "(source quakes) before its records"))
    refused = [{"row": _py(rows[i]) if rows is not None else None, "field": f, "reason": why}
               for i, (f, why) in sorted(bad.items())]
    keep = np.ones(len(frame), bool)
    keep[list(bad)] = False
    return frame.loc[keep].reset_index(drop=True), refused


def _sorted(refused: list[dict]) -> list[dict]:
    return sorted(refused, key=lambda r: (r["row"] if isinstance(r["row"], int) else 0))


def _empty(source: str) -> pd.DataFrame:
    from features.sources.canonical import SCHEMAS

    return pd.DataFrame({name: pd.Series(dtype=str(col.dtype) if str(col.dtype) != "str" else "string")
                         for name, col in SCHEMAS[source].columns.items()})


def _units(path: Path) -> list:
    if path.suffix.lower() == ".json":
        from features.sources.readers import api_items

        return api_items(json.loads(path.read_text(encoding="utf-8")), path)
    return path.read_bytes().splitlines(keepends=True)


def _write(path: Path, units: list, numbers: list[int]) -> Path:
    """The batch without its refused units, in a temporary folder (the original is never changed)."""
    out = Path(tempfile.mkdtemp(prefix="ingest-")) / path.name
    kept = [units[n - 1] for n in numbers]
    if path.suffix.lower() == ".json":
        out.write_text(json.dumps(kept, ensure_ascii=False), encoding="utf-8")
    else:
        out.write_bytes(b"".join(kept))
    return out


def _known_only(source: str, frame: pd.DataFrame, city, rows) -> tuple[pd.DataFrame, list[dict]]:
    """Rows of stations in the city config; the others refused (by row number where the frame's rows are
    the batch's, else by the row's key)."""
    known = known_entities(source, city)
    if known is None:  # events: nothing to compare against
        return frame, []
    if source == "airkorea":  # the real-time API names stations: match by name as well as code
        known = {s.name for s in city.air_stations} | {str(s.code) for s in city.air_stations}
        labels = frame["station_name"].astype(str)
        labels = labels.where(labels.isin(known), frame["station_code"].astype("string").fillna(""))
    else:
        labels = entity_labels(source, frame).astype(str)
    bad = ~labels.isin(known)
    refused = [{"row": _py(rows[i]) if rows is not None else None, "field": KEYS[source][0],
                "key": {k: str(frame[k].iloc[i]) for k in KEYS[source]},
                "reason": f"{labels.iloc[i]} is not a {source} station of {city.name} (its city config)"}
               for i in bad.to_numpy().nonzero()[0]]
    return frame.loc[~bad].reset_index(drop=True), refused


def _py(value):
    return None if value is None else int(value)


def ingest_rows(store: ObservationStore, source: str, rows: list[dict] | dict, city, origin: str = "api",
                label: str | None = None) -> Appended:
    """An API batch: ``rows`` as the open API's items (or its whole JSON response) or canonical rows."""
    with tempfile.TemporaryDirectory(prefix="batch-") as tmp:
        path = Path(tmp) / f"{source}.json"
        path.write_text(json.dumps(rows, ensure_ascii=False, default=str), encoding="utf-8")
        batch = read_batch(source, path, city, store)
    return store.append(source, batch.frame, origin, label, batch.refused)


def ingest_fetched(store: ObservationStore, source: str, frame: pd.DataFrame, city, label: str) -> Appended:
    """A fetch's canonical rows (already read through the contract) through the source's time rules, then
    appended; a row the rules refuse is reported by its key."""
    frame, keep, late = _on_time(source, frame, city)
    refused = [{"row": None, **why, "key": {k: str(frame[k].iloc[i]) for k in KEYS[source]}} for i, why in late]
    return store.append(source, frame.loc[keep], "fetch", label, refused)


def _on_time(source: str, frame: pd.DataFrame, city) -> tuple[pd.DataFrame, np.ndarray, list[tuple[int, dict]]]:
    """(``frame`` renumbered from 0, the mask of rows the source's time rules keep against the clock, and
    each refused row's position with its field and reason: the first rule it breaks)."""
    frame = frame.reset_index(drop=True)
    keep, late = np.ones(len(frame), bool), []
    for i, field_name, reason in violations(source, frame, city.observations_since, now_kst(), live=True):
        if keep[i]:
            keep[i] = False
            late.append((i, {"field": field_name, "reason": reason}))
    return frame, keep, late


def ingest_file(store: ObservationStore, source: str, path: Path, city, origin: str = "inbox") -> Appended:
    batch = read_batch(source, path, city, store)
    return store.append(source, batch.frame, origin, str(path), batch.refused)


# --- the inbox -------------------------------------------------------------------------------------
class Inbox:
    """A folder where a scheduled job drops files, one sub-folder per source (``inbox/asos/*.csv``).

    Each file is claimed by moving it into ``.processing/`` (so two watchers never take the same file), read,
    then moved to ``done/`` (with ``<name>.refused.json`` listing refused rows, if any) or ``failed/`` (with
    ``<name>.reason.txt``). A file left in ``.processing/`` by a watcher that was killed is taken again at
    the next start: the store's deduplication makes that safe.
    """

    def __init__(self, root: Path, store: ObservationStore, city):
        self.root, self.store, self.city = Path(root), store, city
        for sub in (".processing", "done", "failed"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def waiting(self) -> list[tuple[str, Path]]:
        """(source, file) ready to take: interrupted ones first, then by name."""
        out = [(p.name.split("__", 1)[0], p) for p in sorted((self.root / ".processing").iterdir()) if p.is_file()]
        now = time.time()
        for source in LIVE_SOURCES:
            folder = self.root / source
            if folder.is_dir():
                out += [(source, p) for p in sorted(folder.glob(FORMATS[source].pattern))
                        if p.is_file() and not p.name.startswith(".") and now - p.stat().st_mtime >= SETTLE_S]
        return out

    def take(self, source: str, path: Path) -> tuple[Path, Appended | None, str | None]:
        """Process one file; (where it went, what the store did, the reason it failed)."""
        claimed = path if path.parent.name == ".processing" else self.root / ".processing" / f"{source}__{path.name}"
        if claimed != path:
            os.replace(path, claimed)
        name = claimed.name.split("__", 1)[-1]
        try:
            result = ingest_file(self.store, source, claimed, self.city)
        except DataError as exc:
            target = _free(self.root / "failed" / source / name)
            target.with_name(target.name + ".reason.txt").write_text(f"{exc}\n", encoding="utf-8")
            shutil.move(claimed, target)
            log.warning("inbox: %s failed: %s", name, exc)
            return target, None, str(exc)
        target = _free(self.root / "done" / source / name)
        if result.refused:
            target.with_name(target.name + ".refused.json").write_text(
                json.dumps(result.refused, ensure_ascii=False, indent=1), encoding="utf-8")
        shutil.move(claimed, target)
        log.info("inbox: %s -> %d accepted, %d duplicate, %d refused", name, result.accepted, result.duplicate,
                 len(result.refused))
        return target, result, None

    def run_once(self) -> list[tuple[Path, Appended | None, str | None]]:
        return [self.take(source, path) for source, path in self.waiting()]


def _free(path: Path) -> Path:
    """``path``, or ``name.2.ext``... when a file of that name was already taken (never overwrite)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n, candidate = 1, path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
    return candidate


def report(result: Appended) -> dict:
    """The answer to a batch (API and CLI)."""
    return {"source": result.source, "batch": result.batch, "accepted": result.accepted,
            "duplicate": result.duplicate, "refused": len(result.refused), "refusals": result.refused[:MAX_LISTED],
            "changed": None if result.changed is None else
            {"from": result.changed[0].isoformat(), "to": result.changed[1].isoformat()}}

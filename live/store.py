"""The observation store: every hourly observation and nowcast the service knows, appended as it arrives.

One table per live source (the canonical columns of ``features/sources/canonical.py``), keyed by what
identifies an observation: (station, time), or for the nowcast (grid point, issue time, valid time). A
batch is one transaction: all of its rows land or none. A row whose key is held is merged into it (the
newest non-missing value of each field wins: a correction; a field the row leaves out or leaves blank
keeps its stored value) and counted as a duplicate when it changes nothing. Every batch is logged in
``batches`` (origin, counts, the span of times it changed) and every live row it accepted in the
append-only ``revisions`` (the raw files are their own record for back-filled rows). The batch id is the
store's version: readers poll it, and ``changes(since)`` gives them exactly the rows that moved.

Retention (``URBAN_SAFETY_RETENTION_DAYS``, default: keep everything) drops observations older than
that many days before the newest one, and their revisions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from features.sources.canonical import SCHEMAS
from features.sources.timing import RULES
from live.db import METADATA, claim_grid, database, now_kst, store_url, writing

#: The key of an observation, per live source (the other sources are static layers and event lists that
#: reach the service through ``data import``).
KEYS: dict[str, tuple[str, ...]] = {
    "asos": ("station_id", "time"), "aws": ("station_id", "time"),
    # The real-time API names air stations only; the name is what every AirKorea layout carries.
    "airkorea": ("station_name", "time"),
    "tide": ("station", "time"),
    "nowcast": ("nx", "ny", "issued", "valid"),
    # Events, not hourly series: an earthquake and the strong-motion records of it.
    "quakes": ("event_no",),
    "quake_stations": ("event_no", "station"),
}
#: The column whose span a batch changed, per source (what cached answers depend on).
TIME_OF = {"asos": "time", "aws": "time", "airkorea": "time", "tide": "time", "nowcast": "issued",
           "quakes": "time", "quake_stations": "time"}
LIVE_SOURCES = tuple(KEYS)
#: Sources of events (no cadence, never stale): the live cycle reads them for impact alerts (live/impact.py).
EVENT_SOURCES = ("quakes", "quake_stations")
HOURLY_SOURCES = tuple(s for s in LIVE_SOURCES if s not in EVENT_SOURCES)
#: What says a row holds an observation (the tide file also carries the astronomical prediction ahead).
OBSERVED = {source: RULES[source].observed for source in HOURLY_SOURCES if RULES[source].observed}
#: A source is stale when its newest observation is older than one step plus its lateness (its time rule).
STALE_AFTER = {source: RULES[source].stale_after.to_pytimedelta() for source in HOURLY_SOURCES}
#: A quake row without its own number (``KMA-<origin time>``, :func:`features.sources.loaders.kma.load_quakes`)
#: is the same event as one held within this time and distance: KMA's early warning and its later
#: information differ by seconds and kilometres (and in magnitude), and both mean one quake.
SAME_EVENT = (pd.Timedelta(seconds=60), 50.0)
#: How far ahead of its time a row is read: the tide's astronomical prediction up to the longest lead.
LOOKAHEAD = {"tide": timedelta(hours=6)}

_SQL_TYPES = {"int64": sa.BigInteger, "Int64": sa.BigInteger, "float64": sa.Float, "datetime64[ns]": sa.DateTime,
              "str": sa.Text, "string": sa.Text, "string[pyarrow]": sa.Text, "string[python]": sa.Text,
              "boolean": sa.Boolean}


def _table(source: str) -> sa.Table:
    columns = []
    for name, col in SCHEMAS[source].columns.items():
        kind = _SQL_TYPES[str(col.dtype)]
        columns.append(sa.Column(name, kind(), primary_key=name in KEYS[source], nullable=name not in KEYS[source]))
    return sa.Table(f"obs_{source}", METADATA, *columns, sa.Column("batch", sa.BigInteger, nullable=False, index=True))


TABLES = {source: _table(source) for source in LIVE_SOURCES}
BATCHES = sa.Table(
    "batches", METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("origin", sa.Text, nullable=False),  # api | inbox | fetch | backfill
    sa.Column("label", sa.Text),  # the file, request or URL the rows came from
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.Column("accepted", sa.Integer, nullable=False),
    sa.Column("duplicate", sa.Integer, nullable=False),
    sa.Column("refused", sa.Integer, nullable=False),
    sa.Column("changed_from", sa.DateTime),  # span of the times of the rows this batch changed
    sa.Column("changed_to", sa.DateTime),
)
REVISIONS = sa.Table(
    "revisions", METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("batch", sa.BigInteger, nullable=False, index=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("time", sa.DateTime, nullable=False),
    sa.Column("row", sa.Text, nullable=False),  # the row as accepted (JSON), key included
)


@dataclass
class Appended:
    """What a batch did: rows accepted (new or changed), duplicate (nothing new), and the batch id."""

    source: str
    accepted: int = 0
    duplicate: int = 0
    batch: int | None = None
    changed: tuple[datetime, datetime] | None = None
    refused: list[dict] = field(default_factory=list)  # {"row": n, "reason": "..."} from validation


@dataclass(frozen=True)
class Change:
    """Rows of one source that moved since a version: their current values and the span of times."""

    source: str
    rows: pd.DataFrame
    first: pd.Timestamp
    last: pd.Timestamp


class ObservationStore:
    """The store at a SQLAlchemy URL (SQLite file or PostgreSQL); cheap to build, one engine per process."""

    def __init__(self, url: str):
        self.url = url
        self.engine = database(url)

    @classmethod
    def for_settings(cls, settings) -> ObservationStore:
        """The configured store, claimed for the configured grid (:func:`live.db.claim_grid`: a store of
        another grid is refused with what to do)."""
        from features.grid import build_grid

        store = cls(store_url(settings))
        claim_grid(store.engine, build_grid(settings.city_config), store.url)
        return store

    # --- writing --------------------------------------------------------------------------------
    def append(self, source: str, frame: pd.DataFrame, origin: str, label: str | None = None,
               refused: list[dict] | None = None) -> Appended:
        """Merge a validated canonical frame of ``source`` in one transaction (see the module docstring).

        Raises ``KeyError`` for a source the store does not hold; a row missing part of its key is refused
        by validation before it gets here."""
        table, keys = TABLES[source], KEYS[source]
        frame = frame[[c.name for c in table.columns if c.name != "batch"]]
        out = Appended(source, refused=list(refused or []))
        with writing(self.engine) as conn:
            if conn.dialect.name == "postgresql":  # one writer at a time: versions commit in order
                conn.exec_driver_sql("LOCK TABLE batches IN SHARE ROW EXCLUSIVE MODE")
            batch = conn.execute(BATCHES.insert().values(
                source=source, origin=origin, label=label, received_at=now_kst(), accepted=0,
                duplicate=0, refused=len(out.refused))).inserted_primary_key[0]
            if source == "quakes":  # a revision takes its event's number before rows are keyed
                frame = _same_events(conn, frame)
            within = frame.duplicated(list(keys), keep="last")  # the later row of a batch is the newer value
            frame = frame.loc[~within].reset_index(drop=True)
            held = self._held(conn, source, frame)
            merged, new, changed = _merge(frame, held, keys)
            if new.any():
                conn.execute(table.insert(), _records(merged.loc[new], batch))
            if changed.any():
                params = {c: sa.bindparam(f"k_{c}") for c in keys}
                stmt = table.update().where(*(table.c[c] == params[c] for c in keys)).values(
                    {c.name: sa.bindparam(f"v_{c.name}") for c in table.columns if c.name not in keys})
                conn.execute(stmt, [{**{f"k_{c}": r[c] for c in keys},
                                     **{f"v_{k}": v for k, v in r.items() if k not in keys}}
                                    for r in _records(merged.loc[changed], batch)])
            moved = merged.loc[new | changed]
            out.accepted, out.duplicate = len(moved), int(within.sum()) + len(merged) - len(moved)
            span = (moved[TIME_OF[source]].min(), moved[TIME_OF[source]].max()) if len(moved) else (None, None)
            if origin != "backfill" and len(moved):
                conn.execute(REVISIONS.insert(), [
                    {"batch": batch, "source": source, "time": r[TIME_OF[source]],
                     "row": json.dumps(r, default=str, ensure_ascii=False)}
                    for r in _records(moved, batch)])
            conn.execute(BATCHES.update().where(BATCHES.c.id == batch).values(
                accepted=out.accepted, duplicate=out.duplicate,
                changed_from=_py(span[0]), changed_to=_py(span[1])))
        out.batch = batch
        out.changed = (span[0], span[1]) if len(moved) else None
        return out

    def _held(self, conn, source: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Stored rows that may share a key with ``frame`` (same entities, within its span of times)."""
        table, keys = TABLES[source], KEYS[source]
        if frame.empty:
            return pd.DataFrame(columns=frame.columns)
        when = TIME_OF[source]
        query = sa.select(*(table.c[c] for c in frame.columns)).where(
            table.c[keys[0]].in_([_py(v) for v in frame[keys[0]].unique()]))
        if source not in EVENT_SOURCES:  # a revision of an event may move its time
            query = query.where(table.c[when].between(_py(frame[when].min()), _py(frame[when].max())))
        return _typed(pd.DataFrame(conn.execute(query).fetchall(), columns=list(frame.columns)), source)

    def retain(self, days: int | None = None) -> int:
        """Drop observations older than ``days`` before each source's newest (env default); rows dropped."""
        days = days if days is not None else _retention_days()
        if not days:
            return 0
        dropped = 0
        with writing(self.engine) as conn:
            for source, table in TABLES.items():
                col = table.c[TIME_OF[source]]
                newest = conn.execute(sa.select(sa.func.max(col))).scalar()
                if newest is None:
                    continue
                cut = newest - timedelta(days=days)
                dropped += conn.execute(table.delete().where(col < cut)).rowcount
                conn.execute(REVISIONS.delete().where(REVISIONS.c.source == source, REVISIONS.c.time < cut))
        return dropped

    # --- reading --------------------------------------------------------------------------------
    def version(self) -> int:
        """The newest batch id (0 when empty): it changes whenever any observation does."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(BATCHES.c.id), 0))).scalar())

    def frame(self, source: str, first_key=None) -> pd.DataFrame:
        """Every held row of ``source`` as its canonical frame (sorted by key); with ``first_key`` (values),
        only the rows whose first key column is one of them (an event's quake and its records)."""
        table = TABLES[source]
        query = sa.select(*(c for c in table.columns if c.name != "batch"))
        if first_key is not None:
            query = query.where(table.c[KEYS[source][0]].in_([_py(v) for v in first_key]))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(*(table.c[k] for k in KEYS[source]))).fetchall()
        return _typed(pd.DataFrame(rows, columns=[c.name for c in table.columns if c.name != "batch"]), source)

    def changes(self, since: int) -> tuple[int, list[Change]]:
        """(the version now, the rows of each source changed by batches after ``since``)."""
        with self.engine.connect() as conn:
            now = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(BATCHES.c.id), 0))).scalar())
            if now <= since:
                return now, []
            out = []
            for source in conn.execute(sa.select(BATCHES.c.source).where(
                    BATCHES.c.id > since, BATCHES.c.id <= now, BATCHES.c.accepted > 0).distinct()).scalars():
                table = TABLES[source]
                cols = [c for c in table.columns if c.name != "batch"]
                rows = conn.execute(sa.select(*cols).where(table.c.batch > since, table.c.batch <= now)).fetchall()
                frame = _typed(pd.DataFrame(rows, columns=[c.name for c in cols]), source)
                if len(frame):
                    when = frame[TIME_OF[source]]
                    out.append(Change(source, frame, when.min(), when.max()))
        return now, out

    def newest(self) -> dict[str, pd.Timestamp]:
        """Each held source's newest observation time (issue time for the nowcast)."""
        out = {}
        with self.engine.connect() as conn:
            for source, table in TABLES.items():
                value = conn.execute(sa.select(sa.func.max(table.c[TIME_OF[source]]))).scalar()
                if value is not None:
                    out[source] = pd.Timestamp(value)
        return out

    def seen(self, source: str, origin: str, label: str) -> bool:
        """Whether a batch of that source, origin and label was taken."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(BATCHES.c.id).where(
                BATCHES.c.source == source, BATCHES.c.origin == origin, BATCHES.c.label == label).limit(1)).first() \
                is not None

    def batches(self, limit: int = 50) -> pd.DataFrame:
        """The newest batches, newest first (the ingest log)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(BATCHES).order_by(BATCHES.c.id.desc()).limit(limit)).fetchall()
        return pd.DataFrame(rows, columns=[c.name for c in BATCHES.columns])


def backfill(store: ObservationStore, raw_dir, names=LIVE_SOURCES) -> dict[str, Appended]:
    """Load the raw files of each live source into the store (rows already held count as duplicates);
    files already back-filled unchanged (same names, sizes, times) are not read again."""
    from features.sources import files_stamp, load_files, source_files

    out = {}
    for name in names:
        files = source_files(Path(raw_dir), name)
        if not files:
            continue
        label = f"{len(files)} file(s) in {Path(raw_dir) / name} [{files_stamp(files)[:12]}]"
        if not store.seen(name, "backfill", label):  # those very files are in already
            out[name] = store.append(name, load_files(name, files), "backfill", label)
    return out


def observed_times(source: str, frame: pd.DataFrame) -> np.ndarray:
    """The sorted distinct times (datetime64[ns]) at which ``frame`` holds an observation of ``source``."""
    return np.unique(frame.loc[_observation(source, frame), TIME_OF[source]].to_numpy("datetime64[ns]"))


def _observation(source: str, frame: pd.DataFrame) -> np.ndarray:
    """Which rows hold an observation: a value in the source's observed columns (its time rule), else in
    any column besides the key."""
    values = [c for c in OBSERVED.get(source, ()) if c in frame] or \
        [c for c in frame.columns if c not in KEYS[source] and c != "station_code"]
    return frame[values].notna().any(axis=1).to_numpy() if values else np.ones(len(frame), bool)


#: How far back from a source's newest hour the service keeps who reported each hour (the lateness windows
#: are minutes to an hour; a day is ample).
RECENT = pd.Timedelta(days=1)


def reported_hours(sources, names=HOURLY_SOURCES) -> dict:
    """Per live source of ``names`` held: who reported each of its recent hours, who the city needs (its own
    stations, :func:`features.sources.check.known_entities`), its newest hour
    (``features.sources.timing.Reported``), read from the service's held frames."""
    from features.sources.check import entity_labels, known_entities
    from features.sources.timing import Reported

    out = {}
    for source, frame in sources.loaded([s for s in names if sources.available(s)]).items():
        held = _observation(source, frame)
        if not held.any():
            continue
        when = pd.to_datetime(frame[TIME_OF[source]]).to_numpy()
        newest = when[held].max()
        recent = held & (when > newest - RECENT.to_timedelta64())
        labels = entity_labels(source, frame.loc[recent])
        hours = {pd.Timestamp(t): frozenset(g) for t, g in labels.groupby(when[recent], sort=False)}
        out[source] = Reported(source, hours, frozenset(known_entities(source, sources.city, own=True)),
                               pd.Timestamp(newest))
    return out


def merge_rows(held: pd.DataFrame, rows: pd.DataFrame, source: str) -> pd.DataFrame:
    """``held`` with ``rows`` (current values from the store) replacing the rows of the same key."""
    keys = list(KEYS[source])
    if held.empty:
        return rows.reset_index(drop=True)
    index = pd.MultiIndex.from_frame(held[keys])
    replaced = index.isin(pd.MultiIndex.from_frame(rows[keys]))
    return pd.concat([held.loc[~replaced], rows[held.columns]], ignore_index=True)


# --- helpers -------------------------------------------------------------------------------------
def derived_event(event_no: pd.Series) -> pd.Series:
    """Which event numbers were made from the origin time (the row had none of its own)."""
    return event_no.astype(str).str.fullmatch(r"KMA-\d{14}")


def same_events(frame: pd.DataFrame, held: pd.DataFrame | None = None) -> pd.DataFrame:
    """``frame`` (quakes: event_no, time, lat, lon, in the order they were announced) with each row that is
    a revision of an event in ``held`` (same columns), or of an earlier row, renamed to that event: origin
    times within :data:`SAME_EVENT`'s 60 s and epicentres within its 50 km, the nearest in time of several.
    Only a number made from the origin time (``KMA-<origin time>``: the API has no event id) is renamed: an
    event with a number of its own (KMA's list) keeps it, so numbered aftershocks a minute apart stay
    apart. A row whose number is held is that event.
    Returns a new frame, its rows and other columns as they were."""
    from features.spatial import haversine_km

    held = held if held is not None else frame.iloc[:0]
    numbers = np.concatenate([held["event_no"].to_numpy(dtype=object), frame["event_no"].to_numpy(dtype=object)])
    derived = derived_event(pd.Series(numbers, dtype=object)).to_numpy()
    if not derived.any():
        return frame  # numbered events only (a catalogue): nothing to match
    gap, km = SAME_EVENT
    times = np.concatenate([pd.to_datetime(f["time"]).to_numpy("datetime64[ns]") for f in (held, frame)])
    lat, lon = (np.concatenate([f[c].to_numpy(float) for f in (held, frame)]) for c in ("lat", "lon"))
    known = set(held["event_no"])
    for i in range(len(held), len(numbers)):
        if not derived[i] or numbers[i] in known:
            continue
        apart = np.abs(times[:i] - times[i])
        near = (apart <= gap.to_timedelta64()) & (haversine_km(lat[i], lon[i], lat[:i], lon[:i]) <= km) \
            & (numbers[:i] != numbers[i])
        if near.any():
            numbers[i] = numbers[np.flatnonzero(near)[np.argmin(apart[near])]]
    out = frame.copy()
    out["event_no"] = pd.Series(numbers[len(held):], index=frame.index, dtype=frame["event_no"].dtype)
    return out


def _same_events(conn, frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`same_events` against the quakes held within SAME_EVENT of the batch's times."""
    if frame.empty:
        return frame
    gap = SAME_EVENT[0]
    table = TABLES["quakes"]
    rows = conn.execute(sa.select(table.c.event_no, table.c.time, table.c.lat, table.c.lon).where(
        table.c.time.between(_py(frame["time"].min() - gap), _py(frame["time"].max() + gap)))).fetchall()
    held = pd.DataFrame(rows, columns=["event_no", "time", "lat", "lon"])
    held["time"] = pd.to_datetime(held["time"])
    return same_events(frame, held)


def _merge(frame: pd.DataFrame, held: pd.DataFrame, keys) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(the batch's rows merged onto the held ones, mask of new keys, mask of held keys that changed)."""
    keys = list(keys)
    if held.empty:
        return frame, np.ones(len(frame), bool), np.zeros(len(frame), bool)
    joined = frame.merge(held, on=keys, how="left", suffixes=("", "__held"), indicator=True)
    new = (joined["_merge"] == "left_only").to_numpy()
    values = [c for c in frame.columns if c not in keys]
    changed = np.zeros(len(frame), bool)
    for c in values:
        old = joined[f"{c}__held"]
        merged = joined[c].where(joined[c].notna(), old)  # a missing field keeps the stored value
        differs = (merged.astype(object) != old.astype(object)) & ~(merged.isna() & old.isna())
        changed |= differs.to_numpy() & ~new
        joined[c] = merged
    return joined[frame.columns], new, changed


def _py(value):
    """A value as the database driver takes it (no numpy scalars, no NaT)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if isinstance(value, np.generic) else value


def _records(frame: pd.DataFrame, batch: int) -> list[dict]:
    return [{**{k: _py(v) for k, v in row.items()}, "batch": batch} for row in frame.to_dict("records")]


def _typed(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Database rows with the canonical dtypes."""
    out = {}
    for name, col in SCHEMAS[source].columns.items():
        if name in frame:
            dtype = str(col.dtype)
            out[name] = (pd.to_datetime(frame[name]) if dtype.startswith("datetime") else
                         frame[name].astype("string") if dtype.startswith(("str", "string")) else
                         frame[name].astype(dtype))
    return pd.DataFrame(out, index=frame.index)


def _retention_days() -> int | None:
    value = os.environ.get("URBAN_SAFETY_RETENTION_DAYS")
    return int(value) if value else None

"""The live cycle: take new observations, re-score every cell of every domain, keep the maps, raise alerts.

Each cycle's whole-city maps are kept (``cycle_maps``: GeoJSON bytes, zlib-compressed) so a dashboard can
replay the last 24 hours; ``cycles`` records when it ran, the data time it answered for and how long each
step took.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa

from features.errors import UrbanSafetyError
from features.registry import LEVELS
from live.db import METADATA, now_kst, writing

log = logging.getLogger("urban_safety.live")

CYCLES = sa.Table(
    "cycles", METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("started_at", sa.DateTime, nullable=False),  # wall clock, KST
    sa.Column("store_version", sa.BigInteger, nullable=False),  # the observations it saw
    sa.Column("data_time", sa.DateTime),  # the newest hour it answered for
    sa.Column("seconds", sa.Float),  # new data -> refreshed maps, wall time
    sa.Column("timings", sa.Text),  # JSON: {"ingest": s, "flood": s, ...}
)
CYCLE_MAPS = sa.Table(
    "cycle_maps", METADATA,
    sa.Column("cycle", sa.BigInteger, primary_key=True),
    sa.Column("domain", sa.Text, primary_key=True),
    sa.Column("lead_hours", sa.Integer, primary_key=True),  # 0 where the domain has no lead
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("levels", sa.Text, nullable=False),  # JSON: {"Normal": n, ..., "unknown": n}
    sa.Column("geojson", sa.LargeBinary, nullable=False),  # zlib-compressed /risk_map body
)


#: How long cycles' maps are kept (hours): what a dashboard can replay.
KEEP_HOURS = float(os.environ.get("URBAN_SAFETY_REPLAY_HOURS", "24"))
#: The cycle checks the answered inputs (live/monitor.py) whenever its data time reaches a new hour, and at
#: least this often on the clock (simulated time: a feed gone silent is caught while the data time stands).
MONITOR_EVERY = timedelta(hours=1)


@dataclass
class CycleReport:
    """One cycle: what came in, what it answered for, how long each step took (seconds)."""

    id: int | None
    data_time: pd.Timestamp | None
    ingested: dict[str, int]  # source -> rows accepted
    timings: dict[str, float]
    seconds: float  # new data -> every refreshed map stored
    maps: list = field(default_factory=list)  # live.alerts.CityLevels
    events: list = field(default_factory=list)  # alert events it raised
    skipped: dict[str, str] = field(default_factory=dict)  # domain -> why it was not scored


def leads(spec) -> list[int]:
    """The lead times (hours) a domain is mapped at: its ``lead_hours`` condition's choices, else [0]."""
    for c in spec.serving.conditions:
        if c.name == "lead_hours":
            return list(getattr(c, "choices", None) or [int(c.example)])
    return [0]


def _conditions(engine, name: str, spec) -> dict | None:
    """What the cycle scores ``name`` with at its newest time: the domain's ``Serving.live`` answer (None:
    nothing to score), else no conditions (the observations suffice)."""
    if spec.serving.live:
        return spec.serving.live(engine.sources, engine.times(name)[1])
    return None if any(c.required for c in spec.serving.conditions) else {}


def score_city(engine) -> tuple[list, dict[str, bytes], dict[str, float], dict[str, str]]:
    """Every cell of every servable domain at its newest time, at each lead: (CityLevels, map bodies by
    "domain/lead", seconds per domain, domain -> why skipped)."""
    from live.alerts import CityLevels

    maps, bodies, timings, skipped = [], {}, {}, {}
    for name, spec in engine.specs.items():
        if name not in engine.models:
            skipped[name] = engine.availability()[name]
            continue
        conditions = _conditions(engine, name, spec)
        if conditions is None:
            skipped[name] = "nothing to score at the data time (no recent event)"
            continue
        start = time.perf_counter()
        for lead in leads(spec):
            body = engine.risk_map(name, None, {**conditions, **({"lead_hours": lead} if lead else {})})
            doc = json.loads(body)
            props = pd.DataFrame([f["properties"] for f in doc["features"]])
            centres = engine.grid.cells.set_index("cell_id").loc[props["cell_id"], ["lat", "lon"]].to_numpy()
            level = props["level_en"].map({en: i for i, (_, en) in enumerate(LEVELS)}).fillna(-1).astype(int)
            cells = pd.DataFrame({"cell_id": props["cell_id"], "district": props["district"], "lat": centres[:, 0],
                                  "lon": centres[:, 1], "level": level, "score": props["score"].astype(float),
                                  "cause": props["cause"]})
            maps.append(CityLevels(name, lead, pd.Timestamp(doc["metadata"]["at"]), cells))
            bodies[f"{name}/{lead}"] = body
        timings[name] = time.perf_counter() - start
    return maps, bodies, timings, skipped


def record(conn, version: int, started: datetime, maps: list, bodies: dict[str, bytes],
           timings: dict[str, float], seconds: float) -> int:
    """Store one cycle and its maps within the writing transaction ``conn``; drop cycles older than
    KEEP_HOURS."""
    data_time = max((m.at for m in maps), default=None)
    cycle = conn.execute(CYCLES.insert().values(
        started_at=started, store_version=version, seconds=seconds, timings=json.dumps(timings),
        data_time=data_time.to_pydatetime() if data_time is not None else None)).inserted_primary_key[0]
    if maps:
        conn.execute(CYCLE_MAPS.insert(), [
            {"cycle": cycle, "domain": m.domain, "lead_hours": m.lead_hours, "at": m.at.to_pydatetime(),
             "levels": json.dumps(_counts(m.cells)), "geojson": zlib.compress(bodies[f"{m.domain}/{m.lead_hours}"], 6)}
            for m in maps])
    old = sa.select(CYCLES.c.id).where(CYCLES.c.started_at < started - timedelta(hours=KEEP_HOURS))
    conn.execute(CYCLE_MAPS.delete().where(CYCLE_MAPS.c.cycle.in_(old)))
    conn.execute(CYCLES.delete().where(CYCLES.c.started_at < started - timedelta(hours=KEEP_HOURS)))
    return cycle


def _counts(cells: pd.DataFrame) -> dict[str, int]:
    counts = {en: int((cells["level"] == i).sum()) for i, (_, en) in enumerate(LEVELS)}
    return {**counts, "unknown": int((cells["level"] < 0).sum())}


class LiveLoop:
    """New data in (inbox files, open-API fetches), every cell of every domain re-scored, maps kept, alerts
    raised and pushed. ``step()`` is one cycle; ``run()`` schedules them: at once when the store or the inbox
    has something new (checked every ``poll_s``), and every ``interval_s`` (fetching first) in any case."""

    def __init__(self, engine, db: sa.Engine, inbox=None, fetch_sources: tuple[str, ...] = (),
                 interval_s: float = 600.0, poll_s: float = 2.0):
        self.engine, self.db, self.inbox = engine, db, inbox
        self.fetch_sources, self.interval_s, self.poll_s = tuple(fetch_sources), interval_s, poll_s
        self.cycles, self._monitored = 0, None
        self._scored: dict = {}  # each domain's data time at the last cycle
        if engine.recorder is None:
            from live.monitor import Recorder

            engine.recorder = Recorder("cycle")

    def take(self, fetch: bool) -> tuple[dict[str, int], float | None]:
        """Ingest what waits (inbox) or is fetched; (rows accepted per source, when the first row landed)."""
        from live.fetch import fetch as fetch_source
        from live.ingest import ingest_fetched

        taken: dict[str, int] = {}
        landed = None
        if self.inbox is not None:
            for _, result, _ in self.inbox.run_once():
                if result is not None and result.accepted:
                    taken[result.source] = taken.get(result.source, 0) + result.accepted
                    landed = landed or time.perf_counter()
        for source in self.fetch_sources if fetch else ():
            try:
                got = fetch_source(source, self.engine.sources.city)
            except UrbanSafetyError as exc:
                log.error("fetch %s failed: %s", source, exc)
                continue
            if len(got.frame):
                result = ingest_fetched(self.engine.store, source, got.frame, self.engine.sources.city,
                                        f"{source} open API")
                if result.accepted:
                    taken[source] = taken.get(source, 0) + result.accepted
                    landed = landed or time.perf_counter()
        return taken, landed

    def step(self, fetch: bool = False, force: bool = False) -> CycleReport | None:
        """One cycle; None when nothing new came in and ``force`` is false."""
        from live.alerts import evaluate_in
        from live.impact import follow as impact

        started, t0 = now_kst(), time.perf_counter()
        taken, landed = self.take(fetch)
        t_in = time.perf_counter()
        changes = self.engine.follow()
        # A quake's impact alert goes out before the maps are re-scored: it is the news of the cycle.
        alerted = impact(self.db, self.engine.sources, self.engine.store, changes, started)
        times = self.data_times()
        if not changes and not force and self.cycles and times == self._scored:
            return CycleReport(None, None, taken, {}, 0.0, events=alerted) if alerted else None
        self._scored = times
        t_follow = time.perf_counter()
        maps, bodies, timings, skipped = score_city(self.engine)
        # The cycle, its maps and the alerts they raise land in one transaction: whoever reads the cycle
        # (/replay) reads its alerts too.
        with writing(self.db) as conn:
            cycle = record(conn, self.engine.version, started, maps, bodies, timings, 0.0)
            seconds = time.perf_counter() - (landed or t_in)
            timings = {"ingest": t_in - t0, "follow": t_follow - t_in, **timings, "total": seconds}
            conn.execute(CYCLES.update().where(CYCLES.c.id == cycle).values(seconds=seconds, timings=json.dumps(timings)))
            events = alerted + evaluate_in(conn, cycle, maps, started)
        events += self.monitor()
        self.cycles += 1
        # Their webhooks go out on the deliverer's own thread (live/webhooks.py), woken as they were queued.
        log.info("cycle %d: %s, maps refreshed %.2f s after the data (%s); %d alert event(s)",
                 cycle, ", ".join(f"{len(c.rows)} new {c.source} row(s)" for c in changes) or "no new data", seconds,
                 ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()), len(events))
        return CycleReport(cycle, max((m.at for m in maps), default=None), taken, timings, seconds, maps, events,
                           skipped)

    def monitor(self) -> list:
        """Write the answered rows; when a domain's data time reached a new hour or MONITOR_EVERY passed on the
        clock since the last check, check them and raise or clear the input-quality alerts (live/monitor.py)."""
        from live.monitor import CHECK_HOURS, check, raise_alerts

        if self.engine.recorder is not None:
            self.engine.recorder.flush(self.db)
        now = now_kst()
        hours = sorted((name, pd.Timestamp(t).floor("h")) for name, t in self._scored.items() if t is not None)
        if self._monitored is not None and hours == self._monitored[0] and \
                timedelta(0) <= now - self._monitored[1] < MONITOR_EVERY:
            return []
        self._monitored = (hours, now)  # (each domain's data hour, the clock) at the last check
        return raise_alerts(self.db, check(self.db, CHECK_HOURS, now=now), now)

    def data_times(self) -> dict:
        """Each served domain's data time now: it moves with new data, and when a late source's lateness
        window passes (the hour is then complete without it)."""
        return {name: self.engine.data_time(name)[0] for name in self.engine.models}

    def due(self) -> bool:
        """Something new waits: inbox files, observations the engine has not taken, or an hour that became
        complete by the clock."""
        return bool(self.inbox and self.inbox.waiting()) or self.engine.store.version() != self.engine.version \
            or self.data_times() != self._scored

    def run(self) -> None:
        """Cycle until interrupted (APScheduler: one job at a time, missed runs coalesced)."""
        from apscheduler.executors.pool import ThreadPoolExecutor as Pool
        from apscheduler.schedulers.blocking import BlockingScheduler

        from live.impact import prepare
        from live.webhooks import start_delivery

        prepare(self.engine.sources)  # a quake's impact alert should not wait for the building stock
        start_delivery(self.db)  # webhooks on their own loop: never waiting for a cycle, nor a cycle for them
        scheduler = BlockingScheduler(executors={"default": Pool(1)},
                                      job_defaults={"coalesce": True, "max_instances": 1})
        scheduler.add_job(self._safe, "interval", seconds=self.interval_s, args=(True, True),
                          next_run_time=datetime.now())
        scheduler.add_job(lambda: self.due() and self._safe(False, False), "interval", seconds=self.poll_s)
        scheduler.start()

    def _safe(self, fetch: bool, force: bool) -> None:
        try:
            self.step(fetch, force)
        except Exception:  # one failed cycle (a store blip, a bad map) must not end the loop
            log.exception("live cycle failed; the next one will try again")

"""Rapid impact alerts: when the ground shakes, what it did to the city's buildings and people.

Each quake the store takes (source ``quakes``; its revisions, and its strong-motion records, source
``quake_stations``) is assessed by the live cycle at once: the calibrated consequences of
:mod:`features.domains.earthquake.consequences` for the event at its hour (the day population from 07:00 to
18:59, else the night one), the shaking conditioned on the records
(:mod:`features.domains.earthquake.conditioning`). The answer is an alert of its own per event (``domain``
earthquake, ``lead_hours`` :data:`IMPACT_LEAD`, ``subject`` the event id), delivered by the webhooks and the
stream like any alert, and updated in place when a revision or a record moves it.

Its colour is USGS PAGER's (Wald et al. 2010, "PAGER - Rapid assessment of an earthquake's impact", USGS
Fact Sheet 2010-3036; Jaiswal and Wald 2011 for the loss bins): on estimated deaths (green < 1, yellow
1-99, orange 100-999, red >= 1,000) and on economic loss (green < US$1 M, yellow 1-100 M, orange 100 M-1 B,
red >= 1 B; KRW at ``URBAN_SAFETY_KRW_PER_USD``, default :data:`DEFAULT_KRW_PER_USD`), each from the
median of the sampled totals (PAGER sets its colour from the median estimate and shows how likely each
range is: ``probabilities`` here), the alert's colour the higher of the two. Colours map to the alert
levels as green 관심, yellow 주의, orange 경계, red 심각.

A quake opens nothing (and a revision that makes it so clears its alert) when it cannot matter for the
city: below ML :data:`MIN_ML`, its epicentre beyond the ground-motion model's 300 km of every cell, or a
median PGA under :data:`FELT_PGA_G` at every built cell (below MMI V, "felt by nearly everyone": no damage
to expect and little to report). An alert is cleared :data:`RECENT` after its quake: the first-day
assessment has done its work by then and the domain's own maps answer for the aftershocks.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from features.registry import LEVELS
from live.alerts import ALERTS, AlertEvent, record_event
from live.db import writing

log = logging.getLogger("urban_safety.impact")

IMPACT_LEAD = -2  # the lead_hours of per-event impact alerts (map alerts have leads >= 0, input alerts -1)
COLOURS = ("green", "yellow", "orange", "red")  # index = the alert level (관심, 주의, 경계, 심각)
DEATH_BOUNDS = (1.0, 100.0, 1000.0)  # people: PAGER's fatality ranges
LOSS_BOUNDS_USD = (1e6, 1e8, 1e9)  # US dollars: PAGER's economic-loss ranges
#: KRW per US dollar: chosen near the 2024-2025 market rate (about 1,360-1,470); set
#: ``URBAN_SAFETY_KRW_PER_USD`` to follow the market.
DEFAULT_KRW_PER_USD = 1400.0
KRW_ENV = "URBAN_SAFETY_KRW_PER_USD"
#: Smaller quakes open nothing: the earthquake domain's smallest scenario (KMA issues 지진정보 from ML 2.0,
#: and no damage in Korea's record is from below ML 3).
MIN_ML = 3.0
#: The lower bound of MMI V in PGA (Wald, Quitoriano, Heaton and Kanamori 1999, Earthquake Spectra 15(3):
#: 557-564, table: V from 3.9 %g).
FELT_PGA_G = 0.039
RECENT = pd.Timedelta(hours=24)
DAY_HOURS = range(7, 19)  # KST hours whose people are counted at their daytime places (HAZUS's 2 PM)
TOP_DISTRICTS = 5


def prepare(src) -> None:
    """Build once what every assessment reads (the building stock, the cells' arrays, the ground-motion
    blocks), so the first quake does not wait for it; the service's swaps of its Sources carry them over
    (:func:`features.timeseries.carry_memo`)."""
    from features import timeseries as ts
    from features.domains.earthquake import consequences as cq

    if src.city.seismic_region is not None and src.available("buildings"):
        cq.building_stock(src), ts.cell_arrays(src), cq._blocks(src)


def krw_per_usd() -> float:
    """The configured exchange rate (KRW per US dollar); ValueError for a value that is not a positive number."""
    raw = os.environ.get(KRW_ENV, "").strip()
    if not raw:
        return DEFAULT_KRW_PER_USD
    try:
        rate = float(raw)
    except ValueError:
        rate = float("nan")
    if not rate > 0:
        raise ValueError(f"{KRW_ENV}: {raw!r} is not a positive number of KRW per US dollar")
    return rate


def colour(value: float, bounds: tuple[float, ...]) -> int:
    """The PAGER colour index (0 green .. 3 red) of ``value`` against the range ``bounds``."""
    return int(np.searchsorted(np.asarray(bounds), value, side="right"))


def _probabilities(samples: np.ndarray, bounds: tuple[float, ...]) -> dict[str, float]:
    index = np.searchsorted(np.asarray(bounds), samples, side="right")
    return {c: round(float(np.mean(index == i)), 3) for i, c in enumerate(COLOURS)}


def conditions_of(quake: dict) -> dict:
    """A held quake row as the earthquake domain's scenario conditions."""
    out = {"magnitude": float(quake["magnitude"]), "magnitude_type": quake.get("magnitude_type") or "ML",
           "epicentre_lat": float(quake["lat"]), "epicentre_lon": float(quake["lon"])}
    depth = quake.get("depth_km")
    return out if depth is None or pd.isna(depth) else {**out, "depth_km": float(depth)}


def assess(src, quake: dict, records: pd.DataFrame | None = None) -> dict:
    """The impact of ``quake`` (a ``quakes`` row: event_no, time, magnitude, magnitude_type, lat, lon,
    depth_km, location) on the city of ``src``, conditioned on ``records`` (``quake_stations`` rows).

    Returns ``{"opens": False, "reason": ...}`` for a quake that cannot matter (module docstring), else
    ``opens`` True with ``level`` (index into LEVELS), ``colour``, ``deaths``, ``loss`` (each: mean, p05,
    p95, median, its PAGER colour and the probability of each colour; loss in KRW and USD), ``injuries``,
    ``displaced``, ``damaged_buildings`` (moderate or worse; mean and range), ``max_pga_g``, the
    ``districts`` most affected (by loss), the ``cells`` at 주의 or above of the earthquake domain's
    levels (share of buildings at moderate or worse), ``stations`` (records used) and the event."""
    from features.domains.earthquake import consequences as cq
    from features.domains.earthquake import seismic
    from features.domains.earthquake.serving import SERVING, check_scenario
    from features.errors import DataError

    conditions = conditions_of(quake)
    ml = seismic.as_ml(conditions["magnitude"], conditions["magnitude_type"])
    event = {"event_id": str(quake["event_no"]), "time": pd.Timestamp(quake["time"]).isoformat(),
             "magnitude": conditions["magnitude"], "magnitude_type": conditions["magnitude_type"],
             "ml": round(float(ml), 2), "lat": conditions["epicentre_lat"], "lon": conditions["epicentre_lon"],
             "depth_km": conditions.get("depth_km"), "location": _text(quake.get("location"))}
    if ml < MIN_ML:
        return {"opens": False, "event": event, "reason": f"ML {ml:.1f} is below ML {MIN_ML:g}"}
    try:
        check_scenario(src, conditions)
    except DataError as exc:
        return {"opens": False, "event": event, "reason": str(exc)}
    at = pd.Timestamp(quake["time"])
    population = "day" if at.hour in DAY_HOURS else "night"
    conditions = {**conditions, "magnitude": ml, "magnitude_type": "ML"}
    records = records if records is not None and len(records) else None
    cells, sums = cq.consequences(src, conditions, at, population, records=records, cell_ranges=False)
    built = cells["buildings"] > 0
    max_pga = float(cells.loc[built, "pga_g"].max()) if built.any() else 0.0
    if max_pga < FELT_PGA_G:
        return {"opens": False, "event": event,
                "reason": f"median PGA at most {max_pga:.2g} g at the city's buildings, below MMI V ({FELT_PGA_G} g)"}

    rate = krw_per_usd()
    q = {name: i for i, name in enumerate(cq.QUANTITIES)}
    samples = sums["city"]  # (SAMPLES, QUANTITIES)
    city = cq.totals(cells, sums).iloc[0]
    deaths = _quantity(city, "deaths", samples[:, q["deaths"]], DEATH_BOUNDS, 1.0)
    loss = _quantity(city, "loss_krw", samples[:, q["loss_krw"]], LOSS_BOUNDS_USD, rate)
    loss["usd"] = {k: round(loss[k] / rate) for k in ("mean", "p05", "p95", "median")}
    level = max(deaths["level"], loss["level"])
    damaged = samples[:, [q[s] for s in cq.STATES[1:]]].sum(axis=1)
    share = np.where(cells["buildings"] > 0, cells[list(cq.STATES[1:])].sum(axis=1) / cells["buildings"].clip(lower=1), 0)
    scores, levels = SERVING.levels.publish(share)
    districts = cq.totals(cells, sums, by=["district_code", "district"]).sort_values("loss_krw", ascending=False)
    hot = cells.assign(share=share, score=scores, level=levels,
                       damaged=cells[list(cq.STATES[1:])].sum(axis=1))
    hot = hot[hot["level"] >= 1].sort_values(["level", "damaged"], ascending=False)
    centres = src.grid.cells.set_index("cell_id").loc[hot["cell_id"], ["lat", "lon"]].to_numpy()
    return {
        "opens": True, "event": event, "level": level, "colour": COLOURS[level],
        "population": population, "krw_per_usd": rate,
        "deaths": deaths, "loss": loss,
        "injuries": _range(city, "injuries", 1), "displaced": _range(city, "displaced", 0),
        "damaged_buildings": {"mean": round(float(sum(city[s] for s in cq.STATES[1:])), 1),
                              "p05": round(float(np.quantile(damaged, 0.05)), 1),
                              "p95": round(float(np.quantile(damaged, 0.95)), 1)},
        "buildings": int(round(float(city["buildings"]))),
        "max_pga_g": round(max_pga, 4),
        "districts": [{"district": d["district"], "district_code": int(d["district_code"]),
                       "damaged_buildings": round(float(sum(d[s] for s in cq.STATES[1:])), 1),
                       "loss_krw": round(float(d["loss_krw"])), "deaths": round(float(d["deaths"]), 2),
                       "injuries": round(float(d["injuries"]), 1), "displaced": round(float(d["displaced"]))}
                      for d in districts.head(TOP_DISTRICTS).to_dict("records")],
        "stations": 0 if records is None else len(records),
        "cells": [{"cell_id": r["cell_id"], "district": r["district"], "lat": float(c[0]), "lon": float(c[1]),
                   "level": LEVELS[int(r["level"])][0], "level_en": LEVELS[int(r["level"])][1],
                   "score": float(r["score"]), "cause": "earthquake",
                   "pga_g": round(float(r["pga_g"]), 4), "pga_g_p05": round(float(r["pga_g_p05"]), 4),
                   "pga_g_p95": round(float(r["pga_g_p95"]), 4), "damaged_buildings": round(float(r["damaged"]), 2),
                   "loss_krw": round(float(r["loss_krw"]))}
                  for r, c in zip(hot.to_dict("records"), centres, strict=True)],
        "method": cq.METHOD,
    }


def _quantity(city: pd.Series, name: str, samples: np.ndarray, bounds_usd: tuple, per_usd: float) -> dict:
    """Mean, 5-95% range and median of a city total, with its PAGER colour (from the median) and the
    probability of each colour; ``per_usd`` converts the bounds (KRW for loss, 1 for deaths)."""
    bounds = tuple(b * per_usd for b in bounds_usd)
    median = float(np.median(samples))
    level = colour(median, bounds)
    digits = 0 if name == "loss_krw" else 2
    return {**_range(city, name, digits), "median": round(median, digits), "level": level,
            "colour": COLOURS[level], "probabilities": _probabilities(samples, bounds)}


def _range(city: pd.Series, name: str, digits: int) -> dict:
    return {k: round(float(city[f"{name}{suffix}"]), digits)
            for k, suffix in (("mean", ""), ("p05", "_p05"), ("p95", "_p95"))}


def _text(value):
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def cause(a: dict) -> str:
    """One line: the event and why its colour (e.g. "earthquake ML 5.4 ... : PAGER yellow (loss)")."""
    e = a["event"]
    why = [k for k in ("deaths", "loss") if a[k]["level"] == a["level"]]
    where = e["location"] or f"{e['lat']:.2f} N {e['lon']:.2f} E"
    return f"earthquake ML {e['ml']:.1f}, {where}, {e['time'].replace('T', ' ')}: PAGER {a['colour']} ({', '.join(why)})"


# --- the alert of an event -------------------------------------------------------------------------------

def _open(conn, event_id: str):
    return conn.execute(sa.select(ALERTS).where(
        ALERTS.c.domain == "earthquake", ALERTS.c.lead_hours == IMPACT_LEAD, ALERTS.c.subject == event_id,
        ALERTS.c.status == "open")).mappings().first()


def record_assessment(conn, a: dict, issued_at: datetime, cycle: int | None = None) -> list[AlertEvent]:
    """Open, update or clear the impact alert of ``a``'s event within the writing transaction ``conn``."""
    event_id = a["event"]["event_id"]
    row = _open(conn, event_id)
    data_time = pd.Timestamp(a["event"]["time"]).to_pydatetime()
    if not a["opens"]:
        if row is None:
            return []
        conn.execute(ALERTS.update().where(ALERTS.c.id == row["id"]).values(
            status="cleared", cleared_at=issued_at, updated_at=issued_at, cycle=cycle,
            details=json.dumps({**json.loads(row["details"]), "cleared": a["reason"]}, ensure_ascii=False)))
        return [record_event(conn, row["id"], "cleared", cycle, issued_at, data_time, {"reason": a["reason"]})]
    details = {k: v for k, v in a.items() if k not in ("cells", "opens", "level")}
    values = dict(level=a["level"], cells=json.dumps(a["cells"], ensure_ascii=False), cause=cause(a),
                  data_time=data_time, cycle=cycle, details=json.dumps(details, ensure_ascii=False))
    if row is None:
        alert_id = conn.execute(ALERTS.insert().values(
            domain="earthquake", lead_hours=IMPACT_LEAD, subject=event_id, status="open", opened_at=issued_at,
            updated_at=issued_at, opened_cycle=cycle, **values)).inserted_primary_key[0]
        return [record_event(conn, alert_id, "opened", cycle, issued_at, data_time,
                        {"level": [None, LEVELS[a["level"]][0]], "colour": [None, a["colour"]]})]
    before = json.loads(row["details"])
    changes = {}
    if a["level"] != row["level"]:
        changes["level"] = [LEVELS[row["level"]][0], LEVELS[a["level"]][0]]
    for key, path in (("colour", ("colour",)), ("deaths", ("deaths", "mean")), ("loss_krw", ("loss", "mean")),
                      ("magnitude", ("event", "magnitude")), ("epicentre", ("event", "lat")),
                      ("stations", ("stations",))):
        old, new = _at(before, path), _at(details, path)
        if old != new:
            changes[key] = [old, new]
    if "epicentre" in changes:
        changes["epicentre"] = [[before["event"]["lat"], before["event"]["lon"]], [a["event"]["lat"], a["event"]["lon"]]]
    conn.execute(ALERTS.update().where(ALERTS.c.id == row["id"]).values(
        **values, **({"updated_at": issued_at} if changes else {})))
    if not changes:
        return []
    kind = "escalated" if a["level"] > row["level"] else "updated"
    return [record_event(conn, row["id"], kind, cycle, issued_at, data_time, changes)]


def _at(d: dict, path: tuple):
    for key in path:
        d = d.get(key) if isinstance(d, dict) else None
    return d


def follow(db: sa.Engine, src, store, changes: list, now: datetime) -> list[AlertEvent]:
    """Assess every event that ``changes`` (the store's, :meth:`live.store.ObservationStore.changes`) moved
    (a quake or a record of it) and is at most RECENT old and not ahead of the clock, and clear the impact
    alerts of quakes older than RECENT. One transaction per event: its alert lands with its webhooks."""
    if src.city.seismic_region is None:  # a city that does not run the earthquake domain
        return []
    moved = sorted({str(e) for c in changes if c.source in ("quakes", "quake_stations") for e in c.rows["event_no"]})
    events: list[AlertEvent] = []
    if moved:
        quakes = store.frame("quakes", moved).set_index("event_no", drop=False)
        records = store.frame("quake_stations", moved)
        for event_id in moved:
            if event_id not in quakes.index:
                continue
            quake = quakes.loc[event_id].to_dict()
            age = pd.Timestamp(now) - pd.Timestamp(quake["time"])
            if not pd.Timedelta(0) - pd.Timedelta(minutes=5) <= age <= RECENT:
                continue  # an old event back-filled or corrected: history, not news
            try:
                a = assess(src, quake, records[records["event_no"] == event_id])
            except Exception:  # one event's failure must not hold up the others or the maps
                log.exception("impact of quake %s could not be assessed", event_id)
                continue
            with writing(db) as conn:
                events += record_assessment(conn, a, now)
            log.info("quake %s: %s", event_id, cause(a) if a["opens"] else f"no alert ({a['reason']})")
    return events + _age_out(db, now)


def _age_out(db: sa.Engine, now: datetime) -> list[AlertEvent]:
    """Clear the impact alerts of quakes more than RECENT old."""
    cut = (pd.Timestamp(now) - RECENT).to_pydatetime()
    with writing(db) as conn:
        rows = conn.execute(sa.select(ALERTS).where(ALERTS.c.lead_hours == IMPACT_LEAD, ALERTS.c.status == "open",
                                                    ALERTS.c.data_time < cut)).mappings().all()
        out = []
        for row in rows:
            reason = f"the quake is more than {RECENT.total_seconds() / 3600:g} h old"
            conn.execute(ALERTS.update().where(ALERTS.c.id == row["id"]).values(
                status="cleared", cleared_at=now, updated_at=now))
            out.append(record_event(conn, row["id"], "cleared", None, now, row["data_time"], {"reason": reason}))
    return out

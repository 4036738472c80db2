"""Earthquake: the API's conditions, levels and request adapters."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import serving_adapters as sa
from features import timeseries as ts
from features.domains.earthquake import consequences as cq
from features.domains.earthquake import seismic
from features.domains.earthquake.features import CONDITIONS
from features.errors import DataError
from features.registry import Condition, Levels, Serving
from features.spatial import haversine_km

SERVING_CONDITIONS = (
    Condition("magnitude", "ML", "local magnitude (KMA 규모) of the scenario", 5.5, 3.0, 8.5, required=True),
    Condition("epicentre_lat", "degrees N", "epicentre latitude (WGS84)", 37.3, 33.0, 43.0, required=True),
    Condition("epicentre_lon", "degrees E", "epicentre longitude (WGS84)", 126.3, 120.0, 132.0, required=True),
    Condition("depth_km", "km", f"hypocentre depth. Omitted: {seismic.DEFAULT_DEPTH_KM:g} km, a typical Korean "
              "crustal event", 10.0, 0.0, 100.0),
    Condition("magnitude_type", "", "what `magnitude` is: ML (KMA's local magnitude 규모) or Mw (moment "
              "magnitude, e.g. USGS's); Mw is converted to ML with the inverse of Grünthal et al. (2009). "
              "Omitted: ML", "ML", kind="str", choices=seismic.MAGNITUDE_TYPES, answer_only=True),
    Condition("population", "", "whose people the casualties in details count: night (02:00, the resident "
              "pop_night) or day (14:00, pop_day). Omitted: night", cq.DEFAULT_POPULATION, kind="str",
              choices=tuple(cq.POPULATIONS), answer_only=True),
)
# The consequences travel from the request adapter to combine as request columns (build_rows passes
# request columns through): combine sees feature rows only, and the consequences need the register.
_RANGES = tuple(f"{q}_{p}" for q in cq.QUANTITIES for p in ("p05", "p95"))
_CONSEQUENCE_COLUMNS = tuple(f"consequence_{c}" for c in ("buildings", *cq.STATES, "loss_krw", *cq.SEVERITIES,
                                                           "injuries", "deaths", "displaced", "population", *_RANGES))
SCENARIO_ID = "request"


def serving_requests(src, cells: pd.DataFrame, at, conditions: dict | None = None) -> pd.DataFrame:
    """One request per cell for the client's scenario at ``at`` (buildings approved by then count)."""
    conds = sa.given(conditions, CONDITIONS)
    kind = (conditions or {}).get("magnitude_type") or "ML"
    if "magnitude" in conds:  # the model and the features take KMA's ML
        conds["magnitude"] = seismic.as_ml(conds["magnitude"], kind)
    missing = [c for c in CONDITIONS if c not in conds and c != "depth_km"]
    if missing:
        raise DataError(f"earthquake scenarios need {', '.join(missing)}", column=missing[0])
    columns: dict[str, object] = {"scenario_id": SCENARIO_ID, "time": pd.Timestamp(at)}
    columns.update({c: sa.as_float(conds.get(c, seismic.DEFAULT_DEPTH_KM)) for c in CONDITIONS})
    requests = sa.cell_requests(cells, columns, before=["scenario_id"])
    population = (conditions or {}).get("population") or cq.DEFAULT_POPULATION
    scenario = {c: float(requests[c].iloc[0]) for c in CONDITIONS} if len(requests) else {}
    if scenario:
        positions = ts.cell_positions(src, requests["cell_id"].to_numpy())
        per_cell = cq.cell_consequences(src, scenario, at, population, positions).set_index("cell_id")
        per_cell = per_cell.reindex(requests["cell_id"].to_numpy())
        for column in _CONSEQUENCE_COLUMNS:
            requests[column] = np.nan_to_num(per_cell[column.removeprefix("consequence_")].to_numpy(dtype=float))
        requests["population"] = population
        requests["magnitude_type"] = kind  # the magnitude column itself is ML now
    return requests


# Strong shaking: median PGA at the site of 0.3 g or more, between MMI VII and VIII (0.21 and 0.40 g in
# Worden et al. 2012, BSSA 102:204, the PGA-to-intensity relation ShakeMap uses).
# There every pre- and low-code HAZUS class but wood is past its moderate-damage median (0.10-0.20 g), so
# the fragility physics, not the learned corrections, decides the answer; it is also where strong motion
# is rare in the damage surveys and a tree model is least reliable.
STRONG_SHAKING_G = 0.3
FLOOR_NOTE = "raised to the physics lower bound in strong shaking"


def apply_physics_floor(rows: pd.DataFrame, pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(value, floor, raised)``: predictions clipped to [0, 1] and, in strong shaking, never below
    ``fragility_floor_share`` (:func:`features.domains.earthquake.seismic.fragility_floor`).

    ``rows`` needs ``ln_pga_site`` and ``fragility_floor_share`` (any feature rows do); ``floor`` is NaN
    outside strong shaking, ``raised`` marks the rows lifted to it. A NaN prediction stays NaN. Serving's
    combine uses it; an evaluation of served answers should call it on the model's holdout predictions.
    More hazard never lowers the result: the model and the floor are monotone and the floor only
    switches on as the shaking grows.
    """
    value = np.clip(np.asarray(pred, dtype=float), 0, 1)
    strong = rows["ln_pga_site"].to_numpy(dtype=float) >= np.log(STRONG_SHAKING_G)
    floor = np.where(strong, rows["fragility_floor_share"].to_numpy(dtype=float), np.nan)
    raised = value < floor  # False wherever either is NaN
    return np.where(raised, floor, value), floor, raised


def serving_combine(rows: pd.DataFrame, pred) -> pd.DataFrame:
    """Damage share per cell (0 where the cell has no buildings), with the shaking, the stock size and,
    in strong shaking, the physics floor (``details.physics_floor``, and a note when the value was raised
    to it, :func:`apply_physics_floor`).

    With the request adapter's consequence columns (:func:`serving_requests`), ``details`` also carry the
    physics' consequences of the scenario for the cell (:mod:`features.domains.earthquake.consequences`):
    ``fragility_share`` (the consequences' moderate-or-worse share, beside the model's ``value``),
    ``damage_states`` (expected buildings in each state), ``loss_krw`` (KRW, HAZUS direct loss),
    ``casualties`` (expected people per HAZUS severity 1-4), ``injuries``, ``deaths``, ``displaced``, their
    5-95% ``ranges`` (per cell: they do not add up over cells, the means do), ``population`` (night or
    day) and ``occupants`` (people counted).
    They are not rescaled to the model's value (see the consequences module for why)."""
    n = rows["n_buildings"].to_numpy(dtype=float)
    value, floor, raised = apply_physics_floor(rows, pred)
    value = np.where(n > 0, value, 0.0)
    columns = {"pga_g": np.exp(rows["ln_pga_site"].to_numpy(dtype=float)),
               "hypo_dist_km": rows["hypo_dist_km"].to_numpy(dtype=float), "buildings": n, "physics_floor": floor}
    details = sa.records(columns, digits=4)
    if _CONSEQUENCE_COLUMNS[0] in rows:
        for record, extra in zip(details, _consequence_details(rows), strict=True):
            record.update(extra)
    notes = sa.join_notes([np.where(raised & (n > 0), FLOOR_NOTE, None)], len(rows))
    return sa.per_cell(rows, value, details=details, notes=notes)


def _consequence_details(rows: pd.DataFrame) -> list[dict]:
    """Per row, the consequence part of ``details`` from the request adapter's columns."""
    col = {c.removeprefix("consequence_"): rows[c].to_numpy(dtype=float) for c in _CONSEQUENCE_COLUMNS}
    population = rows["population"].tolist()
    out = []
    for i in range(len(rows)):
        n = col["buildings"][i]
        damaged = sum(col[s][i] for s in cq.STATES[1:])
        out.append({
            "fragility_share": round(float(damaged / n), 4) if n > 0 else 0.0,
            "damage_states": {s: round(float(col[s][i]), 3) for s in cq.STATES},
            "loss_krw": round(float(col["loss_krw"][i])),
            "casualties": {s: round(float(col[s][i]), 3) for s in cq.SEVERITIES},
            "injuries": round(float(col["injuries"][i]), 3), "deaths": round(float(col["deaths"][i]), 3),
            "displaced": round(float(col["displaced"][i]), 3),
            "ranges": {q: {p: round(float(col[f"{q}_{p}"][i]), 0 if q == "loss_krw" else 3) for p in ("p05", "p95")}
                       for q in cq.QUANTITIES},
            "population": population[i], "occupants": round(float(col["population"][i])),
        })
    return out


def serving_now(src) -> pd.Timestamp:
    """The end of what the held data describe: the latest building approval or damage survey."""
    def latest() -> pd.Timestamp:
        times = [pd.to_datetime(src["buildings"]["approval_date"]).max()]
        times += [pd.to_datetime(f["time"]).max() for f in src.loaded(["damage_surveys"]).values()]
        times = [t for t in times if pd.notna(t)]
        if not times:
            raise DataError("earthquake: no dated buildings or damage surveys to serve from")
        return pd.Timestamp(max(times))
    return ts.memo(src, "earthquake.now", latest)


#: A quake this recent (before the data time) is what a live cycle scores the city for.
LIVE_WINDOW = pd.Timedelta(hours=24)


def live_scenario(src, now: pd.Timestamp) -> dict | None:
    """The newest quake of KMA's list within ``LIVE_WINDOW`` before ``now`` as conditions, else None."""
    if not src.available("quakes"):
        return None
    quakes = src["quakes"]
    recent = quakes[(quakes["time"] <= now) & (quakes["time"] > now - LIVE_WINDOW)]
    if recent.empty:
        return None
    q = recent.sort_values("time").iloc[-1]
    out = {"magnitude": float(q["magnitude"]), "epicentre_lat": float(q["lat"]), "epicentre_lon": float(q["lon"])}
    return out if pd.isna(q["depth_km"]) else {**out, "depth_km": float(q["depth_km"])}


def check_scenario(src, conditions: dict) -> None:
    """DataError naming the field when a scenario is outside what its physics holds for: the epicentre
    farther than BSSA14's 300 km (Joyner-Boore) from every cell of the city."""
    lat, lon = conditions.get("epicentre_lat"), conditions.get("epicentre_lon")
    if lat is None or lon is None:
        return
    cells = ts.cell_arrays(src)
    nearest = float(np.min(haversine_km(float(lat), float(lon), cells["lat"][:-1], cells["lon"][:-1])))
    limit = seismic.BSSA14_LIMITS["rjb_km"][1]
    if nearest > limit:
        raise DataError(f"the epicentre is {nearest:,.0f} km from the nearest cell of {src.city.name}; the "
                        f"ground-motion model (BSSA14) holds to {limit:g} km", column="epicentre_lat")


SERVING = Serving(
    conditions=SERVING_CONDITIONS,
    levels=Levels((1e-4, 0.01, 0.05, 0.15, 0.5), log=True),
    value="share of the cell's buildings at moderate or worse damage in the scenario",
    unit="share of buildings",
    requests=serving_requests,
    combine=serving_combine,
    now=serving_now,
    live=live_scenario,
    check=check_scenario,
    scenarios=(("M5.5 under the west coast", {"magnitude": 5.5, "epicentre_lat": 37.45, "epicentre_lon": 126.45,
                                               "depth_km": 10}),),
)

"""Seismic retrofit priorities: each building's expected annual loss and casualties, and what bringing it
to the high-code level would avoid, over a set of scenarios weighted by their annual rate.

**Scenarios.** The source model the embedded generator uses (:mod:`features.embedded.quakes`): magnitudes
follow the catalogue's Gutenberg-Richter law truncated to ``quakes.SCENARIO_ML`` (ML 4.5-7.0), with the
b-value of the held catalogue (Aki's estimate, ``quakes.b_value``) and its a-value from the held
catalogue's count per year above its smallest magnitude; a share ``quakes.NEAR_SHARE`` of the rate lies
within ``quakes.NEAR_KM`` of the city centre, the rest at the catalogue's epicentres. The set is a
deterministic quadrature, nothing is drawn: magnitude bins of equal width (4 to 12 by the budget), each
at its Gutenberg-Richter mean magnitude and weighted by the law's probability, times places: a polar
grid around the exposure's value-weighted centre, rings finer near it (RING_EDGES_KM) and as many
sectors as the budget allows, each node at its bin's geometric-mean distance and mean bearing and
weighted by the source model's share in the bin; all at depth ``seismic.DEFAULT_DEPTH_KM``. Each
scenario's ``rate_per_year`` is the rate of its bin and place; they sum to the catalogue's annual rate of
ML 4.5-7.0. On the built-in Pohang, 400 and 1,000 scenarios agree within 2% (loss and casualties); 40
within about 10% (``bench/quake_record.py --retrofit``).

**Expectations are linear in the damage-state probabilities**, so the rate-weighted sum over scenarios
is taken once per (cell, fragility group) (:func:`annual_state_probabilities`, chunked over scenarios)
and each building reads its own row: buildings x scenarios costs one gather per building.

**Retrofit** moves a building to its HAZUS class's high-code curves, piloti weakness removed (the
strengthening of open ground storeys is the usual Korean retrofit). A building already high-code and
without piloti avoids nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import timeseries as ts
from features.domains.earthquake import consequences as cq
from features.domains.earthquake import seismic
from features.embedded import quakes
from features.errors import DataError

POPULATIONS = ("mean", *cq.POPULATIONS)  # mean: half of each day at the day population, half at night
GOLDEN_ANGLE = np.pi * (3 - np.sqrt(5))  # spreads points evenly over a disc (Vogel's sunflower)


RING_EDGES_KM = (0.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 1000.0)  # finer where the loss is: near the city


def scenario_set(src, count: int = 400) -> pd.DataFrame:
    """About ``count`` scenarios (``magnitude`` ML, ``epicentre_lat``, ``epicentre_lon``, ``depth_km``,
    ``rate_per_year``): a deterministic quadrature of the held KMA catalogue's source model.

    ``count`` >= 4 (ValueError); DataError without a catalogue of at least two dated events. Nothing is
    drawn: the same data give the same set.
    """
    if count < 4:
        raise ValueError(f"scenarios: {count}; at least 4 (magnitude bins x places)")
    if not src.available("quakes"):
        raise DataError("retrofit needs the earthquake catalogue (source quakes)", column="quakes")
    cat = src["quakes"]
    mags = cat["magnitude"].to_numpy(dtype=float)
    times = pd.to_datetime(cat["time"])
    years = (times.max() - times.min()).total_seconds() / (365.25 * 86400)
    if len(cat) < 2 or not years > 0:
        raise DataError("the earthquake catalogue needs at least two dated events for a yearly rate", column="quakes")
    m_c = float(np.nanmin(mags))
    b = quakes.b_value(mags, m_min=m_c)
    lo, hi = quakes.SCENARIO_ML
    rate_above = len(cat) / years  # events per year at or above m_c: the catalogue's a-value, 10**a
    n_mag = int(min(12, max(4, count // 28)))
    edges = np.linspace(lo, hi, n_mag + 1)
    bin_rate = rate_above * (10 ** (-b * (edges[:-1] - m_c)) - 10 ** (-b * (edges[1:] - m_c)))
    mid = _gr_mean(edges, b)
    lat, lon, share = _places(src, cat, max(count // n_mag, 1))
    return pd.DataFrame({
        "magnitude": np.repeat(mid, len(lat)), "epicentre_lat": np.tile(lat, n_mag),
        "epicentre_lon": np.tile(lon, n_mag), "depth_km": seismic.DEFAULT_DEPTH_KM,
        "rate_per_year": np.outer(bin_rate, share).ravel(),
    })


def _gr_mean(edges: np.ndarray, b: float) -> np.ndarray:
    """The Gutenberg-Richter mean magnitude of each bin (the rate's centre of mass, not the bin's middle)."""
    beta = b * np.log(10)
    m = np.linspace(edges[:-1], edges[1:], 201)  # (points, bins)
    w = np.exp(-beta * (m - edges[0]))
    return (m * w).sum(axis=0) / w.sum(axis=0)


def _places(src, cat: pd.DataFrame, places: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epicentre nodes and their shares of the rate: a polar grid around the exposure (RING_EDGES_KM x
    sectors), each bin holding its share of the source model (``quakes.NEAR_SHARE`` spread evenly over the
    disc of ``quakes.NEAR_KM``, the rest over the catalogue's epicentres) at its mean distance and azimuth."""
    # Centred on the exposure (the stock's value-weighted centre), where distance decides the loss.
    stock = cq.building_stock(src)
    cells = src.grid.cells
    value = np.bincount(stock.cell, weights=stock.value_krw, minlength=len(cells))
    clat, clon = (float(np.average(cells[c].to_numpy(), weights=value)) for c in ("lat", "lon"))
    edges = np.asarray(RING_EDGES_KM)
    rings = len(edges) - 1
    sectors = max(1, places // rings)
    # The near disc as a fine even pattern (Vogel's sunflower), the catalogue as it is.
    k = np.arange(2000)
    r_near = quakes.NEAR_KM * np.sqrt((k + 0.5) / len(k))
    az_near = k * GOLDEN_ANGLE
    glat, glon = float(cells["lat"].mean()), float(cells["lon"].mean())  # the source model's city centre
    kx = quakes.KM_PER_DEG * np.cos(np.radians(clat))
    east = np.concatenate([r_near * np.sin(az_near) + (glon - clon) * kx, (cat["lon"].to_numpy(dtype=float) - clon) * kx])
    north = np.concatenate([r_near * np.cos(az_near) + (glat - clat) * quakes.KM_PER_DEG,
                            (cat["lat"].to_numpy(dtype=float) - clat) * quakes.KM_PER_DEG])
    r, az = np.hypot(east, north), np.arctan2(east, north) % (2 * np.pi)
    mass = np.concatenate([np.full(len(k), quakes.NEAR_SHARE / len(k)), np.full(len(cat), (1 - quakes.NEAR_SHARE) / len(cat))])
    ring = np.clip(np.searchsorted(edges, r, side="right") - 1, 0, rings - 1)
    sector = np.minimum((az / (2 * np.pi) * sectors).astype(int), sectors - 1)
    key = ring * sectors + sector
    used, inverse = np.unique(key, return_inverse=True)
    share = np.bincount(inverse, weights=mass)
    # The bin's geometric mean distance (from a 4 km floor): the loss falls steeply and convexly with
    # distance, and the arithmetic mean would put the node too far.
    dist = np.exp(np.bincount(inverse, weights=mass * np.log(np.hypot(r, 4.0))) / share)
    dist = np.sqrt(np.maximum(dist**2 - 16.0, 0.0))
    c, s = (np.bincount(inverse, weights=mass * f(az)) for f in (np.cos, np.sin))
    bearing = np.arctan2(s, c)
    lat = clat + dist * np.cos(bearing) / quakes.KM_PER_DEG
    lon = clon + dist * np.sin(bearing) / (quakes.KM_PER_DEG * np.cos(np.radians(clat)))
    return lat, lon, share / share.sum()


def annual_state_probabilities(src, scenarios: pd.DataFrame, chunk: int = 16) -> np.ndarray:
    """(cells, fragility groups, 4): Σ over scenarios of rate_per_year x P(exactly in each damage state),
    i.e. the expected number of times per year a building of the group in the cell ends in each state."""
    cells = ts.cell_arrays(src)
    lat, lon, vs30 = (cells[c][:-1][None, :] for c in ("lat", "lon", "vs30_mps"))
    out = np.zeros((len(lat[0]), len(seismic.FRAGILITY_GROUPS), len(cq.STATES)))
    for start in range(0, len(scenarios), chunk):
        s = scenarios.iloc[start:start + chunk]
        col = {c: s[c].to_numpy(dtype=float)[:, None] for c in (*cq.CONDITIONS, "rate_per_year")}
        gm = cq.hold_scatter(seismic.ground_motion(col["magnitude"], col["epicentre_lat"], col["epicentre_lon"],
                                                   col["depth_km"], lat, lon, vs30), vs30)
        probs = cq.state_probabilities(gm["ln_pga"].ravel(), gm["sigma"].ravel(), gm["mw"].ravel())
        out += np.einsum("s,scgk->cgk", col["rate_per_year"][:, 0], probs.reshape(len(s), *out.shape))
    return out


RANKINGS = {"loss": ("avoided_annual_loss_krw", "avoided_annual_casualties"),
            "casualties": ("avoided_annual_casualties", "avoided_annual_loss_krw")}


def priorities(src, scenarios: pd.DataFrame, population: str = "mean", by: str = "loss") -> pd.DataFrame:
    """One row per building of the register on the grid, ranked (``rank`` 1 = most loss avoided, then most
    casualties avoided; ``by="casualties"`` the other way round): the building's inputs (``building_id`` = its row in the register, address,
    structure, floors, floor area, purpose, approval date, code level, HAZUS class, piloti, cell, district)
    and per year: ``expected_annual_loss_krw``, ``avoided_annual_loss_krw`` (KRW/year),
    ``expected_annual_casualties``, ``avoided_annual_casualties`` (people/year, severities 1-4) and
    ``avoided_annual_deaths`` (severity 4), with ``retrofit_cost_krw`` when the city configures a cost.
    ``population``: mean (default), night or day; ValueError otherwise."""
    if population not in POPULATIONS:
        raise ValueError(f"population must be one of {', '.join(POPULATIONS)}, not {population!r}")
    if by not in RANKINGS:
        raise ValueError(f"by must be one of {', '.join(RANKINGS)}, not {by!r}")
    stock = cq.building_stock(src)
    everyone = np.ones(len(stock), dtype=bool)
    kinds = tuple(cq.POPULATIONS) if population == "mean" else (population,)
    people = np.mean([cq.occupants(src, stock, everyone, p) for p in kinds], axis=0)
    annual = annual_state_probabilities(src, scenarios)
    high = seismic.fragility_group(stock.hazus, np.full(len(stock), seismic.HIGH_CODE), np.zeros(len(stock), bool))
    now = cq.building_consequences(stock, annual, people, everyone)
    after = cq.building_consequences(stock, annual, people, everyone, groups=high)
    b = src["buildings"].iloc[stock.row]
    frame = pd.DataFrame({
        "building_id": stock.row, "address": b["address"].to_numpy() if "address" in b else None,
        "structure": b["structure"].to_numpy(), "floors_above": b["floors_above"].to_numpy(),
        "floor_area_m2": stock.area_m2, "purpose": b["purpose"].to_numpy(),
        "approval_date": pd.to_datetime(b["approval_date"]).dt.date.to_numpy(),
        "code_level": np.asarray(seismic.CODE_LEVELS)[stock.level],
        "hazus_class": np.asarray(seismic.HAZUS_CLASSES)[stock.hazus], "piloti": stock.piloti,
        "occupancy": np.asarray(cq.OCCUPANCIES)[stock.occupancy],
        "cell_id": src.grid.cells["cell_id"].to_numpy()[stock.cell],
        "district": src.grid.cells["district"].to_numpy()[stock.cell],
        "occupants": people,
        "expected_annual_loss_krw": now["loss_krw"],
        "avoided_annual_loss_krw": np.maximum(now["loss_krw"] - after["loss_krw"], 0.0),
        "expected_annual_casualties": now["casualties"].sum(axis=1),
        "avoided_annual_casualties": np.maximum(now["casualties"].sum(axis=1) - after["casualties"].sum(axis=1), 0.0),
        "avoided_annual_deaths": np.maximum(now["casualties"][:, 3] - after["casualties"][:, 3], 0.0),
    })
    cost = src.city.earthquake_costs.retrofit_krw_per_m2
    if cost is not None:
        frame["retrofit_cost_krw"] = stock.area_m2 * cost
    frame = frame.sort_values([*RANKINGS[by], "building_id"],
                              ascending=[False, False, True], ignore_index=True)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return frame

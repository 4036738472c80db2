"""Traffic hotspots: the grid cells ranked by the accidents and the harm the traffic model expects over a period.

As in Daejeon's risk-area study, each cell is tiered low / medium / high on three axes: how often
(accidents), how serious (serious-or-worse casualties: deaths + serious injuries) and how large (all
casualties: deaths + serious + minor + reported). The axes are given twice: as the model expects them and
as the period's own accidents were.

Expected accidents: the traffic model's expectation summed over every 3-hour slot of ``[start, end)``,
each slot's rows made exactly as the service makes them (``spec.serving.requests`` for every cell at the
slot start, so weather is the one observed then, then ``spec.build_rows``), one month of slots at a time
so that memory stays bounded. A slot missing an essential input (no rain or temperature observed) is not
scored, as the service would not score it; ``unknown_slots`` counts them.

Per-accident harm (the estimator): a cell's mean ECLO, serious-or-worse casualties and casualties per
accident over all accidents *before* ``start``, shrunk toward its district's mean with a pseudo-count of
:data:`PRIOR_ACCIDENTS` accidents (the district's own mean shrunk the same way toward the city's):
``(sum_cell + k * mean_district) / (n_cell + k)``. Expected ECLO = expected accidents x that ratio, and
the same for the two casualty axes.

Tiers: tercile breakpoints (:data:`TIER_QUANTILES`) of each axis among the cells listed (the top ``n``),
as the published list tiers its own areas; the breakpoints are returned with the list.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from features import timeseries as ts
from features.domains.traffic.features import SLOT
from features.errors import DataError
from features.registry import get_domain

RankBy = Literal["eclo", "count"]
TIERS = ("low", "medium", "high")
TIER_QUANTILES = (1 / 3, 2 / 3)  # a value above the first breakpoint is medium, above the second high
PRIOR_ACCIDENTS = 5.0  # pseudo-count of the shrinkage toward the district's (and the district's toward the city's) mean
CHUNK = "MS"  # one month of slots per feature build
TOP_FACTORS = 5
CELL_COLUMNS = ("cell_id", "district", "lat", "lon")
# axis -> (expected column, observed column)
AXES = {"frequency": ("expected_accidents", "observed_accidents"),
        "severity": ("expected_serious", "observed_serious"),
        "scale": ("expected_casualties", "observed_casualties")}


@dataclass
class Hotspots:
    """Every cell ranked (``cells``), the period, and what the ranking was built from."""

    cells: pd.DataFrame  # one row per cell, best rank first (see :func:`rank_cells` for the columns)
    start: pd.Timestamp
    end: pd.Timestamp
    by: RankBy
    slots: int
    seconds: float
    breakpoints: dict = field(default_factory=dict)  # axis -> (low/medium, medium/high) among the listed cells
    factors: dict = field(default_factory=dict)  # cell_id -> top mean contributions over the period's slots

    def top(self, n: int) -> pd.DataFrame:
        return self.cells.head(n)


def casualties(src) -> pd.DataFrame:
    """Accidents on the grid as :func:`features.domains.traffic.features.accidents` places them, with ``serious`` (deaths + serious
    injuries) and ``casualties`` (all four casualty counts)."""
    def build() -> pd.DataFrame:
        raw = src["taas"]
        lat, lon = raw["lat"].to_numpy(dtype=float), raw["lon"].to_numpy(dtype=float)
        ok = ~(np.isnan(lat) | np.isnan(lon))
        pos = np.full(len(raw), -1, dtype=np.int64)
        pos[ok] = src.grid.locate(lat[ok], lon[ok])
        keep = pos >= 0
        n = {c: raw[c].to_numpy(dtype=float)[keep] for c in ("deaths", "serious", "minor", "reported")}
        return pd.DataFrame({"cell_pos": pos[keep], "time": pd.to_datetime(raw["time"]).to_numpy()[keep],
                             "eclo": raw["eclo"].to_numpy(dtype=float)[keep],
                             "serious": n["deaths"] + n["serious"],
                             "casualties": n["deaths"] + n["serious"] + n["minor"] + n["reported"]})
    return ts.memo(src, "traffic.hotspots.casualties", build)


def per_accident(src, before: pd.Timestamp) -> pd.DataFrame:
    """Per cell (by grid position): ECLO, serious-or-worse casualties and casualties per accident over the
    accidents before ``before``, shrunk toward the district's mean (see the module docstring)."""
    acc = casualties(src)
    acc = acc[acc["time"] < before]
    cells = src.grid.cells
    n_cells, k = len(cells), PRIOR_ACCIDENTS
    district = pd.factorize(cells["district"])[0]
    counts = np.bincount(acc["cell_pos"], minlength=n_cells).astype(float)
    out = {}
    for col in ("eclo", "serious", "casualties"):
        sums = np.bincount(acc["cell_pos"], weights=acc[col], minlength=n_cells)
        city = sums.sum() / counts.sum() if counts.sum() else 0.0
        d_sums, d_counts = np.bincount(district, sums), np.bincount(district, counts)
        d_mean = (d_sums + k * city) / (d_counts + k)
        out[f"{col}_per_accident"] = (sums + k * d_mean[district]) / (counts + k)
    out["history_accidents"] = counts
    return pd.DataFrame(out)


def observed(src, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Per cell (by grid position): the period's accidents, ECLO, serious-or-worse casualties and casualties."""
    acc = casualties(src)
    acc = acc[(acc["time"] >= start) & (acc["time"] < end)]
    n = len(src.grid.cells)
    return pd.DataFrame({"observed_accidents": np.bincount(acc["cell_pos"], minlength=n).astype(float),
                         **{f"observed_{c}": np.bincount(acc["cell_pos"], weights=acc[c], minlength=n)
                            for c in ("eclo", "serious", "casualties")}})


def slot_chunks(start: pd.Timestamp, end: pd.Timestamp):
    """The 3-hour slot starts of ``[start, end)``, a calendar month at a time."""
    slots = pd.date_range(start.ceil("3h"), end, freq=SLOT, inclusive="left")
    if len(slots) == 0:
        return
    month = slots.to_period("M")
    edges = np.flatnonzero(np.r_[True, month[1:] != month[:-1], True])
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        yield slots[lo:hi]


def slot_rows(src, cells: pd.DataFrame, slots) -> pd.DataFrame:
    """Feature rows of ``cells`` at each slot, built as the service builds one slot's rows."""
    spec = get_domain("traffic")
    requests = pd.concat([spec.serving.requests(src, cells, at, {}) for at in slots], ignore_index=True)
    return spec.build_rows(src, requests.drop(columns="notes", errors="ignore"))


def expected_accidents(src, family: str, booster, start, end) -> tuple[np.ndarray, np.ndarray, int]:
    """Per cell (grid order): the model's expected accidents summed over the period's slots, the slots not
    scored (an essential input missing) and the number of slots."""
    from training.models import predict  # here: the registry imports every module of this package

    sums, unknown, n_slots = expected_sums(src, {"model": lambda X: predict(family, booster, X)}, start, end)
    return sums["model"], unknown, n_slots


def expected_sums(src, predictors: dict, start, end) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """:func:`expected_accidents` for several predictors (name -> ``f(X) -> expected accidents``) at once, on
    one build of the rows; rows missing an essential input are left out for every predictor."""
    spec = get_domain("traffic")
    cells = src.grid.cells[list(CELL_COLUMNS)].reset_index(drop=True)
    totals = {name: np.zeros(len(cells)) for name in predictors}
    unknown, n_slots = np.zeros(len(cells), dtype=np.int64), 0
    for slots in slot_chunks(pd.Timestamp(start), pd.Timestamp(end)):
        rows = slot_rows(src, cells, slots)
        X = rows[list(spec.features)]
        missing = X[list(spec.essential)].isna().any(axis=1).to_numpy()
        # Requests are cells x slot in the order of ``cells``: the row's cell is its position modulo the cells.
        pos = np.arange(len(rows)) % len(cells)
        for name, fn in predictors.items():
            pred = np.zeros(len(X))
            if (~missing).any():
                pred[~missing] = np.clip(fn(X.loc[~missing]), 0, None)
            totals[name] += np.bincount(pos, weights=pred, minlength=len(cells))
        unknown += np.bincount(pos, weights=missing, minlength=len(cells)).astype(np.int64)
        n_slots += len(slots)
    return totals, unknown, n_slots


def mean_factors(src, family: str, booster, cell_ids, start, end, every: int = 1) -> dict[str, list]:
    """Each cell's largest mean contributions (model margin scale) over the period's slots (every
    ``every``-th slot), as the engine's top factors but averaged over the period."""
    from training.models import contributions

    spec = get_domain("traffic")
    cells = src.grid.cells.set_index("cell_id").loc[list(cell_ids)].reset_index()[list(CELL_COLUMNS)]
    if cells.empty:
        return {}
    sums, n = np.zeros((len(cells), len(spec.features))), 0
    for slots in slot_chunks(pd.Timestamp(start), pd.Timestamp(end)):
        rows = slot_rows(src, cells, slots[::every])
        contrib = contributions(family, booster, rows[list(spec.features)])[:, :-1]
        sums += contrib.reshape(-1, len(cells), len(spec.features)).sum(axis=0)
        n += len(rows) // len(cells)
    mean = sums / max(n, 1)
    out = {}
    for cid, row in zip(cells["cell_id"], mean, strict=True):
        top = np.argsort(-np.abs(row))[:TOP_FACTORS]
        out[cid] = [{"feature": spec.features[j], "contribution": round(float(row[j]), 4)} for j in top]
    return out


def tiers(values, breakpoints) -> np.ndarray:
    """low / medium / high: above the first breakpoint is medium, above the second high."""
    return np.asarray(TIERS, dtype=object)[np.searchsorted(np.asarray(breakpoints, float), values, side="left")]


def tier_breakpoints(values) -> tuple[float, float]:
    """The :data:`TIER_QUANTILES` of ``values`` (terciles by default)."""
    low, high = np.quantile(np.asarray(values, dtype=float), TIER_QUANTILES)
    return float(low), float(high)


def rank_cells(src, expected: np.ndarray, start, by: RankBy = "eclo", end=None) -> pd.DataFrame:
    """Every cell with its expected and observed axes, ranked by expected ECLO (``by="eclo"``) or expected
    accidents (``"count"``), ties broken by the other then by cell_id."""
    if by not in ("eclo", "count"):
        raise DataError(f"by must be 'eclo' or 'count', not {by!r}", column="by")
    cells = src.grid.cells[list(CELL_COLUMNS)].reset_index(drop=True)
    ratio = per_accident(src, pd.Timestamp(start))
    out = cells.assign(
        expected_accidents=expected,
        expected_eclo=expected * ratio["eclo_per_accident"].to_numpy(),
        expected_serious=expected * ratio["serious_per_accident"].to_numpy(),
        expected_casualties=expected * ratio["casualties_per_accident"].to_numpy(),
        eclo_per_accident=ratio["eclo_per_accident"].to_numpy(),
        history_accidents=ratio["history_accidents"].to_numpy())
    if end is not None:
        out = pd.concat([out, observed(src, pd.Timestamp(start), pd.Timestamp(end))], axis=1)
    keys = ["expected_eclo", "expected_accidents"] if by == "eclo" else ["expected_accidents", "expected_eclo"]
    out = out.sort_values([*keys, "cell_id"], ascending=[False, False, True], kind="stable", ignore_index=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def hotspots(src, family: str, booster, start, end, by: RankBy = "eclo", top_n: int = 100,
             factors: bool = True) -> Hotspots:
    """The cells ranked over ``[start, end)`` with the top ``top_n`` tiered and explained (see the module)."""
    started = time.perf_counter()
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if not start < end:
        raise DataError(f"the period must end after it starts ({start:%Y-%m-%d} .. {end:%Y-%m-%d})", column="period")
    expected, unknown, n_slots = expected_accidents(src, family, booster, start, end)
    ranked = rank_cells(src, expected, start, by, end)
    ranked["unknown_slots"] = pd.Series(unknown, index=src.grid.cells["cell_id"].to_numpy()).reindex(
        ranked["cell_id"]).to_numpy()
    listed = ranked.head(top_n)
    breaks = {}
    for axis, columns in AXES.items():
        for kind, col in zip(("expected", "observed"), columns, strict=True):
            b = tier_breakpoints(listed[col])
            breaks[f"{kind}_{axis}"] = b
            ranked[f"{kind}_{axis}_tier"] = tiers(ranked[col], b)
    top_factors = mean_factors(src, family, booster, listed["cell_id"], start, end) if factors else {}
    return Hotspots(ranked, start, end, by, n_slots, time.perf_counter() - started, breaks, top_factors)


def geojson(result: Hotspots, grid, n: int) -> dict:
    """The top ``n`` cells as a GeoJSON FeatureCollection of their squares (WGS84), every column a property."""
    listed = result.top(n)
    rings = grid.rings()[pd.Index(grid.cells["cell_id"]).get_indexer(listed["cell_id"].to_numpy())]
    features = []
    for ring, row in zip(rings, listed.to_dict("records"), strict=True):
        props = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        props["top_factors"] = result.factors.get(row["cell_id"], [])
        features.append({"type": "Feature", "properties": props,
                         "geometry": {"type": "Polygon", "coordinates": [np.round(ring, 6).tolist()]}})
    return {"type": "FeatureCollection", "features": features,
            "metadata": {"period": [f"{result.start:%Y-%m-%d}", f"{result.end:%Y-%m-%d}"], "by": result.by,
                         "slots": result.slots, "tier_breakpoints": result.breakpoints}}

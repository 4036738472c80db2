"""Traffic hotspots: the cells ranked by the accidents and harm expected over a period, forecast from the
record before ``as_of`` (the domain's serving side: a ranking built from the hotspot methods' answers).

``as_of`` defaults to the earlier of the day after the newest accident held and the period's start; nothing
dated on or after it is read, so a past period is ranked as it would have been at its start and a future
one (next month, quarter, year) is a forecast. The method (training/hotspots.py) is the one the city's own
back-test picks (``auto``: the best mean top-5% share over the complete years before ``as_of``), or the one
asked for; the answer says which and why.

Per cell: expected accidents = the method's accidents per year x the period's exposure in years
(features/domains/traffic/forecast.py: its length weighted by the record's day-of-year profile); expected
ECLO, serious-or-worse casualties and casualties = expected accidents x the cell's per-accident means
before ``as_of`` (shrunk toward the district's). The period's own accidents (``observed``) are given for
the part of it the record holds.

Tiers, as Daejeon's risk-area study tiers its areas on frequency (accidents), severity (serious-or-worse
casualties) and scale (all casualties): tercile breakpoints (:data:`TIER_QUANTILES`) of each axis among the
hotspot pool, the top 5% of the units by the ranking (at least :data:`TIER_POOL_MIN`, or all of them when
fewer), so a unit's tier does not depend on how many are listed.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from features.domains.traffic import forecast as fc
from features.errors import DataError
from training import hotspots as hm

RankBy = Literal["eclo", "count"]
Group = Literal["cell", "dong", "district"]
METHOD_CHOICES = ("auto", *hm.METHODS)
TIERS = ("low", "medium", "high")
TIER_QUANTILES = (1 / 3, 2 / 3)  # above the first breakpoint is medium, above the second high
MAX_DAYS = 366
MAX_AHEAD_YEARS = 2  # a period may start at most this long after as_of
TOP_FACTORS = 5
TIER_POOL_SHARE = 0.05  # the screening share the field flags (the back-test's top 5%)
TIER_POOL_MIN = 30
# axis -> (expected column, observed column)
AXES = {"frequency": ("expected_accidents", "observed_accidents"),
        "severity": ("expected_serious", "observed_serious"),
        "scale": ("expected_casualties", "observed_casualties")}
SUMMED = ("expected_accidents", "expected_eclo", "expected_serious", "expected_casualties", "observed_accidents",
          "observed_eclo", "observed_serious", "observed_casualties")


@dataclass
class Hotspots:
    """Every unit ranked (``ranked``, best first), the question and how it was answered."""

    ranked: pd.DataFrame
    start: pd.Timestamp
    end: pd.Timestamp
    as_of: pd.Timestamp
    by: RankBy
    group: Group
    method: str
    method_reason: str
    exposure_years: float
    observed_through: pd.Timestamp | None  # the period's observed columns cover [start, this); None: none held
    fitted: hm.Fitted
    seconds: float
    notes: list[str] = field(default_factory=list)
    not_applicable: dict = field(default_factory=dict)  # feature -> why this city cannot have it
    breakpoints: dict = field(default_factory=dict)  # axis -> (low/medium, medium/high) in the hotspot pool

    def top(self, n: int) -> pd.DataFrame:
        return self.ranked.head(n)


def check_question(src, start, end, as_of=None) -> pd.Timestamp:
    """The ``as_of`` of a question (the default when None), after checking the period and ``as_of``;
    :class:`DataError` naming the field (``period.to``, ``as_of``, ``taas``) and the allowed range."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if not src.available("taas"):
        raise DataError(f"{src.city.name} holds no traffic accident records: import TAAS files "
                        "(`urban-safety data import --source taas`) before asking for hotspots", column="taas")
    first, newest = fc.record_span(src)
    if end <= start:
        raise DataError(f"{end:%Y-%m-%d} must be after the period's start ({start:%Y-%m-%d})", column="period.to")
    if (end - start).days > MAX_DAYS:
        raise DataError(f"the period is {(end - start).days} days; at most {MAX_DAYS}", column="period")
    earliest = first + pd.DateOffset(years=fc.MIN_HISTORY_YEARS)
    if as_of is None:
        as_of = min(newest, start)
        if as_of < earliest:
            raise DataError(f"{start:%Y-%m-%d} leaves less than {fc.MIN_HISTORY_YEARS} year of accident "
                            f"record before it (the record starts {first:%Y-%m-%d}): ask for a period from "
                            f"{earliest:%Y-%m-%d}", column="period.from")
    else:
        as_of = pd.Timestamp(as_of)
        if as_of > start:
            raise DataError(f"{as_of:%Y-%m-%d} is after the period's start ({start:%Y-%m-%d}): a ranking may "
                            "only read what was known by the period's start; allowed: "
                            f"{earliest:%Y-%m-%d} .. {min(start, newest):%Y-%m-%d}", column="as_of")
        allowed = f"allowed: {earliest:%Y-%m-%d} .. {min(start, newest):%Y-%m-%d}"
        if as_of < earliest:
            raise DataError(f"{as_of:%Y-%m-%d} leaves less than {fc.MIN_HISTORY_YEARS} year of accident "
                            f"record before it (the record starts {first:%Y-%m-%d}); {allowed}", column="as_of")
        if as_of > newest:  # the days between would read as days without accidents
            raise DataError(f"{as_of:%Y-%m-%d} is after the accident record ends ({newest:%Y-%m-%d}, the day "
                            f"after the newest accident held): nothing is known of the days between; {allowed}",
                            column="as_of")
    latest = as_of + pd.DateOffset(years=MAX_AHEAD_YEARS)
    if start > latest:
        raise DataError(f"{start:%Y-%m-%d} is more than {MAX_AHEAD_YEARS} years after the forecast's as_of "
                        f"({as_of:%Y-%m-%d}); forecast at most to {latest:%Y-%m-%d}", column="period.from")
    return as_of


def default_method(src, as_of, by: RankBy = "eclo") -> tuple[str, str]:
    """The method the city's back-test picks at ``as_of`` and why (computed once per data and as_of)."""
    def pick():
        results = hm.backtest(src, until=as_of, consistency=False, bootstrap=False)
        return hm.choose(results, "eclo" if by == "eclo" else "accidents")
    return fc.data_memo(src, f"default.{pd.Timestamp(as_of).isoformat()}.{by}", pick)


def rank(src, start, end, as_of=None, by: RankBy = "eclo", method: str = "auto", group: Group = "cell") -> Hotspots:
    """The units of ``group`` ranked by expected ECLO (``by="eclo"``) or accidents over ``[start, end)``,
    forecast at ``as_of``, every unit tiered (see the module). :class:`DataError` for a bad question."""
    started = time.perf_counter()
    if by not in ("eclo", "count"):
        raise DataError(f"by must be 'eclo' or 'count', not {by!r}", column="by")
    if method not in METHOD_CHOICES:
        raise DataError(f"method must be one of {', '.join(METHOD_CHOICES)}, not {method!r}", column="method")
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    as_of = check_question(src, start, end, as_of)
    fitted = hm.fit(src, as_of)
    notes = list(fitted.notes)
    if method == "auto":
        method, reason = default_method(src, as_of, by)
    else:
        reason = "asked for"
    if method not in fitted.rates:
        notes.append(f"{method} cannot be fitted here; {hm.FALLBACK} is used instead")
        method, reason = hm.FALLBACK, f"{method} cannot be fitted on the record before {as_of:%Y-%m-%d}"
    exposure = fc.exposure_years(src, as_of, start, end)
    rate = np.clip(fitted.rates[method], 0, None) if method != "excess" else fitted.rates["eb"]
    expected = rate * exposure
    ratio = fc.per_accident(src, as_of)
    cells = src.grid.cells
    out = pd.DataFrame({"cell_id": cells["cell_id"].to_numpy(), "district": cells["district"].to_numpy(),
                        "dong": cells["dong"].to_numpy(),
                        "lat": cells["lat"].to_numpy(), "lon": cells["lon"].to_numpy(),
                        "expected_accidents": expected,
                        "expected_eclo": expected * ratio["eclo_per_accident"].to_numpy(),
                        "expected_serious": expected * ratio["serious_per_accident"].to_numpy(),
                        "expected_casualties": expected * ratio["casualties_per_accident"].to_numpy(),
                        "eclo_per_accident": ratio["eclo_per_accident"].to_numpy(),
                        "spf_per_year": fitted.screening.spf_rate, "eb_per_year": fitted.screening.eb_rate,
                        "excess_per_year": fitted.screening.eb_rate - fitted.screening.spf_rate,
                        "history_per_year": np.nan_to_num(fitted.rows["rate_all"].to_numpy(float)),
                        "cell_pos": np.arange(len(cells))})
    _, newest = fc.record_span(src)
    observed_through = min(end, newest) if start < newest else None
    counts = None if observed_through is None else fc.period_counts(src, start, observed_through)
    for c in fc.LABELS:  # a period the record does not reach has no observed values, not zeros
        out[f"observed_{c}"] = np.nan if counts is None else counts[c].to_numpy()
    # excess ranks by the potential for safety improvement, the others by their expectation
    score = fitted.rates["excess"] * exposure if method == "excess" else expected
    if by == "eclo":
        score = score * ratio["eclo_per_accident"].to_numpy()
    out["score"] = score
    if group != "cell":
        out = aggregate(out, group)
    out = out.iloc[hm.order(out["score"].to_numpy())].reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    pool = out.head(max(int(np.ceil(TIER_POOL_SHARE * len(out))), min(TIER_POOL_MIN, len(out))))
    breaks = {}
    for axis, columns in AXES.items():
        for kind, col in zip(("expected", "observed"), columns, strict=True):
            if kind == "observed" and observed_through is None:
                continue
            b = tier_breakpoints(pool[col])
            breaks[f"{kind}_{axis}"] = b
            out[f"{kind}_{axis}_tier"] = tiers(out[col], b)
    return Hotspots(out, start, end, as_of, by, group, method, reason, exposure, observed_through, fitted,
                    time.perf_counter() - started, notes, fc.not_applicable(src), breaks)


def aggregate(cells: pd.DataFrame, level: Group) -> pd.DataFrame:
    """``cells`` (one row per cell) summed by ``level`` (``dong`` or ``district``): the expected and observed
    axes and the score summed, the number of cells, and the unit's best cell."""
    keys = ["district"] if level == "district" else ["district", "dong"]
    unobserved = cells["observed_accidents"].isna().all()
    best = cells.iloc[hm.order(cells["score"].to_numpy())].drop_duplicates(keys)[[*keys, "cell_id"]]
    summed = cells.groupby(keys, sort=False, dropna=False).agg(
        cells=("cell_id", "size"), lat=("lat", "mean"), lon=("lon", "mean"),
        **{c: (c, "sum") for c in (*SUMMED, "score")})
    out = summed.reset_index().merge(best.rename(columns={"cell_id": "top_cell"}), on=keys, how="left")
    if unobserved:  # a sum of nothing held is not zero accidents
        out[[c for c in SUMMED if c.startswith("observed")]] = np.nan
    return out


def tiers(values, breakpoints) -> np.ndarray:
    """low / medium / high: above the first breakpoint is medium, above the second high."""
    return np.asarray(TIERS, dtype=object)[np.searchsorted(np.asarray(breakpoints, float), values, side="left")]


def tier_breakpoints(values) -> tuple[float, float]:
    """The :data:`TIER_QUANTILES` of ``values`` (terciles by default)."""
    low, high = np.quantile(np.asarray(values, dtype=float), TIER_QUANTILES)
    return float(low), float(high)


def explain(src, result: Hotspots, n: int) -> dict[str, dict]:
    """Per listed cell (top ``n``, ``group="cell"`` only): its dominant accident types over the 3 years
    before ``as_of`` (hints of what to fix), the Empirical Bayes parts and, under the model, its largest
    TreeSHAP contributions (log scale of the expected yearly count)."""
    if result.group != "cell":
        return {}
    listed = result.top(n)
    positions = listed["cell_pos"].to_numpy()
    types = fc.dominant_types(src, positions, result.as_of)
    s = result.fitted.screening
    out = {}
    contrib = hm.contributions(result.fitted, positions) if result.method == "model" else None
    for i, (cid, pos) in enumerate(zip(listed["cell_id"], positions, strict=True)):
        item = {"dominant": types[i],
                "empirical_bayes": {"spf_per_year": _num(s.spf_rate[pos]), "observed": int(s.observed[pos]),
                                    "years": round(s.years, 2), "weight": _sig(s.weight[pos]),
                                    "eb_per_year": _num(s.eb_rate[pos]), "k": _num(s.k)}}
        if contrib is not None:
            row = contrib[i, :-1]
            top = np.argsort(-np.abs(row))[:TOP_FACTORS]
            item["top_factors"] = [{"feature": hm.MODEL_FEATURES[j], "contribution": round(float(row[j]), 4)}
                                   for j in top]
        out[cid] = item
    return out


def _num(v):
    v = float(v)
    return round(v, 4) if np.isfinite(v) else None


def _sig(v):
    """4 significant digits: a dense cell's EB weight (a few 1e-5) must not read as 0."""
    v = float(v)
    return float(f"{v:.4g}") if np.isfinite(v) else None


PUBLIC = ("rank", "cell_id", "district", "dong", "cells", "top_cell", "lat", "lon", *SUMMED, "eclo_per_accident",
          "spf_per_year", "eb_per_year", "excess_per_year", "history_per_year")


def table(result: Hotspots, n: int) -> pd.DataFrame:
    """The top ``n`` units with their public columns and tiers (what CSV and GeoJSON carry)."""
    listed = result.top(n)
    cols = [c for c in listed.columns if c in PUBLIC or c.endswith("_tier")]
    return listed[cols]


def meta(result: Hotspots) -> dict:
    """What the ranking answers and how: the period, as_of, method and why, exposure, notes."""
    return {"domain": "traffic", "period": {"from": f"{result.start:%Y-%m-%d}", "to": f"{result.end:%Y-%m-%d}"},
            "as_of": f"{result.as_of:%Y-%m-%d}", "by": result.by, "group": result.group,
            "method": result.method, "method_reason": result.method_reason,
            "exposure_years": round(result.exposure_years, 4),
            "observed_through": None if result.observed_through is None else f"{result.observed_through:%Y-%m-%d}",
            "overdispersion_k": _num(result.fitted.screening.k), "notes": result.notes,
            "not_applicable": result.not_applicable, "tier_breakpoints": {k: [_num(a), _num(b)] for k, (a, b) in result.breakpoints.items()}}


def csv_text(result: Hotspots, n: int) -> str:
    """The top ``n`` units as CSV (UTF-8 with a BOM, so spreadsheet programs read the Korean names)."""
    buf = io.StringIO()
    table(result, n).to_csv(buf, index=False)
    return "\ufeff" + buf.getvalue()


def geojson(result: Hotspots, grid, n: int, explained: dict | None = None) -> dict:
    """The top ``n`` units as a GeoJSON FeatureCollection (WGS84): cells as their squares, 동 and districts as
    the union of their cells' squares (a MultiPolygon); every public column a property."""
    listed = table(result, n)
    rings = grid.rings()
    index = pd.Index(grid.cells["cell_id"])
    keys = ["district"] if result.group == "district" else ["district", "dong"]
    member = None if result.group == "cell" else grid.cells.groupby(keys, sort=False).indices
    features = []
    for row in listed.to_dict("records"):
        props = {k: (None if isinstance(v, float) and not np.isfinite(v) else v.item() if isinstance(v, np.generic)
                     else v) for k, v in row.items()}
        if member is None:
            ring = rings[index.get_loc(row["cell_id"])]
            geometry = {"type": "Polygon", "coordinates": [np.round(ring, 6).tolist()]}
            if explained:
                props.update(explained.get(row["cell_id"], {}))
        else:
            key = tuple(row[k] for k in keys)
            pos = member.get(key if len(keys) > 1 else key[0], [])
            geometry = {"type": "MultiPolygon", "coordinates": [[np.round(rings[p], 6).tolist()] for p in pos]}
        features.append({"type": "Feature", "properties": props, "geometry": geometry})
    return {"type": "FeatureCollection", "features": features, "metadata": meta(result)}


def geojson_text(result: Hotspots, grid, n: int, explained: dict | None = None) -> str:
    return json.dumps(geojson(result, grid, n, explained), ensure_ascii=False)

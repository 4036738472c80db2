"""Earthquake: the feature rows, one code path for the training table and for a request."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from features import timeseries as ts
from features.domains.earthquake import seismic

CONDITIONS = ("magnitude", "epicentre_lat", "epicentre_lon", "depth_km")
LEVEL_SHARES = tuple(f"share_{lvl}" for lvl in seismic.CODE_LEVELS)
FAMILY_SHARES = tuple(f"share_{f}" for f in seismic.FAMILIES[:4])  # the rest is "other"
# The epicentre enters through distances and motion only: its coordinates as such would let a tree split on
# where an event is, and answer a closer, stronger event with less damage.
FEATURES = (
    "magnitude", "depth_km", "epi_dist_km", "hypo_dist_km", "ln_pga_generic", "ln_pga_site", "vs30_mps",
    "n_buildings", *LEVEL_SHARES, *FAMILY_SHARES, "share_piloti", "mean_floors", "mean_age_years",
    "fragility_damage_share", "fragility_floor_share",
)
UNITS = {"magnitude": "local magnitude (KMA 규모)", "epicentre_lat": "degrees north (WGS84)",
         "epicentre_lon": "degrees east (WGS84)", "depth_km": "km below the surface"}

# Stock counters summed per cell: these columns, then one per fragility group.
_COUNTERS = ("n", *seismic.CODE_LEVELS, *seismic.FAMILIES[:4], "piloti", "floors", "dated", "approval_years")
_N_GROUPS = len(seismic.FRAGILITY_GROUPS)
_STOCK_COLUMNS = (*_COUNTERS, *(f"group_{k}" for k in range(_N_GROUPS)))
# Sort keys pack (cell position, approval second) into one int64, so one searchsorted answers "stock of
# cell c approved by t" for every request at once.
_SECOND_OFFSET = 2**35  # seconds since 1970 shifted to be positive (covers about 882-3058)
_CELL_SPAN = 2**36
_SECONDS_PER_YEAR = 365.25 * 24 * 3600


def _seconds(times) -> np.ndarray:
    """Whole seconds since 1970 as float (NaN for NaT)."""
    ns = ts.time_ns(times)
    out = np.floor(ns / 1e9)
    out[ns == ts.NAT_NS] = np.nan
    return out


class BuildingStock:
    """Per-cell cumulative building counts by approval time, for fast as-of lookups.

    Buildings are sorted by (cell, approval time) and their counters prefix-summed; the stock of a cell
    at time t is the difference of two prefix sums found by binary search.
    """

    def __init__(self, buildings: pd.DataFrame, grid):
        self.cell_pos = pd.Series(np.arange(len(grid.cells)), index=grid.cells["cell_id"].to_numpy())
        pos = grid.locate(buildings["lat"].to_numpy(), buildings["lon"].to_numpy())
        b = buildings.loc[pos >= 0]
        pos = pos[pos >= 0]
        seconds = _seconds(b["approval_date"])
        dated = ~np.isnan(seconds)
        level = seismic.code_level(b["approval_date"], b["floors_above"], b["floor_area_m2"],
                                   b["seismic_design"], b["purpose"])
        family = seismic.structure_family(b["structure"])
        piloti = seismic.is_piloti(b["other_structure"])
        group = seismic.fragility_group(seismic.hazus_class(b["structure"], b["floors_above"]), level, piloti)
        counters = np.column_stack([
            np.ones(len(b)),
            *(level == k for k in range(len(seismic.CODE_LEVELS))),
            *(family == k for k in range(4)),
            piloti, b["floors_above"].to_numpy(dtype=float), dated,
            np.where(dated, seconds / _SECONDS_PER_YEAR, 0.0),
            *(group == k for k in range(_N_GROUPS)),
        ]).astype(float)
        # Undated buildings get time key 0, i.e. "always there".
        keys = pos * _CELL_SPAN + np.where(dated, np.nan_to_num(seconds) + _SECOND_OFFSET, 0).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.cum = np.vstack([np.zeros((1, counters.shape[1])), np.cumsum(counters[order], axis=0)])

    def as_of(self, cell_ids, times) -> pd.DataFrame:
        """Summed counters of each (cell, time): buildings approved at or before the time.

        A NaT time means "now": every building of the register counts.
        """
        pos = self.cell_pos.reindex(np.asarray(cell_ids)).to_numpy(dtype=float)
        pos = np.nan_to_num(pos, nan=-1).astype(np.int64)
        return pd.DataFrame(self.at(pos, times), columns=_STOCK_COLUMNS)

    def at(self, pos: np.ndarray, times) -> np.ndarray:
        """:meth:`as_of` by cell position (-1: no cell, no buildings), as an array in ``_STOCK_COLUMNS`` order."""
        seconds = _seconds(times)
        until = np.where(np.isnan(seconds), _CELL_SPAN - 1, np.nan_to_num(seconds) + _SECOND_OFFSET)
        until = np.clip(until, 0, _CELL_SPAN - 1).astype(np.int64)
        start = np.searchsorted(self.keys, pos * _CELL_SPAN, side="left")
        end = np.searchsorted(self.keys, pos * _CELL_SPAN + until, side="right")
        stock = self.cum[end] - self.cum[start]
        stock[pos < 0] = 0.0  # a cell outside the grid has no buildings
        return stock


def building_stock(src) -> BuildingStock:
    """The register as a :class:`BuildingStock` (built once per Sources)."""
    return ts.memo(src, "earthquake.stock", lambda: BuildingStock(src["buildings"], src.grid), reads=("buildings",))


def _stock_features(stock: np.ndarray, times) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Stock description features and the (n, groups) fragility-group shares."""
    column = {name: stock[:, i] for i, name in enumerate(_STOCK_COLUMNS)}
    n = column["n"]
    with np.errstate(divide="ignore", invalid="ignore"):
        per = lambda col: np.where(n > 0, column[col] / n, np.nan)  # noqa: E731
        out = {"n_buildings": n}
        out.update({f"share_{c}": per(c) for c in (*seismic.CODE_LEVELS, *seismic.FAMILIES[:4], "piloti")})
        out["mean_floors"] = per("floors")
        dated = column["dated"]
        t_years = _seconds(times) / _SECONDS_PER_YEAR
        out["mean_age_years"] = np.where(dated > 0, t_years - column["approval_years"] / dated, np.nan)
        first = _STOCK_COLUMNS.index("group_0")
        groups = np.where(n[:, None] > 0, stock[:, first:first + _N_GROUPS] / n[:, None], np.nan)
    return out, groups


def build_rows(src, requests: pd.DataFrame) -> pd.DataFrame:
    """Features for (scenario_id, cell_id, time, magnitude, epicentre_lat/lon, depth_km) requests.

    A cell_id that is not a cell of the grid gets no buildings (and NaN motion); request columns other
    than the features pass through first.
    """
    pos = ts.cell_positions(src, requests["cell_id"].to_numpy())
    cells = ts.cell_arrays(src)
    lat, lon, vs30 = cells["lat"][pos], cells["lon"][pos], cells["vs30_mps"][pos]
    cond = {c: requests[c].to_numpy(dtype=float) for c in CONDITIONS}
    mag, depth = cond["magnitude"], cond["depth_km"]
    times = requests["time"].to_numpy()

    gm = seismic.ground_motion(mag, cond["epicentre_lat"], cond["epicentre_lon"], depth, lat, lon, vs30)
    stock_feats, groups = _stock_features(building_stock(src).at(pos, times), times)
    # ln_pga_generic: BSSA14 on reference rock; ln_pga_site: with the cell's nonlinear Vs30 term. Both at
    # Rjb = epicentral distance (a point source); hypo_dist_km stays as a description of the geometry.
    f = {"epi_dist_km": gm["epi_km"], "hypo_dist_km": gm["hypo_km"], "ln_pga_generic": gm["ln_pga_rock"],
         "ln_pga_site": gm["ln_pga"], "vs30_mps": vs30, **stock_feats, **cond}
    # Expected share over BSSA14's scatter of ground motion as well as the fragility's (seismic.fragility_share).
    f["fragility_damage_share"] = seismic.fragility_share(gm["ln_pga"], groups, gm["sigma"])
    # The physics' lower bound, a feature so that the served answer's floor (apply_physics_floor) is a
    # function of the feature row alone: /predict records and holdout rows carry it too.
    f["fragility_floor_share"] = seismic.fragility_floor(gm["ln_pga"], groups, gm["sigma"])
    # Request columns first (keys, time, anything else the caller sent), then the features in order.
    out = {c: requests[c].array for c in requests.columns if c not in FEATURES}
    out.update({c: f[c] for c in FEATURES})
    return pd.DataFrame(out, index=pd.RangeIndex(len(requests)))


def survey_requests(surveys: pd.DataFrame) -> pd.DataFrame:
    """One request per survey row (scenario x cell), with the scenario as conditions."""
    return pd.DataFrame({
        "scenario_id": surveys["scenario_id"].astype(str).to_numpy(),
        "cell_id": surveys["cell_id"].astype(str).to_numpy(),
        "time": pd.to_datetime(surveys["time"]).to_numpy(),
        "magnitude": surveys["magnitude"].to_numpy(dtype=float),
        "epicentre_lat": surveys["lat"].to_numpy(dtype=float),
        "epicentre_lon": surveys["lon"].to_numpy(dtype=float),
        "depth_km": surveys["depth_km"].to_numpy(dtype=float),
    })


def build_table(src) -> pd.DataFrame:
    """Training table: surveyed scenario x cell rows, label = damaged / surveyed buildings
    (:func:`table_parts` in one frame).

    weight = surveyed buildings. The scenario's sampling weight (``scenario_weight``, the catalogue's
    rate over the generator's proposal) is left out on purpose: the model answers "what if this
    scenario", a conditional mean that sampling weights do not change, they only move where the fit
    spends its effort. At catalogue rates the ~2,600 rows shaking above 0.3 g weighed as much as 142,
    and the model fell up to 0.24-0.29 short of the physics there (``bench/openquake_peer.py``). Rates
    are for sums over the catalogue (an expected annual loss), not for this fit.
    """
    return pd.concat(list(table_parts(src)), ignore_index=True)


def table_parts(src, rows_per_part: int | None = None) -> Iterator[pd.DataFrame]:
    """The training table in parts of about ``rows_per_part`` survey rows in time order (None: one part)."""
    surveys = src["damage_surveys"]
    order = np.lexsort((surveys["cell_id"].astype(str).to_numpy(), surveys["scenario_id"].astype(str).to_numpy(),
                        pd.to_datetime(surveys["time"]).to_numpy()))
    surveys = surveys.iloc[order].reset_index(drop=True)
    step = len(surveys) if rows_per_part is None else rows_per_part
    for lo in range(0, max(len(surveys), 1), max(step, 1)):
        part = surveys.iloc[lo:lo + step].reset_index(drop=True)
        table = build_rows(src, survey_requests(part))
        table["damage_share"] = part["damaged"].to_numpy(dtype=float) / part["buildings"].to_numpy(float)
        table["weight"] = part["buildings"].to_numpy(dtype=float)
        yield table

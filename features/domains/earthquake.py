"""Earthquake domain: share of a cell's buildings at moderate-or-worse damage in a scenario.

A request is a scenario (magnitude, epicentre, depth, time) and a cell. Features describe the ground
motion at the cell (distances, a generic GMPE, the same with a Vs30 site term) and the cell's building
stock *as of the scenario time*: only buildings approved by then (or with no approval date) count.
The HAZUS fragility estimate is a feature too, and the baseline uses the same function.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from features import seismic
from features.metrics import MAE, R2, RMSE
from features.registry import DomainSpec, register

CONDITIONS = ("magnitude", "epicentre_lat", "epicentre_lon", "depth_km")
LEVEL_SHARES = tuple(f"share_{lvl}" for lvl in seismic.CODE_LEVELS)
FAMILY_SHARES = tuple(f"share_{f}" for f in seismic.FAMILIES[:4])  # the rest is "other"
FEATURES = (
    *CONDITIONS, "epi_dist_km", "hypo_dist_km", "ln_pga_generic", "ln_pga_site", "vs30_mps",
    "n_buildings", *LEVEL_SHARES, *FAMILY_SHARES, "share_piloti", "mean_floors", "mean_age_years",
    "fragility_damage_share",
)
UNITS = {"magnitude": "local magnitude (KMA 규모)", "epicentre_lat": "degrees north (WGS84)",
         "epicentre_lon": "degrees east (WGS84)", "depth_km": "km below the surface"}

# Stock counters summed per cell: these columns, then one per fragility group.
_COUNTERS = ("n", *seismic.CODE_LEVELS, *seismic.FAMILIES[:4], "piloti", "floors", "dated", "approval_years")
_N_GROUPS = len(seismic.FRAGILITY_GROUPS)
# Sort keys pack (cell position, approval second) into one int64, so one searchsorted answers "stock of
# cell c approved by t" for every request at once.
_SECOND_OFFSET = 2**35  # seconds since 1970 shifted to be positive (covers about 882-3058)
_CELL_SPAN = 2**36
_SECONDS_PER_YEAR = 365.25 * 24 * 3600


def _seconds(times) -> np.ndarray:
    """Whole seconds since 1970 as float (NaN for NaT)."""
    index = pd.DatetimeIndex(pd.to_datetime(times)).as_unit("ns")
    out = np.floor(index.asi8 / 1e9)
    out[index.isna()] = np.nan
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
        seconds = _seconds(times)
        until = np.where(np.isnan(seconds), _CELL_SPAN - 1, np.nan_to_num(seconds) + _SECOND_OFFSET)
        until = np.clip(until, 0, _CELL_SPAN - 1).astype(np.int64)
        start = np.searchsorted(self.keys, pos * _CELL_SPAN, side="left")
        end = np.searchsorted(self.keys, pos * _CELL_SPAN + until, side="right")
        stock = self.cum[end] - self.cum[start]
        stock[pos < 0] = 0.0  # a cell outside the grid has no buildings
        names = [*_COUNTERS, *(f"group_{k}" for k in range(_N_GROUPS))]
        return pd.DataFrame(stock, columns=names)


def _stock_features(stock: pd.DataFrame, times) -> tuple[pd.DataFrame, np.ndarray]:
    """Stock description features and the (n, groups) fragility-group shares."""
    n = stock["n"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        per = lambda col: np.where(n > 0, stock[col].to_numpy() / n, np.nan)  # noqa: E731
        out = {"n_buildings": n}
        out.update({f"share_{c}": per(c) for c in (*seismic.CODE_LEVELS, *seismic.FAMILIES[:4], "piloti")})
        out["mean_floors"] = per("floors")
        dated = stock["dated"].to_numpy()
        t_years = _seconds(times) / _SECONDS_PER_YEAR
        out["mean_age_years"] = np.where(dated > 0, t_years - stock["approval_years"].to_numpy() / dated,
                                         np.nan)
        groups = np.column_stack([per(f"group_{k}") for k in range(_N_GROUPS)])
    return pd.DataFrame(out), groups


def build_rows(src, requests: pd.DataFrame) -> pd.DataFrame:
    """Features for (scenario_id, cell_id, time, magnitude, epicentre_lat/lon, depth_km) requests."""
    req = requests.reset_index(drop=True)
    cells = src.grid.cells.set_index("cell_id")
    cell_ids = req["cell_id"].to_numpy()
    lat = cells["lat"].reindex(cell_ids).to_numpy(dtype=float)
    lon = cells["lon"].reindex(cell_ids).to_numpy(dtype=float)
    vs30 = src.static["vs30_mps"].reindex(cell_ids).to_numpy(dtype=float)
    mag, depth = req["magnitude"].to_numpy(dtype=float), req["depth_km"].to_numpy(dtype=float)

    epi, hypo = seismic.distances_km(req["epicentre_lat"], req["epicentre_lon"], depth, lat, lon)
    ln_generic = seismic.gmpe_ln_pga(mag, epi)  # the published form: distance to the surface projection
    # Site-specific motion: the actual depth (deeper events shake less) and the cell's soil.
    ln_site = seismic.gmpe_ln_pga(mag, hypo) + seismic.site_term(vs30)

    stock = BuildingStock(src["buildings"], src.grid).as_of(cell_ids, req["time"])
    stock_feats, groups = _stock_features(stock, req["time"])
    feats = pd.DataFrame({
        "epi_dist_km": epi, "hypo_dist_km": hypo, "ln_pga_generic": ln_generic, "ln_pga_site": ln_site,
        "vs30_mps": vs30,
    })
    feats = pd.concat([feats, stock_feats], axis=1)
    feats["fragility_damage_share"] = seismic.fragility_share(ln_site, groups)
    for c in CONDITIONS:
        feats[c] = req[c].to_numpy(dtype=float)
    # Request columns first (keys, time, anything else the caller sent), then the features in order.
    passthrough = req[[c for c in req.columns if c not in FEATURES]]
    return pd.concat([passthrough, feats[list(FEATURES)]], axis=1)


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
    """Training table: surveyed scenario x cell rows, label = damaged / surveyed buildings."""
    surveys = src["damage_surveys"].reset_index(drop=True)
    table = build_rows(src, survey_requests(surveys))
    table["damage_share"] = surveys["damaged"].to_numpy(dtype=float) / surveys["buildings"].to_numpy(float)
    table["weight"] = surveys["buildings"].to_numpy(dtype=float)
    return table.sort_values(["time", "scenario_id", "cell_id"], ignore_index=True)


# --- evaluation (holdout only; the truth is never a feature) ---

def baseline(rows: pd.DataFrame, history: pd.DataFrame) -> np.ndarray:
    """Ground motion + HAZUS fragility alone, on the cell's building stock."""
    return rows["fragility_damage_share"].to_numpy(float)


def oracle(rows: pd.DataFrame, truth_dir) -> np.ndarray:
    """The generator's expected damage share for each scenario and cell."""
    truth = pd.read_parquet(Path(truth_dir) / "earthquake_truth.parquet")
    joined = rows[["scenario_id", "cell_id"]].merge(truth, on=["scenario_id", "cell_id"], how="left")
    return joined["damage_share"].to_numpy()


SPEC = register(DomainSpec(
    name="earthquake",
    title="Earthquake building damage",
    task="regression",
    target="damage_share",
    keys=("scenario_id", "cell_id"),
    time="time",
    horizon=timedelta(0),
    features=FEATURES,
    conditions=CONDITIONS,
    sources=("damage_surveys", "buildings", "static"),
    feature_set_version="earthquake-v1",
    build_table=build_table,
    build_rows=build_rows,
    weight="weight",
    metrics=(RMSE, MAE, R2),
    primary_metric="rmse",
    baseline=baseline,
    oracle=oracle,
    extra={"units": UNITS},
))

"""Scenario damage: HAZUS-style fragility by building class and code level, surveyed per cell.

P(>= moderate | PGA) = Phi(ln(PGA / median) / 0.64). Piloti buildings count one code level worse.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.embedded.noise import norm_cdf

BETA = 0.64
LEVELS = ("high", "low", "pre", "pre_piloti")
# Moderate-damage medians (g) per class for high, low, pre code; pre-code piloti is 15% weaker still.
MEDIANS = {
    "C1L": (0.35, 0.15, 0.12), "C1M": (0.28, 0.13, 0.10), "C1H": (0.24, 0.12, 0.10),
    "SRC": (0.30, 0.15, 0.12), "URML": (0.26, 0.20, 0.17), "URMM": (0.22, 0.16, 0.13),
    "S1L": (0.30, 0.17, 0.14), "S1M": (0.26, 0.14, 0.12), "S3": (0.28, 0.16, 0.14), "W1": (0.40, 0.30, 0.26),
}
CLASSES = list(MEDIANS)
GROUP_MEDIAN = np.array([[*m, m[2] * 0.85] for m in MEDIANS.values()]).ravel()  # class-major, LEVELS order


def fragility_group(stock: pd.DataFrame) -> np.ndarray:
    """Index into ``GROUP_MEDIAN`` for each building: HAZUS class from structure and storeys, then code level."""
    s, f = stock["structure"].to_numpy(), stock["floors"].to_numpy()
    cls = np.select(
        [(s == "철근콘크리트구조") & (f <= 3), (s == "철근콘크리트구조") & (f <= 7), s == "철근콘크리트구조",
         s == "철골철근콘크리트구조", np.isin(s, ["벽돌구조", "블록구조"]) & (f <= 2), np.isin(s, ["벽돌구조", "블록구조"]),
         (s == "철골구조") & (f <= 3), s == "철골구조", s == "경량철골구조"],
        ["C1L", "C1M", "C1H", "SRC", "URML", "URMM", "S1L", "S1M", "S3"], "W1")
    level = np.where(stock["designed"], 0, np.where(stock["approval"].dt.year >= 1988, 1, 2))
    level = np.where(stock["piloti"], level + 1, level)  # high->low, low->pre, pre->pre_piloti
    names, inverse = np.unique(cls, return_inverse=True)
    return np.array([CLASSES.index(c) for c in names], dtype=np.int64)[inverse] * len(LEVELS) + level


def surveys(scen: pd.DataFrame, pga: np.ndarray, stock: pd.DataFrame, cell_ids: np.ndarray,
            rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Damage survey rows and truth for every scenario x cell holding buildings at the scenario date.

    Buildings are counted per (cell, fragility group) as of each scenario (scenarios are processed in time
    order, adding buildings as they are approved); damaged counts are binomial per group.
    """
    ncell, ngroup = len(cell_ids), len(GROUP_MEDIAN)
    group = fragility_group(stock)
    order = np.argsort(stock["approval"].to_numpy(), kind="stable")
    approval = stock["approval"].to_numpy()[order]
    key = (stock["cell"].to_numpy() * ngroup + group)[order]
    counts = np.zeros(ncell * ngroup, dtype=np.int64)
    ln_med = np.log(GROUP_MEDIAN)
    added = 0
    rows = []
    for s in np.argsort(scen["time"].to_numpy(), kind="stable"):
        upto = np.searchsorted(approval, scen["time"].to_numpy()[s], side="right")
        np.add.at(counts, key[added:upto], 1)
        added = upto
        c2 = counts.reshape(ncell, ngroup)
        total = c2.sum(axis=1)
        has = np.flatnonzero(total > 0)
        p = norm_cdf((np.log(pga[s, has])[:, None] - ln_med[None, :]) / BETA)
        damaged = rng.binomial(c2[has], p).sum(axis=1)
        share = (c2[has] * p).sum(axis=1) / total[has]
        rows.append(pd.DataFrame({"s": s, "cell": has, "buildings": total[has], "damaged": damaged, "share": share}))
    out = pd.concat(rows, ignore_index=True).sort_values(["s", "cell"], kind="stable")
    sc = scen.iloc[out["s"].to_numpy()].reset_index(drop=True)
    survey = pd.DataFrame({
        "시나리오번호": sc["scenario_id"], "발생시각": sc["time"].dt.strftime("%Y-%m-%d %H:%M:%S"),
        "규모": sc["magnitude"], "깊이(km)": sc["depth_km"], "위도": sc["lat"], "경도": sc["lon"],
        "격자ID": cell_ids[out["cell"].to_numpy()], "조사건물수": out["buildings"].to_numpy(),
        "중파이상건수": out["damaged"].to_numpy(), "표본가중치": sc["weight"].to_numpy(), "year": sc["time"].dt.year,
    })
    truth = pd.DataFrame({"scenario_id": sc["scenario_id"], "cell_id": survey["격자ID"],
                          "damage_share": out["share"].to_numpy()})
    return survey, truth

"""Flood: the holdout's baseline and the generator's truth (the truth is never a feature)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.domains.flood.features import lead_hours


def heavy_rain_rule(rows: pd.DataFrame) -> np.ndarray:
    """KMA heavy-rain rule on observed or forecast rain (1 h >= 50 and 3 h >= 90, or 1 h >= 72), low-lying cells."""
    fires = np.zeros(len(rows), dtype=bool)
    for one, three in (("rain_1h", "rain_3h"), ("rain_fcst_1h", "rain_fcst_3h")):
        r1, r3 = rows[one].to_numpy(float), rows[three].to_numpy(float)
        fires |= ((r1 >= 50) & (r3 >= 90)) | (r1 >= 72)
    return fires & (rows["low_lying"].to_numpy() > 0)


def baseline(rows: pd.DataFrame, history: pd.DataFrame) -> np.ndarray:
    """The rule, turned into probabilities by the flood rate when it fired / did not fire in the history,
    per lead time (a longer lead holds more floods either way)."""
    lead, past_lead = lead_hours(rows), lead_hours(history)
    fired, y = heavy_rain_rule(history), history["flooded"].to_numpy(float)
    fires = heavy_rain_rule(rows)
    out = np.full(len(rows), np.nan)
    for k in np.unique(lead):
        same = past_lead == k
        p_fire = y[same & fired].mean() if (same & fired).any() else 0.5
        p_quiet = y[same & ~fired].mean() if (same & ~fired).any() else 0.0
        out[lead == k] = np.where(fires[lead == k], p_fire, p_quiet)
    return out


def oracle(rows: pd.DataFrame, truth_dir) -> np.ndarray:
    """The generator's probability of a flood within each row's lead time (absent from the sparse truth =
    below 1e-4); a KeyError for a truth without that lead's column."""
    truth = pd.read_parquet(Path(truth_dir) / "flood_truth.parquet")
    joined = rows[["cell_id", "time"]].merge(truth, on=["cell_id", "time"], how="left")
    lead = lead_hours(rows)
    out = np.full(len(rows), np.nan)
    for k in np.unique(lead):
        out[lead == k] = joined.loc[lead == k, f"p_flood_{k:g}h"].fillna(0.0).to_numpy()
    return out

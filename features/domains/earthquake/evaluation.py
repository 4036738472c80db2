"""Earthquake: the holdout's baseline and the generator's truth (the truth is never a feature)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def baseline(rows: pd.DataFrame, history: pd.DataFrame) -> np.ndarray:
    """Ground motion + HAZUS fragility alone, on the cell's building stock."""
    return rows["fragility_damage_share"].to_numpy(float)


def oracle(rows: pd.DataFrame, truth_dir) -> np.ndarray:
    """The generator's expected damage share for each scenario and cell."""
    truth = pd.read_parquet(Path(truth_dir) / "earthquake_truth.parquet")
    joined = rows[["scenario_id", "cell_id"]].merge(truth, on=["scenario_id", "cell_id"], how="left")
    return joined["damage_share"].to_numpy()

"""Traffic: the holdout's baseline and the generator's truth (the truth is never a feature)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.domains.traffic.features import SLOTS_PER_DAY


def baseline(rows: pd.DataFrame, history: pd.DataFrame) -> np.ndarray:
    """Historical rate of the same cell and slot, shrunk halfway to the cell's all-slot rate (so a slot
    with no past accident does not predict zero); the city's mean where a cell has no history."""
    slot = rows["cell_slot_rate_365d"].to_numpy(float)
    cell = rows["cell_rate_365d"].to_numpy(float) / SLOTS_PER_DAY
    city = np.average(history["accidents"], weights=history["weight"])
    return np.nan_to_num(0.5 * slot + 0.5 * cell, nan=city)


def oracle(rows: pd.DataFrame, truth_dir) -> np.ndarray:
    """Expected accidents of each cell-slot: the cell's base rate in the slot's year times the slot's multiplier."""
    cells = pd.read_parquet(Path(truth_dir) / "traffic_truth_cells.parquet")
    slots = pd.read_parquet(Path(truth_dir) / "traffic_truth_slots.parquet")
    keys = rows[["cell_id", "time"]].assign(year=pd.to_datetime(rows["time"]).dt.year.to_numpy())
    joined = keys.merge(cells, on=["cell_id", "year"], how="left").merge(slots, on="time", how="left")
    return (joined["base"] * joined["multiplier"]).to_numpy()

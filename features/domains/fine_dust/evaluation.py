"""Fine dust: the holdout's baseline and the generator's truth (the truth is never a feature)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.domains.fine_dust.grades import POLLUTANTS, grade, pollutant_grade
from features.metrics import Metric


def _station_day_grades(y, pred, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Observed and predicted reported grade (worse of PM10 and PM2.5) per station-day. A pollutant absent
    that day (a station measuring PM10 only, PM2.5 before 2015) leaves the grade to the other one."""
    frame = pd.DataFrame({"station": rows["station_code"].to_numpy(), "time": rows["time"].to_numpy(),
                          "pollutant": rows["pollutant"].to_numpy(), "y": y, "p": pred})
    wide = frame.pivot_table(index=["station", "time"], columns="pollutant", values=["y", "p"])
    wide = wide.reindex(columns=pd.MultiIndex.from_product([["y", "p"], range(len(POLLUTANTS))]))
    wide = wide.dropna(how="all")
    return grade(wide[("y", 0)], wide[("y", 1)]), grade(wide[("p", 0)], wide[("p", 1)])


def _grade_accuracy(y, pred, w, rows):
    observed, predicted = _station_day_grades(y, pred, rows)
    return float(np.mean(observed == predicted))


def _pod_bad(y, pred, w, rows):
    """Probability of detection of 'bad' or worse days."""
    observed, predicted = _station_day_grades(y, pred, rows)
    events = observed >= 2
    return float(np.mean(predicted[events] >= 2)) if events.any() else float("nan")


def _far_bad(y, pred, w, rows):
    """False-alarm ratio of 'bad' or worse forecasts."""
    observed, predicted = _station_day_grades(y, pred, rows)
    alarms = predicted >= 2
    return float(np.mean(observed[alarms] < 2)) if alarms.any() else float("nan")


def _region_grade_accuracy(y, pred, w, rows):
    """Grade accuracy as the national forecast is verified: one forecast region (the city's stations, never
    the upwind background one), its daily mean per pollutant, PM10's and PM2.5's grades counted as separate
    forecasts. NIER forecasts and verifies the grades of 19 regions' daily means, per pollutant (NIER's
    figures for Seoul, Jan 2017 - Mar 2018, given to the National Assembly and reported by Seoul Economic
    Daily on 2018-04-01: 3,284 PM10 and 3,284 PM2.5 forecasts; tomorrow's forecasts 20.4% wrong, so 79.6%
    right, the "about 80%" anchor)."""
    frame = pd.DataFrame({"time": rows["time"].to_numpy(), "pollutant": rows["pollutant"].to_numpy(),
                          "y": y, "p": pred})
    region = frame.groupby(["time", "pollutant"])[["y", "p"]].mean().reset_index()
    hits = [pollutant_grade(part["y"], POLLUTANTS[k]) == pollutant_grade(part["p"], POLLUTANTS[k])
            for k, part in region.groupby("pollutant")]
    return float(np.mean(np.concatenate(hits))) if hits else float("nan")


GRADE_ACCURACY = Metric("grade_accuracy", _grade_accuracy, True)
REGION_GRADE_ACCURACY = Metric("region_grade_accuracy", _region_grade_accuracy, True)
POD_BAD = Metric("pod_bad", _pod_bad, True)
FAR_BAD = Metric("far_bad", _far_bad, False)


def baseline(rows: pd.DataFrame, history: pd.DataFrame) -> np.ndarray:
    """Persistence: today's mean so far, else yesterday's, else the pollutant's historical mean."""
    fallback = rows["pollutant"].map(history.groupby("pollutant")["pm_next"].mean())
    return (rows["own_today_mean"].fillna(rows["own_yesterday_mean"]).fillna(rows["own_mean_72h"])
            .fillna(fallback).fillna(history["pm_next"].mean()).to_numpy(float))


def oracle(rows: pd.DataFrame, truth_dir) -> np.ndarray:
    """The generator's noise-free daily mean of the target day, for the row's pollutant."""
    truth = pd.read_parquet(Path(truth_dir) / "fine_dust_truth.parquet")
    truth = truth.assign(date=pd.to_datetime(truth["date"]).dt.normalize())
    keys = pd.DataFrame({"station_code": rows["station_code"].to_numpy(),
                         "date": pd.to_datetime(rows["target_date"]).dt.normalize().to_numpy()})
    joined = keys.merge(truth, on=["station_code", "date"], how="left")
    return np.where(rows["pollutant"].to_numpy() == 0, joined["pm10"], joined["pm25"])

"""Benchmark: fine dust's skill against its anchors, printed in one run.

On the project's data (``data/``; the embedded set unless real files were imported) the fine-dust table is
built, the last 20% of its time span held out (with the label horizon as a gap), and a LightGBM with the
domain's monotone constraints fitted on the rest at fixed, usual settings (no tuning: the bench measures
the inputs' worth, not the search). On the holdout it prints:

- next-day daily mean: MAE and RMSE (ug/m3) of the model with the (degraded) forecast weather, of the same
  model fed persistence weather instead (a request without a forecast), of persistence (today's mean) and
  of climatology (the station's mean for the pollutant within +-15 days of the day of year, training
  years), and of the generator's truth where it exists; grade accuracy two ways: as the national forecast
  is verified (the forecast region's daily mean, the city's stations averaged, PM10 and PM2.5 graded as
  separate forecasts: the anchor's own measure, see ``fine_dust.evaluation``) and, stricter, per station-day
  on the reported grade (the worse of PM10 and PM2.5); and the POD and FAR of 나쁨-or-worse station-days;
- hourly forecasts from the 17:00 issue: MAE by lead hour (1-24 h) against persistence of the last hour,
  and the advisory hours expected (sum of probabilities) against those observed, and the reliability of the
  hourly distributions: hours at or above the grade and advisory levels, expected against observed.

Targets (issue 15): grade accuracy >= 0.80 (the national forecast's ~80% for tomorrow, measured as it is:
per region and pollutant) and model MAE <= 0.8 x persistence MAE.

    .venv/bin/python bench/fine_dust_skill.py [--data-dir data] [--hourly-days 120]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from features.domains import fine_dust as fd
from features.domains.fine_dust import hourly
from features.domains.fine_dust.grades import POLLUTANTS
from features.sources import Sources
from training.models import fit, predict
from training.splits import holdout_split, time_folds
from urban_safety.settings import Settings

#: Hourly levels whose exceedance the reliability table counts: the grade bounds and the advisory levels.
RELIABILITY = {"pm10": (50, 80, 150), "pm25": (25, 35, 75)}
PARAMS = {"objective": "regression", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 40,
          "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
          "num_boost_round": 2000}


def climatology(train: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """Mean next-day value of the station and pollutant within +-15 days of the target's day of year."""
    doy = pd.to_datetime(train["target_date"]).dt.day_of_year.to_numpy()
    out = np.empty(len(rows))
    keys = train.groupby(["station_code", "pollutant"]).indices
    target_doy = pd.to_datetime(rows["target_date"]).dt.day_of_year.to_numpy()
    y = train["pm_next"].to_numpy()
    for i, (s, p, d) in enumerate(zip(rows["station_code"], rows["pollutant"], target_doy, strict=True)):
        idx = keys.get((s, p), np.arange(len(train)))
        near = np.abs((doy[idx] - d + 182) % 365 - 182) <= 15
        out[i] = y[idx][near].mean() if near.any() else y[idx].mean()
    return out


def fit_as_training(train: pd.DataFrame, X: list[str], spec, folds: int = 3):
    """The training job's way with rounds: early-stopped on time-ordered folds, then refitted on every
    training row for the folds' mean best rounds + 10% (one validation window alone is fragile: a spring
    window with yellow-dust days stopped one data set's fit after 28 rounds)."""
    rounds = []
    for f in time_folds(train[spec.time], folds, spec.horizon):
        m = fit("lightgbm", "regression", PARAMS, train.iloc[f.train][X], train.iloc[f.train]["pm_next"], None,
                train.iloc[f.valid][X], train.iloc[f.valid]["pm_next"], monotone=spec.monotone_vector())
        rounds.append(m.best_iteration)
    final = {**PARAMS, "num_boost_round": max(int(np.mean(rounds) * 1.1), 10)}
    return fit("lightgbm", "regression", final, train[X], train["pm_next"], None, None, None,
               monotone=spec.monotone_vector())


def daily_scores(y, pred, rows) -> dict[str, float]:
    by_pollutant = {p: fd.REGION_GRADE_ACCURACY(y[rows["pollutant"] == k], pred[rows["pollutant"] == k], None,
                                                rows[rows["pollutant"] == k]) for k, p in enumerate(POLLUTANTS)}
    return {"MAE": float(np.mean(np.abs(pred - y))), "RMSE": float(np.sqrt(np.mean((pred - y) ** 2))),
            "region acc": fd.REGION_GRADE_ACCURACY(y, pred, None, rows),
            **{f"region acc {p}": v for p, v in by_pollutant.items()},
            "grade acc": fd.GRADE_ACCURACY(y, pred, None, rows), "POD bad+": fd.POD_BAD(y, pred, None, rows),
            "FAR bad+": fd.FAR_BAD(y, pred, None, rows)}


def hourly_skill(src, hold: pd.DataFrame, pred: np.ndarray, stats, days: int) -> tuple[pd.DataFrame, dict]:
    """MAE by lead hour of the hourly forecasts and of persistence; advisory hours expected vs observed."""
    air = src["airkorea"][["station_code", "time", *POLLUTANTS]].copy()
    air["time"] = pd.to_datetime(air["time"])
    obs = {p: air.pivot_table(index="time", columns="station_code", values=p) for p in POLLUTANTS}
    issues = np.sort(hold["time"].unique())[-days:]
    rows = hold.assign(pred=pred)
    rows = rows[rows["time"].isin(issues)]
    errors, advisories = [], {name: [0.0, 0] for name, _, _ in hourly.ADVISORIES}
    exceed = {(p, t): [0.0, 0] for p, levels in RELIABILITY.items() for t in levels}
    for r in rows.itertuples():
        p = POLLUTANTS[r.pollutant]
        series = obs[p].get(r.station_code)
        if series is None:
            continue
        frame = hourly.forecast(r.time, r.target_date, r.pred, r.own_today_mean, r.own_last_hour,
                                stats.get((r.station_code, r.pollutant), hourly.Stats.neutral()),
                                hourly.SKILL["forecast"], seed=int(r.station_code))
        seen = series.reindex(frame["time"]).to_numpy()
        last = series.get(pd.Timestamp(r.time), np.nan)
        errors.append(pd.DataFrame({"lead_h": frame["lead_h"], "model": np.abs(frame["value"] - seen),
                                    "persistence": np.abs(last - seen)}))
        ok = ~np.isnan(seen)
        for t in RELIABILITY[p]:  # the hour's forecast distribution (lognormal, value = its mean) above t
            sd = frame["log_sd"].to_numpy()
            above = norm.sf((np.log(t) - np.log(frame["value"].to_numpy()) + sd ** 2 / 2) / sd)
            exceed[(p, t)][0] += float(above[ok].sum())
            exceed[(p, t)][1] += int((seen[ok] >= t).sum())
        before = np.concatenate([[last], seen[:-1]])
        for name, pollutant, threshold in hourly.ADVISORIES:
            if pollutant == p:
                ok = ~np.isnan(seen) & ~np.isnan(before)
                advisories[name][0] += float(frame[f"p_{threshold:g}"].to_numpy()[ok].sum())
                advisories[name][1] += int(((seen >= threshold) & (before >= threshold))[ok].sum())
    by_lead = pd.concat(errors).groupby("lead_h")[["model", "persistence"]].mean()
    return by_lead, advisories, exceed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--hourly-days", type=int, default=120, help="holdout issue days scored hourly")
    args = parser.parse_args()
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    src = Sources.from_settings(settings)
    spec = fd.SPEC
    start = time.perf_counter()
    table = fd.build_table(src)
    table = table[table[list(spec.essential)].notna().all(axis=1)].sort_values(spec.time, kind="stable")
    table = table.reset_index(drop=True)
    split = holdout_split(table[spec.time], 0.2, spec.horizon)
    train, hold = table.iloc[split.train].reset_index(drop=True), table.iloc[split.valid].reset_index(drop=True)
    X = list(spec.features)
    model = fit_as_training(train, X, spec)
    y = hold["pm_next"].to_numpy(float)
    # The same questions without a forecast: the service's persistence-grade answer.
    no_fcst = fd.build_rows(src, hold[[*spec.keys, spec.time, "target_date"]])
    candidates = {
        "model, forecast weather": predict("lightgbm", model.booster, hold[X]),
        "model, persistence weather": predict("lightgbm", model.booster, no_fcst[X]),
        "persistence (today's mean)": fd.baseline(hold, train),
        "climatology (station, +-15 d)": climatology(train, hold),
    }
    truth = settings.truth_dir / "fine_dust_truth.parquet"
    if truth.exists():
        candidates["truth (generator, reference)"] = fd.oracle(hold, settings.truth_dir)
    scores = {name: daily_scores(y, np.asarray(p, float), hold) for name, p in candidates.items()}
    persistence_mae = scores["persistence (today's mean)"]["MAE"]
    days = hold["target_date"].nunique()
    print(f"fine dust, next-day daily mean, holdout {days} days x {hold['station_code'].nunique()} stations "
          f"({len(hold)} rows; trained on {len(train)}; {model.best_iteration} rounds)\n")
    print("| forecast | MAE ug/m3 | RMSE ug/m3 | MAE / persistence | grade accuracy, region (PM10 / PM2.5) | "
          "grade accuracy, station-day | POD 나쁨+ | FAR 나쁨+ |")
    print("|---|---|---|---|---|---|---|---|")
    for name, s in scores.items():
        print(f"| {name} | {s['MAE']:.2f} | {s['RMSE']:.2f} | {s['MAE'] / persistence_mae:.2f} | "
              f"{s['region acc']:.3f} ({s['region acc pm10']:.3f} / {s['region acc pm25']:.3f}) | "
              f"{s['grade acc']:.3f} | {s['POD bad+']:.2f} | {s['FAR bad+']:.2f} |")
    persist = np.clip(candidates["persistence (today's mean)"], 1, None)
    ratios = {name: hourly.robust_sd(np.log(np.clip(candidates[name], 1, None) / np.clip(y, 1, None)))
              / hourly.robust_sd(np.log(persist / np.clip(y, 1, None)))
              for name in ("model, forecast weather", "model, persistence weather")}
    print("\nday-level log error relative to persistence's (robust sd ratio; hourly.SKILL uses "
          f"{hourly.SKILL}): " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    best = scores["model, forecast weather"]
    print(f"\ntargets: grade accuracy as the national forecast is verified {best['region acc']:.3f} (>= 0.80: "
          f"{'met' if best['region acc'] >= 0.8 else 'MISSED'}; per station-day, stricter: {best['grade acc']:.3f}), "
          f"MAE ratio {best['MAE'] / persistence_mae:.2f} (<= 0.80: "
          f"{'met' if best['MAE'] <= 0.8 * persistence_mae else 'MISSED'})")
    # Hourly statistics from the training period only.
    stats = hourly.station_stats(src["airkorea"], until=train[spec.time].max())
    by_lead, adv, exceed = hourly_skill(src, hold, candidates["model, forecast weather"], stats, args.hourly_days)
    first24 = by_lead.loc[by_lead.index <= 24]
    print(f"\nhourly from the 17:00 issue, last {args.hourly_days} holdout issue days: MAE (ug/m3, PM10 and PM2.5 "
          "rows pooled) by lead hour\n")
    print("| lead h | " + " | ".join(str(h) for h in first24.index) + " |")
    print("|---|" + "---|" * len(first24))
    for col in ("model", "persistence"):
        print(f"| {col} | " + " | ".join(f"{v:.1f}" for v in first24[col]) + " |")
    print(f"\nmean over leads 1-24: model {first24['model'].mean():.2f}, persistence {first24['persistence'].mean():.2f} "
          f"(ratio {first24['model'].mean() / first24['persistence'].mean():.2f}); target day's hours (leads 8-31): "
          f"model {by_lead.loc[8:31, 'model'].mean():.2f}, persistence {by_lead.loc[8:31, 'persistence'].mean():.2f}")
    print("\nadvisory hours (2-hour rule), expected from the probabilities vs observed:")
    for name, (expected, seen) in adv.items():
        print(f"  {name}: expected {expected:.1f}, observed {seen}")
    print("\nreliability of the hourly distributions: hours at or above a level, expected (sum of probabilities) "
          "vs observed\n")
    print("| pollutant | level ug/m3 | expected | observed | ratio |")
    print("|---|---|---|---|---|")
    for (p, level), (expected, seen) in exceed.items():
        print(f"| {p} | {level:g} | {expected:.0f} | {seen} | {expected / max(seen, 1):.2f} |")
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

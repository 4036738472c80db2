"""The drift monitor on the project's data (run `./scripts/run.sh` or `urban-safety serve --prepare-only` first):
its findings on clean answers and on shifted ones, beside the monitor before data-time references (git
9c2336a, read from the repository's history) judging the same answers.

The champions answer, into a private SQLite store: a day of flood maps (leads 1, 3, 6 h) and the traffic
slots before the day ``--day``, 21 days of fine-dust forecasts and five earthquake what-ifs (M3.5-7.5); then
the day itself three ways: clean, rain x4 (a feed in the wrong unit) and rain missing at the AWS stations
nearest a third of the cells. For each: per domain the old monitor's findings, and the new one's input-quality
problems (alerts), report lines (moved distributions) and exempt inputs.

    .venv/bin/python bench/monitor_report.py [--day 2023-12-31]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import live.db  # noqa: E402
from features import store as table_store  # noqa: E402
from features.build import table_path  # noqa: E402
from features.registry import domains  # noqa: E402
from features.sources import Sources  # noqa: E402
from live import monitor  # noqa: E402
from serving.engine import Engine  # noqa: E402
from serving.model_store import load_models, training_reference  # noqa: E402
from training.models import predict  # noqa: E402
from urban_safety.settings import get_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "9c2336a"  # the last commit with the training-only monitor
QUAKES = [{"magnitude": m, "epicentre_lat": 37.45, "epicentre_lon": 126.6} for m in (3.5, 4.5, 5.5, 6.5, 7.5)]
LEADS = [{"lead_hours": k} for k in (1, 3, 6)]


def baseline_module():
    """The old live/monitor.py, from git, under its own table metadata (it declares the same tables)."""
    code = subprocess.run(["git", "show", f"{BASELINE}:live/monitor.py"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout
    path = Path(tempfile.mkdtemp()) / "monitor_old.py"
    path.write_text(code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("monitor_old", path)
    old = importlib.util.module_from_spec(spec)
    kept, live.db.METADATA = live.db.METADATA, sa.MetaData()
    try:
        spec.loader.exec_module(old)
    finally:
        live.db.METADATA = kept
    return old


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--day", default="2023-12-31", help="the day judged (the generated data's last day by default)")
    day = pd.Timestamp(ap.parse_args().day)
    old = baseline_module()
    settings = get_settings()
    src = Sources.from_settings(settings)
    models, _ = load_models()
    new_refs, old_refs = {}, {}
    for name, spec in domains().items():
        new_refs[name] = training_reference(settings, name, models[name])
        # The old layout, from the same rows (the sample is seeded).
        X = table_store.sample(table_path(settings.features_dir, name), monitor.REFERENCE_ROWS,
                               list(spec.features)).astype("float64")
        old_refs[name] = old.profile(X, predict(models[name].family, models[name].booster, X))

    def fresh():
        db = live.db.database(f"sqlite:///{tempfile.mkdtemp()}/live.db")
        for n, r in new_refs.items():
            monitor.store_reference(db, n, "champion", r)
        return db

    def record(db, sources, domain, times, conditions=None):
        engine = Engine(sources, models, recorder=monitor.Recorder("cycle"))
        for t in times:
            for c in conditions if isinstance(conditions, list) else [conditions]:
                engine.risk_map(domain, None if t is None else pd.Timestamp(t).to_pydatetime(), c)
        engine.recorder.flush(db)

    before = fresh()
    record(before, src, "flood", pd.date_range(day - pd.Timedelta(days=1), periods=24, freq="h"), LEADS)
    record(before, src, "traffic", pd.date_range(day - pd.Timedelta(days=3), day - pd.Timedelta(hours=3), freq="3h"))
    record(before, src, "fine_dust", pd.date_range(day - pd.Timedelta(days=21) + pd.Timedelta(hours=17),
                                                   day + pd.Timedelta(hours=17), freq="D"))
    record(before, src, "earthquake", [None], QUAKES)
    with before.connect() as conn:
        history = [{k: v for k, v in r.items() if k != "id"} for r in conn.execute(monitor.SERVED.select()).mappings()]

    from features.domains.flood.features import station_series

    nearest = pd.Series(np.asarray(station_series(src).cell_station)).value_counts(normalize=True)
    aws = nearest[nearest.index.isin(src["aws"]["station_id"].unique())]
    gone = aws.index[:int(np.searchsorted(aws.cumsum().to_numpy(), 0.35)) + 1].tolist()
    variants = {
        "clean": src,
        "rain x4": src.replaced({s: src[s].assign(rain_mm=src[s]["rain_mm"] * 4) for s in ("asos", "aws")}),
        f"rain missing at {len(gone)} AWS stations ({aws.loc[gone].sum():.0%} of cells nearest)": src.replaced(
            {s: src[s].assign(rain_mm=src[s]["rain_mm"].where(~src[s]["station_id"].isin(gone))) for s in ("asos", "aws")}),
    }
    hours = pd.date_range(day, periods=24, freq="h")
    for label, sources in variants.items():
        db = fresh()
        with db.begin() as conn:
            conn.execute(monitor.SERVED.insert(), history)
        record(db, sources, "flood", hours, LEADS)
        record(db, sources, "traffic", hours[::3])
        t0 = time.perf_counter()
        report = monitor.check(db, 24)
        took = time.perf_counter() - t0
        print(f"\n== {day:%Y-%m-%d}, {label} (check {took:.1f} s)")
        print(f"{'domain':<11} {'rows':>6} {'before: findings':>17} {'now: alerts':>12} {'report lines':>13} {'exempt':>7}  reference")
        for name, r in report.items():
            index = monitor._index(db, name)
            window = index.loc[monitor._window(index, 24)]
            frame = monitor._features(db, window["id"]).reset_index(drop=True).assign(
                prediction=window["prediction"].to_numpy())
            found = old.compare(old_refs[name], frame)["problems"]
            print(f"{name:<11} {r['rows']:>6} {len(found):>17} {len(r['problems']):>12} {len(r['report_lines']):>13} "
                  f"{len(r['exempt']):>7}  {r['reference']}")
            for problem in r["problems"]:
                print(f"    alert: {problem}")
            if r["performance"].get("expected"):
                print(f"    performance without labels: {r['performance']['expected']}")


if __name__ == "__main__":
    main()

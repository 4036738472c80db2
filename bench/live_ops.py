"""Live operation figures on the project's data (run `./scripts/run.sh` or `urban-safety serve --prepare-only` first).

Prints, in one run, on a private copy of the observation store and of BentoML's model store:
- rows/s into the store through ``POST /observations`` (2 workers) and through the inbox, against the
  store's own append (``ObservationStore.append`` of the same frames, the floor every way in pays);
- the time from a rain row posted to a changed ``/risk`` answer at its station (p50/p99), a new hour's row
  and a correction of it, against the workers' polling interval (the floor);
- the live cycle's wall time per domain (every cell, every lead) after a new hour, against the 5 s target.

    .venv/bin/python bench/live_ops.py [--batches 20] [--rows 1000] [--trials 30] [--cycles 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import ROOT, free_port, start, stop  # noqa: E402
from urban_safety.settings import get_settings  # noqa: E402


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def rows_for(city, first: pd.Timestamp, n: int, kind: str = "aws") -> list[dict]:
    stations = [s.id for s in city.weather_stations if s.kind == kind]
    hours = -(-n // len(stations))
    return [{"station_id": sid, "time": f"{first + pd.Timedelta(hours=h):%Y-%m-%d %H:%M}", "rain_mm": float(h % 7)}
            for h in range(hours) for sid in stations][:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--cycles", type=int, default=3)
    args = ap.parse_args()
    settings = get_settings()
    work = Path(tempfile.mkdtemp(prefix="live-bench-"))
    src_db = settings.data / "live.db"
    if not src_db.exists():
        sys.exit(f"no observation store at {src_db}: run ./scripts/run.sh (or urban-safety serve --prepare-only) first")
    shutil.copy(src_db, work / "live.db")
    home = Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml"))
    shutil.copytree(home, work / "bentoml")
    store_url = f"sqlite:///{work / 'live.db'}"
    env = {**os.environ, "BENTOML_HOME": str(work / "bentoml"), "URBAN_SAFETY_STORE_URL": store_url,
           "URBAN_SAFETY_WORKERS": "2", "URBAN_SAFETY_FOLLOW_S": "0.2"}
    subprocess.run([sys.executable, "-m", "urban_safety.cli", "serve", "--prepare-only"], env=env, cwd=ROOT,
                   check=True, capture_output=True)
    os.environ.update({k: env[k] for k in ("BENTOML_HOME", "URBAN_SAFETY_STORE_URL")})

    from live.ingest import Inbox, read_batch
    from live.store import ObservationStore

    store, city = ObservationStore(store_url), settings.city_config
    newest = store.newest()
    far = max(newest.values()) + pd.Timedelta(days=400)  # ingest-rate rows, clear of the served hours

    # --- rows/s ------------------------------------------------------------------------------------
    batches = [rows_for(city, far + pd.Timedelta(days=30 * b), args.rows) for b in range(3 * args.batches)]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start([sys.executable, "-m", "bentoml", "serve", "serving.service:RiskService", "--port", str(port)],
                 url, "/readyz", env)
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            t0 = time.perf_counter()
            for rows in batches[:args.batches]:
                assert http.post("/observations", json={"source": "aws", "rows": rows}).json()["accepted"] == len(rows)
            api_rate = args.rows * args.batches / (time.perf_counter() - t0)

            inbox_dir = work / "inbox"
            (inbox_dir / "aws").mkdir(parents=True)
            for i, rows in enumerate(batches[args.batches:2 * args.batches]):
                f = inbox_dir / "aws" / f"OBS_AWS_TIM_{i:03d}.csv"
                f.write_text("지점,일시,강수량(mm)\n" + "".join(f"{r['station_id']},{r['time']},{r['rain_mm']}\n"
                                                         for r in rows), encoding="utf-8")
                os.utime(f, (0, 0))
            t0 = time.perf_counter()
            taken = Inbox(inbox_dir, store, city).run_once()
            inbox_rate = sum(r.accepted for _, r, _ in taken if r) / (time.perf_counter() - t0)

            frames = []
            for i, rows in enumerate(batches[2 * args.batches:]):
                f = work / f"direct_{i}.json"
                f.write_text(pd.DataFrame(rows).to_json(orient="records"), encoding="utf-8")
                frames.append(read_batch("aws", f, city).frame)
            t0 = time.perf_counter()
            for frame in frames:
                store.append("aws", frame, "bench")
            direct_rate = args.rows * args.batches / (time.perf_counter() - t0)

            # --- rain row -> changed /risk ---------------------------------------------------------------
            at = http.get("/domains").json()["domains"]["flood"]["default_at"]
            station = next(s for s in city.weather_stations if s.kind == "asos")
            ask = {"domain": "flood", "locations": [{"lat": station.lat, "lon": station.lon}], "at": at}

            def value():
                return http.post("/risk", json=ask).json()["results"][0]["details"]["rain_1h"]

            lags, colds = [], []
            for k in range(args.trials):
                rain = 5.0 + 7.0 * k % 120
                t0 = time.perf_counter()
                http.post("/observations", json={"source": station.kind, "rows": [
                    {"station_id": station.id, "time": at.replace("T", " ")[:16], "rain_mm": rain}]})
                while value() != rain:
                    time.sleep(0.01)
                lags.append(time.perf_counter() - t0)
                t0 = time.perf_counter()  # the same question once more, cached answers dropped by a new row
                http.post("/observations", json={"source": station.kind, "rows": [
                    {"station_id": station.id, "time": at.replace("T", " ")[:16], "rain_mm": rain + 0.5}]})
                while value() != rain + 0.5:
                    time.sleep(0.01)
                colds.append(time.perf_counter() - t0)
    finally:
        stop(proc)

    print(f"\ningest ({args.batches} batches x {args.rows} rows of AWS rain)")
    print(f"  {'path':<34} {'rows/s':>10}")
    print(f"  {'POST /observations (2 workers)':<34} {api_rate:>10.0f}")
    print(f"  {'inbox (CSV files)':<34} {inbox_rate:>10.0f}")
    print(f"  {'ObservationStore.append (floor)':<34} {direct_rate:>10.0f}")
    print(f"\nrain row posted -> changed /risk answer at its station ({args.trials} trials)")
    print(f"  p50 {pct(lags, 50):.0f} ms, p99 {pct(lags, 99):.0f} ms (workers poll the store every 0.2 s)")
    print(f"  the same after a correction to the same hour: p50 {pct(colds, 50):.0f} ms, p99 {pct(colds, 99):.0f} ms")

    # --- the live cycle -----------------------------------------------------------------------------
    from live.cycle import LiveLoop
    from live.db import database
    from serving.engine import Engine
    from serving.model_store import load_context, load_models

    sources, cstore, version = load_context()
    models, problems = load_models()
    engine = Engine(sources, models, problems, store=cstore, version=version)
    loop = LiveLoop(engine, database(cstore.url))
    loop.step(force=True)  # the first cycle builds the per-source lookups
    per = {}
    hour = max(engine.times(name)[1] for name in engine.specs if name not in engine.unavailable)
    for c in range(args.cycles):
        hour = hour + pd.Timedelta(hours=1)
        rows = [{"station_id": s.id, "time": f"{hour:%Y-%m-%d %H:%M}", "rain_mm": 10.0 + c}
                for s in city.weather_stations if s.kind == "asos"]
        f = work / f"cycle_{c}.json"
        f.write_text(pd.DataFrame(rows).to_json(orient="records"), encoding="utf-8")
        cstore.append("asos", read_batch("asos", f, city).frame, "bench")
        report = loop.step()
        for k, v in report.timings.items():
            per.setdefault(k, []).append(v)
    cold = {}
    for _ in range(args.cycles):  # every map built afresh: what a new slot or day costs a domain
        for cache in (engine._maps, engine._spent, engine._city):
            cache.drop(lambda key: True)
        report = loop.step(force=True)
        for k, v in report.timings.items():
            cold.setdefault(k, []).append(v)
    print(f"\nlive cycle ({args.cycles} cycles each, {len(engine.grid.cells)} cells, flood at 3 leads), seconds")
    print(f"  {'step':<12} {'new hour of rain':>18} {'every map rebuilt':>18}")
    for k in per:
        print(f"  {k:<12} {statistics.median(per[k]):>11.2f} (max {max(per[k]):.2f}) "
              f"{statistics.median(cold[k]):>9.2f} (max {max(cold[k]):.2f})")
    total, worst = statistics.median(per["total"]), statistics.median(cold["total"])
    print(f"  target: new data -> every map refreshed under 5 s: {'met' if max(total, worst) < 5 else 'MISSED'} "
          f"({total:.2f} s after new rain, {worst:.2f} s with every map rebuilt)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark: the BentoML service against `mlflow models serve` on the same champion, same load, same run.

Needs the main job done first (`./scripts/run.sh` or `urban-safety serve --prepare-only`): it serves the
project's BentoML store and MLflow registry. Load comes from wrk (Debian package `wrk`; installed by this
script with apt-get when missing and allowed) on loopback, bounded in time.

    .venv/bin/python bench/serve_load.py [--domain flood] [--seconds 10] [--connections 16]

Prints requests/s and p50/p99 for: single-location /risk (the same question, distinct questions, and every
cell at the current hour), 1,000-row /predict, /risk_map, a BentoML service that does nothing (the
framework's floor on this machine), and MLflow's /invocations with 1 and 1,000 rows, plus the raw booster's
predict time for the same 1,000 rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import free_port, start, stop, wrk  # noqa: E402
from features.build import table_path  # noqa: E402
from features.registry import get_domain  # noqa: E402
from features.store import iter_parts  # noqa: E402
from training.champion import load_native  # noqa: E402
from training.models import predict  # noqa: E402
from training.tracking import configure, registered_name  # noqa: E402
from urban_safety.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--domain", default="flood")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)

    settings = Settings()
    spec = get_domain(args.domain)
    client = configure(settings)
    model_uri = f"models:/{registered_name(spec.name)}@champion"
    family, booster = load_native(model_uri)
    table = list(iter_parts(table_path(settings.features_dir, spec.name)))[-1].tail(1000)
    X = table[list(spec.features)].astype("float64")
    records = json.loads(X.to_json(orient="records"))  # NaN -> null

    # The raw booster: the floor every server is measured against.
    times = []
    for _ in range(20):
        t = time.perf_counter()
        predict(family, booster, X)
        times.append(time.perf_counter() - t)
    raw_ms = float(np.median(times)) * 1e3

    env = {**os.environ, "URBAN_SAFETY_WORKERS": os.environ.get("URBAN_SAFETY_WORKERS", "2")}
    rows = []
    bento_port, mlflow_port = free_port(), free_port()
    bento = start([sys.executable, "-m", "bentoml", "serve", "serving.service:RiskService", "--port", str(bento_port),
                   "--host", "127.0.0.1"], f"http://127.0.0.1:{bento_port}", "/readyz", env)
    try:
        base = f"http://127.0.0.1:{bento_port}"
        point = {"lat": 37.4777, "lon": 126.6249}
        wrk(f"{base}/risk", {"domain": spec.name, "locations": [point]}, 3, args.connections)  # warm-up, not counted
        rows.append(("bentoml /risk, same location", 1, wrk(f"{base}/risk",
                                                            {"domain": spec.name, "locations": [point]},
                                                            args.seconds, args.connections)))
        # Distinct questions: a random cell at a random hour of the last 90 days, so the answer cache
        # (which serves repeated identical questions) rarely helps.
        rng = np.random.default_rng(0)
        cells = httpx.post(f"{base}/risk_map", json={"domain": spec.name}, timeout=60).json()["features"]
        latest = httpx.get(f"{base}/domains", timeout=60).json()["domains"][spec.name]["default_at"]
        hours = pd.date_range(end=pd.Timestamp(latest).floor("h"), periods=90 * 24, freq="h")
        varied = [{"domain": spec.name, "locations": [{"cell_id": cells[i]["properties"]["cell_id"]}],
                   "at": hours[j].isoformat()}
                  for i, j in zip(rng.integers(0, len(cells), 20_000), rng.integers(0, len(hours), 20_000),
                                  strict=True)]
        rows.append(("bentoml /risk, 20,000 distinct asks", 1, wrk(f"{base}/risk", varied, args.seconds,
                                                                   args.connections)))
        # A storm: every cell asked about, one request each, at the current hour (the department's case).
        now = [{"domain": spec.name, "locations": [{"cell_id": f["properties"]["cell_id"]}]} for f in cells]
        rows.append(("bentoml /risk, every cell, now", 1, wrk(f"{base}/risk", now, args.seconds, args.connections)))
        rows.append(("bentoml /predict, 1,000 rows", 1000, wrk(f"{base}/predict",
                                                               {"domain": spec.name, "records": records},
                                                               args.seconds, 4)))
        rows.append(("bentoml /risk_map, same question", 1, wrk(f"{base}/risk_map", {"domain": spec.name},
                                                                args.seconds, 4)))
        maps = [{"domain": spec.name, "at": h.isoformat()} for h in hours]
        rows.append(("bentoml /risk_map, 2,160 distinct hours", 1, wrk(f"{base}/risk_map", maps, args.seconds, 4)))
    finally:
        stop(bento)
    noop_port = free_port()
    noop = start([sys.executable, "-m", "bentoml", "serve", "bench.noop_service:Noop", "--port", str(noop_port),
                  "--host", "127.0.0.1"], f"http://127.0.0.1:{noop_port}", "/readyz", env)
    try:
        body = {"domain": spec.name, "locations": [{"lat": 37.4777, "lon": 126.6249}]}
        wrk(f"http://127.0.0.1:{noop_port}/risk", body, 3, args.connections)  # warm-up, not counted
        rows.append(("bentoml no-op service (floor)", 1, wrk(f"http://127.0.0.1:{noop_port}/risk", body,
                                                             args.seconds, args.connections)))
    finally:
        stop(noop)
    # mlflow starts uvicorn by name: the venv's bin must be on PATH. Same worker count as BentoML.
    mlflow_env = {**env, "MLFLOW_TRACKING_URI": settings.tracking_uri,
                  "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    mlf = start([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
                 "-p", str(mlflow_port), "-h", "127.0.0.1", "-w", env["URBAN_SAFETY_WORKERS"]], f"http://127.0.0.1:{mlflow_port}", "/ping", mlflow_env)
    try:
        url = f"http://127.0.0.1:{mlflow_port}/invocations"
        split = json.loads(X.to_json(orient="split", index=False))
        one = {"dataframe_split": {"columns": split["columns"], "data": split["data"][:1]}}
        rows.append(("mlflow models serve, 1 row", 1, wrk(url, one, args.seconds, args.connections)))
        rows.append(("mlflow models serve, 1,000 rows", 1000, wrk(url, {"dataframe_split": split}, args.seconds, 4)))
    finally:
        stop(mlf)

    print(f"domain {spec.name}, champion {model_uri} ({family}), {os.cpu_count()} cores, "
          f"BentoML workers {env['URBAN_SAFETY_WORKERS']}, wrk {args.seconds} s per line")
    print(f"{'what':<34} {'req/s':>9} {'rows/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, n, r in rows:
        print(f"{name:<34} {r['rps']:9.1f} {r['rps'] * n:10.0f} {r['p50']:8.1f} {r['p99']:8.1f} {r['errors']:7d}")
    print(f"{'raw booster predict, 1,000 rows':<34} {'':>9} {1000 / raw_ms * 1e3:10.0f} {raw_ms:8.2f}")
    print("targets: /risk >= 1,000 req/s with p99 < 50 ms; /predict >= 50,000 rows/s; /risk_map p50 < 150 ms")
    del client


if __name__ == "__main__":
    main()

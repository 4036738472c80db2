"""Load test: 50 concurrent clients for 60 s against /risk, then 60 s against /risk_map, on loopback.

Starts the service from the project's BentoML store (run `./scripts/run.sh` or `urban-safety serve --prepare-only`
first) with 2 workers for the 2 cores, and drives it with wrk (Debian package `wrk`). Each route gets a mix
of distinct questions over every domain (random cells, random hours of the last 90 days), so the answer
cache helps little. Prints requests/s, p50/p99 and errors (non-2xx and socket errors); the target is 0 errors.

    .venv/bin/python bench/load_50.py [--seconds 60] [--connections 50] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import free_port, start, stop, wrk  # noqa: E402


def questions(base: str, domain: str, info: dict, n: int, rng) -> tuple[list[dict], list[dict]]:
    """Distinct /risk and /risk_map bodies for one domain, with its required conditions' examples."""
    cells = httpx.post(f"{base}/risk_map", json={"domain": domain,
                                                 "conditions": required(info)}, timeout=60).json()["features"]
    hours = pd.date_range(end=pd.Timestamp(info["default_at"]).floor("h"), periods=90 * 24, freq="h")
    conds = required(info)
    risk = [{"domain": domain, "locations": [{"cell_id": cells[i]["properties"]["cell_id"]}],
             "at": hours[j].isoformat(), "conditions": conds}
            for i, j in zip(rng.integers(0, len(cells), n), rng.integers(0, len(hours), n), strict=True)]
    maps = [{"domain": domain, "at": h.isoformat(), "conditions": conds} for h in hours]
    return risk, maps


def required(info: dict) -> dict:
    return {c["name"]: c["example"] for c in info["conditions"] if c["required"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", default="2")
    args = parser.parse_args()
    env = {**os.environ, "URBAN_SAFETY_WORKERS": args.workers}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start([sys.executable, "-m", "bentoml", "serve", "serving.service:RiskService", "--port", str(port),
                    "--host", "127.0.0.1"], base, "/readyz", env)
    rows = []
    try:
        catalogue = httpx.get(f"{base}/domains", timeout=60).json()["domains"]
        rng = np.random.default_rng(0)
        risk, maps = [], []
        for domain, info in catalogue.items():
            r, m = questions(base, domain, info, 5_000, rng)
            risk += r
            maps += m
        rows.append(("/risk, every domain", wrk(f"{base}/risk", risk, args.seconds, args.connections)))
        rows.append(("/risk_map, every domain", wrk(f"{base}/risk_map", maps, args.seconds, args.connections)))
    finally:
        stop(server)
    print(f"{args.connections} concurrent clients, {args.seconds} s per line, {os.cpu_count()} cores, "
          f"{args.workers} BentoML workers, wrk on loopback; distinct questions, domains mixed")
    print(f"{'what':<24} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, r in rows:
        print(f"{name:<24} {r['rps']:8.1f} {r['p50']:8.1f} {r['p99']:8.1f} {r['errors']:7d}")
    total = sum(r["errors"] for _, r in rows)
    print(f"errors in total: {total} (target 0)")


if __name__ == "__main__":
    main()

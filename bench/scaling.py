"""Benchmark: time and peak memory of each step of the main job, per domain, as the grid gets finer.

For each grid size (500, 250 and 100 m by default; Incheon has 2,208, 8,832 and 55,200 land cells) the
embedded data are generated into a folder of their own, every domain's features are built, a quick
training runs for each domain, and a whole-city map is built per domain by the serving engine. Each step
runs in a process of its own; its wall time and peak resident memory (the process's own ``ru_maxrss``)
are printed, with the growth from the previous grid beside the growth in cells, so "linear in cells x time
steps, memory flat" can be read off the table. The baseline is the coarser grid in the same run.

    .venv/bin/python -m bench.scaling [--grids 500,250,100] [--years 3] [--out bench/.scale] [--keep]

It takes about 25 minutes on 2 cores for the three grids; ``--grids 500,250`` about 5.
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

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ("flood", "traffic", "earthquake", "fine_dust")
US = str(ROOT / ".venv" / "bin" / "urban-safety")


def measure(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """(seconds, peak RSS in GB, stdout) of one command run to completion; exits on failure."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out[-3000:]}")
    return seconds, usage.ru_maxrss / 1024 ** 2, out


def serve_one(domain: str) -> None:
    """Child process: build the engine on the champions and time one whole-city map of ``domain``."""
    from features.registry import get_domain
    from features.sources import Sources
    from serving.engine import Engine, LoadedModel
    from training.champion import load_native
    from training.tracking import configure, registered_name
    from urban_safety.settings import Settings

    settings = Settings()
    configure(settings)
    family, booster = load_native(f"models:/{registered_name(domain)}@champion")
    started = time.perf_counter()
    engine = Engine(Sources.from_settings(settings), {domain: LoadedModel(family, booster, {})})
    loaded = time.perf_counter() - started
    spec = get_domain(domain)
    required = any(c.required for c in spec.serving.conditions)
    conditions = dict(spec.serving.scenarios[0][1]) if required else None
    started = time.perf_counter()
    body = engine.risk_map(domain, None, conditions)
    print(json.dumps({"load_s": loaded, "map_s": time.perf_counter() - started, "bytes": len(body),
                      "cells": len(engine.grid.cells)}))


def run_grid(grid: int, years: int, out: Path) -> dict:
    folder = out / str(grid)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = {**os.environ, "URBAN_SAFETY_ROOT": str(folder), "URBAN_SAFETY_GRID_M": str(grid),
           "URBAN_SAFETY_YEARS": str(years), "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlruns/mlflow.db"}
    env.pop("URBAN_SAFETY_DATA_DIR", None)
    steps = {}
    steps[("generate", "all")] = measure([US, "data", "generate"], env)[:2]
    for d in DOMAINS:
        steps[("features", d)] = measure([US, "features", "build", "--domain", d], env)[:2]
    for d in DOMAINS:
        steps[("train", d)] = measure([US, "train", "--domain", d, "--profile", "quick"], env)[:2]
    maps = {}
    for d in DOMAINS:
        seconds, peak, text = measure([sys.executable, "-m", "bench.scaling", "--serve-one", d], env)
        maps[d] = json.loads(text.strip().splitlines()[-1])
        steps[("serve map", d)] = (maps[d]["map_s"], peak)
    return {"steps": steps, "cells": maps[DOMAINS[0]]["cells"], "maps": maps}


def report(results: dict[int, dict], years: int) -> None:
    grids = list(results)
    print(f"\nIncheon, {years} years of hourly data; time in seconds, peak memory in GB (each step's process)\n")
    print("| grid m | cells | " + " | ".join(f"{g} m" for g in grids) + " |")
    print("|---|---|" + "---|" * len(grids))
    print("| cells | | " + " | ".join(f"{results[g]['cells']:,}" for g in grids) + " |")
    head = "| step | domain | " + " | ".join(f"{g} m s / GB" for g in grids)
    growth = [f"{a}->{b} m: time x / cells x / memory x" for a, b in zip(grids[:-1], grids[1:], strict=True)]
    print("\n" + head + "".join(f" | {g}" for g in growth) + " |")
    print("|---|---|" + "---|" * (len(grids) + len(growth)))
    for key in results[grids[0]]["steps"]:
        cells = [f"{results[g]['steps'][key][0]:.1f} / {results[g]['steps'][key][1]:.2f}" for g in grids]
        ratios = []
        for a, b in zip(grids[:-1], grids[1:], strict=True):
            (ta, ma), (tb, mb) = results[a]["steps"][key], results[b]["steps"][key]
            ratios.append(f"{tb / max(ta, 1e-9):.1f} / {results[b]['cells'] / results[a]['cells']:.1f} / {mb / ma:.1f}")
        print(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + "".join(f" | {r}" for r in ratios) + " |")
    print("\nwhole-city map payload (GeoJSON bytes): " + "; ".join(
        f"{g} m: " + ", ".join(f"{d} {results[g]['maps'][d]['bytes'] / 1e6:.1f} MB" for d in DOMAINS) for g in grids))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grids", default="500,250,100")
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / ".scale")
    parser.add_argument("--keep", action="store_true", help="keep each grid's data and models")
    parser.add_argument("--serve-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_one:
        return serve_one(args.serve_one)
    results = {}
    for grid in (int(g) for g in args.grids.split(",")):
        print(f"grid {grid} m ...", flush=True)
        results[grid] = run_grid(grid, args.years, args.out)
        report(results, args.years)
        if not args.keep:
            shutil.rmtree(args.out / str(grid), ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark: the online feature path of every domain, as the service calls it.

For each domain: ``spec.serving.requests`` + ``spec.build_rows`` (the targets: one cell < 5 ms, all cells
< 100 ms after warm-up) and ``spec.serving.combine`` (with dummy predictions), on one cell and on every
cell of the grid, with the conditions given in full (each condition's example) and with only the
required ones (the rest read from the held observations). One long-lived Sources object, as in the
service; the first call of each domain (the per-Sources caches) is timed separately. Prints, asserts
nothing.

    .venv/bin/python bench/build_rows.py [--repeat 30] [--domain flood]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from features.registry import domains
from features.sources import Sources
from urban_safety.settings import Settings

TARGET_MS = {"one": 5.0, "all": 100.0}


def median_ms(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times)), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--domain", default="all")
    args = parser.parse_args()

    settings = Settings()
    src = Sources.from_settings(settings)
    started = time.perf_counter()
    names = sorted({s for spec in domains().values() for s in spec.sources})
    src.loaded(names)
    cells = src.grid.cells[["cell_id", "lat", "lon"]]
    print(f"data: {settings.raw_dir} ({len(cells)} cells, {settings.city_config.grid_m} m); "
          f"sources loaded in {time.perf_counter() - started:.1f} s; median of {args.repeat} calls")
    print(f"{'domain':<11} {'conditions':<10} {'cells':>5} {'rows':>5} {'requests':>9} {'build_rows':>11} "
          f"{'req+build':>10} {'combine':>8}  target")
    for name, spec in domains().items():
        if args.domain in ("all", name) and spec.serving is not None:
            bench_domain(spec, src, cells, args.repeat)


def bench_domain(spec, src, cells, repeat: int) -> None:
    sv = spec.serving
    started = time.perf_counter()
    at = sv.now(src)
    full = {c.name: c.example for c in sv.conditions}
    required = {c.name: c.example for c in sv.conditions if c.required}
    spec.build_rows(src, sv.requests(src, cells.iloc[:1], at, full))
    print(f"{spec.name}: now = {at}; first call (per-Sources caches) {time.perf_counter() - started:.2f} s")
    for label, conds in (("full", full), ("observed", required)):
        for size, cc in (("one", cells.iloc[[len(cells) // 2]]), ("all", cells)):
            def requests(cc=cc, conds=conds):
                return sv.requests(src, cc, at, conds)

            req_ms, req = median_ms(requests, repeat)
            build_ms, rows = median_ms(lambda req=req: spec.build_rows(src, req), repeat)
            both_ms, _ = median_ms(lambda requests=requests: spec.build_rows(src, requests()), repeat)
            pred = np.full(len(rows), 0.01)
            combine_ms, answers = median_ms(lambda rows=rows, pred=pred: sv.combine(rows, pred), repeat)
            ok = "ok" if both_ms < TARGET_MS[size] else "OVER"
            print(f"{spec.name:<11} {label:<10} {len(cc):>5} {len(rows):>5} {req_ms:>8.2f}  {build_ms:>10.2f}  "
                  f"{both_ms:>9.2f}  {combine_ms:>7.2f}  < {TARGET_MS[size]:g} ms {ok}")
            assert len(answers) == len(cc)


if __name__ == "__main__":
    main()

"""The earthquake impact alert's assessment (live/impact.py ``assess``) on 500 m and on 100 m grid cells,
against the promise of an alert within 60 s of a quake entering the store, "at 100 m too"; and where the
time goes.

The city (Pohang; Incheon with ``--city incheon``) is generated with only the earthquake domain
(features/domains/earthquake/record.py ``generate_city``) on each grid into ``--folder``/<city>-<grid>m,
kept and reused by later runs; generation time is printed apart (it is not alert time). The event is
Pohang 2017 (record.EVENTS["pohang2017"]: Mw 5.5, 36.12 N 129.36 E, 7 km, 14:29, day population) or for
Incheon the city's ready west-coast scenario (ML 5.5, 37.45 N 126.45 E, 10 km, at 03:00: night). Per
grid, each assessment unconditioned and conditioned on ``--stations`` strong-motion records:

- ``cold``: the first call on Sources fresh from disk (reading the raw CSVs, the grid, the cells' arrays,
  the building stock, the ground-motion blocks' Cholesky factor);
- ``snapshot``: the first call on ``Sources.replaced({})`` of a loaded Sources: what the live service has
  right after a quake or a record enters the store (serving/engine.py swaps in a new Sources object, whose
  per-Sources caches of features/timeseries.py ``memo`` are empty; the frames and the grid stay in memory);
- ``warm``: the median of ``--repeat`` calls on the same Sources.

The generator draws about PER_CELL buildings per cell (features/embedded/buildings.py) when the city's
``[totals]`` state no building count (Pohang's and Incheon's do not), so its 100 m register has some 25
times the buildings of its 500 m one, with the same total floor area; a real register does not grow with
the grid. So the last grid runs a second time (``<grid> m*``; ``--no-baseline-register`` skips it) with the
first grid's register, its buildings placed on the finer grid by their coordinates.

The records: stations at the centres of built cells of the first grid, spread over the city (farthest-point
sampling from the most built cell), the same places on every grid, each recording 2 x the unconditioned
median PGA of its nearest cell (features/domains/earthquake/consequences.py ``motion``). The 500 m figures
are the baseline of the 100 m ones, the unconditioned assessment the baseline of the conditioned one.

Memory: the process's peak RSS (``resource.getrusage`` ru_maxrss: a high-water mark, so cumulative over the
run, grids in the order given) after each grid, and tracemalloc's peak over one warm assessment (numpy's
arrays are traced: what one assessment allocates beyond what is held). Where the time goes: one warm
assessment per grid and records under cProfile, the cumulative seconds of the steps of ``consequences``;
``--profile`` also prints the top 15 functions by cumulative time of one warm conditioned assessment on
the last generated grid. PASS/FAIL: each finer grid's cold, snapshot and warm times against 60 s (the
store's ingest and the live cycle's polling come on top and are not measured here).

    .venv/bin/python bench/quake_alert.py [--city pohang|incheon] [--folder /tmp/quake_alert_bench]
        [--grids 500 100] [--repeat 3] [--stations 20] [--no-baseline-register] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import io
import pstats
import resource
import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from features.domains.earthquake import consequences as cq
from features.domains.earthquake import record
from features.sources import Sources
from features.spatial import haversine_km, nearest
from live import impact

TARGET_S = 60.0
EUK = record.EUK  # 억원 in KRW
_POHANG = record.EVENTS["pohang2017"].conditions
QUAKES = {
    "pohang": {"event_no": "KMA-20171115142931", "time": pd.Timestamp("2017-11-15 14:29:31"),
               "magnitude": _POHANG["magnitude"], "magnitude_type": _POHANG["magnitude_type"],
               "lat": _POHANG["epicentre_lat"], "lon": _POHANG["epicentre_lon"], "depth_km": _POHANG["depth_km"],
               "location": None},
    # incheon.toml's ready scenario "M5.5 under the west coast", at night
    "incheon": {"event_no": "BENCH-INCHEON-WEST", "time": pd.Timestamp("2026-03-01 03:00"), "magnitude": 5.5,
                "magnitude_type": "ML", "lat": 37.45, "lon": 126.45, "depth_km": 10.0, "location": None},
}
#: The steps of an assessment reported from the profile: (label, file suffix, function name).
STEPS = (
    ("assess (total)", "live/impact.py", "assess"),
    ("consequences", "earthquake/consequences.py", "consequences"),
    ("  building_stock", "earthquake/consequences.py", "building_stock"),
    ("  motion (BSSA14 per cell)", "earthquake/consequences.py", "motion"),
    ("  conditioning.condition", "earthquake/conditioning.py", "condition"),
    ("  occupants", "earthquake/consequences.py", "occupants"),
    ("  _exposure", "earthquake/consequences.py", "_exposure"),
    ("  motion_samples (fields)", "earthquake/consequences.py", "motion_samples"),
    ("    _blocks (Cholesky)", "earthquake/consequences.py", "_blocks"),
    ("    conditioned_samples", "earthquake/conditioning.py", "conditioned_samples"),
    ("  seismic.exceedance", "earthquake/seismic.py", "exceedance"),
    ("  _exact", "earthquake/consequences.py", "_exact"),
    ("  _quantities (einsum)", "earthquake/consequences.py", "_quantities"),
    ("  np.quantile (anywhere)", "numpy/lib/", "quantile"),
    ("  np.add.at (anywhere)", "~", "<method 'at' of 'numpy.ufunc' objects>"),
    ("  np.add.reduceat", "~", "<method 'reduceat' of 'numpy.ufunc' objects>"),
    ("  numpy.linalg.cholesky", "numpy/linalg/", "cholesky"),
    ("totals (city, districts)", "earthquake/consequences.py", "totals"),
)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def place_stations(src, count: int) -> pd.DataFrame:
    """``count`` station places (lat, lon) at built cells' centres, spread over the city: farthest-point
    sampling from the cell with the most buildings."""
    stock = cq.building_stock(src)
    built, per = np.unique(stock.cell, return_counts=True)
    cells = src.grid.cells.iloc[built]
    lat, lon = cells["lat"].to_numpy(), cells["lon"].to_numpy()
    chosen = [int(np.argmax(per))]
    far = haversine_km(lat, lon, lat[chosen[0]], lon[chosen[0]])
    while len(chosen) < min(count, len(built)):
        chosen.append(int(np.argmax(far)))
        far = np.minimum(far, haversine_km(lat, lon, lat[chosen[-1]], lon[chosen[-1]]))
    return pd.DataFrame({"station": [f"BENCH{i:02d}" for i in range(len(chosen))],
                         "lat": lat[chosen], "lon": lon[chosen]})


def station_records(src, quake: dict, places: pd.DataFrame) -> pd.DataFrame:
    """``quake_stations`` rows at ``places``: 2 x the unconditioned median PGA of each one's nearest cell."""
    gm = cq.motion(src, impact.conditions_of(quake))
    cells = src.grid.cells
    at = nearest(places["lat"].to_numpy(), places["lon"].to_numpy(), cells["lat"].to_numpy(), cells["lon"].to_numpy())
    return places.assign(event_no=quake["event_no"], pga_g=2.0 * np.exp(gm["ln_pga"])[at])[
        ["event_no", "station", "lat", "lon", "pga_g"]]


def steps_of(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds of :data:`STEPS` in a profile (summed over same-named functions)."""
    out = dict.fromkeys(label for label, _, _ in STEPS)
    for (file, _, name), (_, _, _, cum, _) in stats.stats.items():
        for label, suffix, fn in STEPS:
            if name == fn and suffix in file.replace("\\", "/"):
                out[label] = (out[label] or 0.0) + cum
    return out


def measure(make, quake: dict, records: pd.DataFrame | None, repeat: int, keep: bool = False) -> dict:
    """Cold, snapshot and warm times of ``assess`` on the Sources ``make()`` returns fresh (and its answer,
    tracemalloc peak and profile); ``keep``: the warm Sources too."""
    gc.collect()
    cold, first = timed(impact.assess, make(), quake, records)
    src = make()
    impact.assess(src, quake, records)  # loads the frames the assessment reads
    snapshot, _ = timed(impact.assess, src.replaced({}), quake, records)
    warm = []
    for _ in range(repeat):
        seconds, answer = timed(impact.assess, src, quake, records)
        warm.append(seconds)
    tracemalloc.start()
    tracemalloc.reset_peak()
    impact.assess(src, quake, records)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    profile = cProfile.Profile()
    profile.runcall(impact.assess, src, quake, records)
    same = first["deaths"] == answer["deaths"] and first["loss"] == answer["loss"]
    return {"cold": cold, "snapshot": snapshot, "warm": statistics.median(warm), "warm_all": warm,
            "traced_mb": peak, "answer": answer, "same": same, "profile": pstats.Stats(profile),
            **({"src": src} if keep else {})}


def describe(src, at) -> dict:
    """Counts of ``src``'s grid and stock: cells, built cells, buildings, the (cell, fragility group) pairs
    standing at ``at`` (what an assessment's work grows with) and the share of the population at ``at``'s
    hour in cells with a standing building (the rest is counted nowhere: people are placed in buildings)."""
    stock = cq.building_stock(src)
    up = cq.standing(stock, at)
    pairs = np.unique(stock.cell[up].astype(np.int64) * 10_000 + stock.group[up])
    column = "pop_day" if pd.Timestamp(at).hour in impact.DAY_HOURS else "pop_night"
    pop = np.nan_to_num(src.static[column].reindex(src.grid.cells["cell_id"]).to_numpy(dtype=float))
    housed = np.bincount(stock.cell[up], minlength=len(pop)) > 0
    return {"cells": len(src.grid.cells), "built": len(np.unique(stock.cell)), "buildings": len(stock),
            "pairs": len(pairs), "housed": pop[housed].sum() / pop.sum()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--city", choices=sorted(QUAKES), default="pohang")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/quake_alert_bench"),
                        help="where the cities are generated (kept and reused)")
    parser.add_argument("--grids", type=int, nargs="+", default=[500, 100], help="grid cell sizes (m), baseline first")
    parser.add_argument("--repeat", type=int, default=3, help="warm calls (the median is reported)")
    parser.add_argument("--stations", type=int, default=20)
    parser.add_argument("--baseline-register", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the last grid with the first grid's building register (its buildings placed "
                             "on the finer grid by their coordinates)")
    parser.add_argument("--profile", action="store_true",
                        help="print the top 15 functions by cumulative time of a warm conditioned assessment, last grid")
    args = parser.parse_args()
    quake = QUAKES[args.city]
    print(f"{args.city}: quake {quake['event_no']} {quake['magnitude']} {quake['magnitude_type']} at {quake['lat']} N "
          f"{quake['lon']} E, {quake['depth_km']} km, {quake['time']}; {cq.SAMPLES} fields; {args.stations} stations "
          "at 2 x the median PGA", flush=True)

    # The runs: each grid as generated; with --baseline-register, the last grid again with the first's register.
    runs, places, base_buildings = [], None, None
    for grid_m in args.grids:
        folder = args.folder / f"{args.city}-{grid_m}m"
        reused = (folder / "data" / "raw").exists()
        gen_s, settings = timed(record.generate_city, args.city, folder, 7, grid_m)
        gen = f"{gen_s:.1f} (reused)" if reused else f"{gen_s:.1f}"
        runs.append((f"{grid_m} m", grid_m, gen, functools.partial(Sources.from_settings, settings)))
        if base_buildings is None:
            base_buildings = Sources.from_settings(settings)["buildings"]
    if args.baseline_register and len(args.grids) > 1:
        _, grid_m, _, make = runs[-1]
        runs.append((f"{grid_m} m*", grid_m, "-", lambda make=make: make().replaced({"buildings": base_buildings})))

    grids, results = {}, {}
    for name, grid_m, gen, make in runs:
        probe = make()  # stations, counts; the timed runs get their own Sources
        if places is None:
            places = place_stations(probe, args.stations)
        records = station_records(probe, quake, places)
        grids[name] = {**describe(probe, quake["time"]), "gen": gen, "grid_m": grid_m,
                       "station_pga": (float(records["pga_g"].min()), float(records["pga_g"].max()))}
        del probe
        for label, recs in (("none", None), (f"{len(records)} st.", records)):
            keep = args.profile and name == f"{args.grids[-1]} m" and recs is not None
            results[name, label] = measure(make, quake, recs, args.repeat, keep)
            print(f"  measured {name}, records {label}: warm {results[name, label]['warm']:.2f} s", flush=True)
        grids[name]["rss"] = rss_mb()
        grids[name]["records"] = records

    base = runs[0][0]
    print(f"\n{'grid':>7} {'cells':>9} {'built':>8} {'buildings':>10} {'pairs':>10} {'housed':>7} {'generate s':>14} "
          f"{'peak RSS MB':>12} {'station PGA g':>14}")
    for name, g in grids.items():
        print(f"{name:>7} {g['cells']:>9,} {g['built']:>8,} {g['buildings']:>10,} {g['pairs']:>10,} {g['housed']:>7.1%} "
              f"{g['gen']:>14} {g['rss']:>12,.0f} {g['station_pga'][0]:>6.3f}-{g['station_pga'][1]:<7.3f}")
    print("pairs: (cell, fragility group) pairs of the buildings standing at the quake, what the sampled ranges loop "
          "over; housed: the share of the population at the quake's hour in cells with a standing building (the "
          "rest is counted nowhere); peak RSS: the process's high-water mark after the row's runs")
    if args.baseline_register and len(args.grids) > 1:
        print(f"{runs[-1][0]}: the {base} grid's register placed on the {runs[-1][1]} m grid by its coordinates (a real "
              "building register does not grow with the grid; the generator's, without a stated building count in "
              "the city's [totals], draws about features/embedded/buildings.py PER_CELL buildings per cell)")

    print(f"\nassess() seconds (warm: median of {args.repeat}); x{base}: warm over the {base} warm; x uncond.: warm "
          "over the same grid's unconditioned; traced: tracemalloc peak of one warm call")
    print(f"{'grid':>7} {'records':>8} {'cold':>8} {'snapshot':>9} {'warm':>8} {'warm min-max':>15} "
          f"{f'x{base}':>8} {'x uncond.':>9} {'traced MB':>10} {'60 s':>5}")
    for (name, label), r in results.items():
        ratio = r["warm"] / results[base, label]["warm"]
        cond = r["warm"] / results[name, "none"]["warm"]
        r["ok"] = max(r["cold"], r["snapshot"], r["warm"]) <= TARGET_S
        print(f"{name:>7} {label:>8} {r['cold']:>8.2f} {r['snapshot']:>9.2f} {r['warm']:>8.2f} "
              f"{min(r['warm_all']):>7.2f}-{max(r['warm_all']):<7.2f} {ratio:>8.1f} {cond:>9.2f} "
              f"{r['traced_mb']:>10,.0f} {'PASS' if r['ok'] else 'FAIL':>5}")

    print("\nwhere the time goes: cumulative seconds in one warm assessment (cProfile; indented rows are inside "
          "consequences, numpy rows wherever called)")
    keys = list(results)
    steps = {k: steps_of(results[k]["profile"]) for k in keys}
    print(f"{'':30}" + "".join(f"{f'{g} {lab}':>16}" for g, lab in keys))
    for label, _, _ in STEPS:
        row = [steps[k].get(label) for k in keys]
        print(f"{label:30}" + "".join(f"{'-' if v is None else f'{v:.2f}':>16}" for v in row))

    print(f"\nthe answer (PAGER colour; deaths and loss mean [5%, 95%]; loss in 억원; {quake['time']:%H:%M} "
          f"{'day' if quake['time'].hour in impact.DAY_HOURS else 'night'} population; same: the cold and warm "
          "answers equal)")
    print(f"{'grid':>7} {'records':>8} {'colour':>7} {'deaths':>24} {'injuries':>9} {'loss 억원':>26} "
          f"{'damaged':>9} {'max PGA g':>9} {'alert cells':>11} {'same':>5}")
    for (name, label), r in results.items():
        a = r["answer"]
        if not a["opens"]:
            print(f"{name:>7} {label:>8} no alert: {a['reason']}")
            continue
        d, loss = a["deaths"], {k: a["loss"][k] / EUK for k in ("mean", "p05", "p95")}
        print(f"{name:>7} {label:>8} {a['colour']:>7} {d['mean']:>7.2f} [{d['p05']:>6.2f}, {d['p95']:>6.2f}] "
              f"{a['injuries']['mean']:>9.1f} {loss['mean']:>8,.0f} [{loss['p05']:>6,.0f}, {loss['p95']:>7,.0f}] "
              f"{a['damaged_buildings']['mean']:>9,.0f} {a['max_pga_g']:>9.3f} {len(a['cells']):>11,} "
              f"{'yes' if r['same'] else 'NO':>5}")

    print()
    for name, _, _, _ in runs[1:]:
        rows = [r for (n, _), r in results.items() if n == name]
        slowest = max(max(r["cold"], r["snapshot"], r["warm"]) for r in rows)
        print(f"{name} against the {TARGET_S:.0f} s target (cold, snapshot and warm, with and without records; "
              f"slowest {slowest:.1f} s): {'PASS' if all(r['ok'] for r in rows) else 'FAIL'}")
    if args.profile:
        name, label = [k for k in keys if k[0] == f"{args.grids[-1]} m" and k[1] != "none"][0]
        r = results[name, label]
        profile = cProfile.Profile()
        profile.runcall(impact.assess, r["src"], quake, grids[name]["records"])
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(15)
        print(f"\nprofile of one warm {name} assessment with {label} records:\n{out.getvalue()}")


if __name__ == "__main__":
    main()

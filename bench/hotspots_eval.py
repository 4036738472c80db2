"""How well does each hotspot method pick next year's dangerous cells? The nested back-test of
training/hotspots.py on a city's accident history, with Cheng and Washington's criteria.

Rolling yearly splits: each method refitted on the record before 1 January of year y and scored on year y.
Printed per split and method: the share of the year's accidents and ECLO in the top 5% of cells and in the
top 100 (95% bootstrap intervals), the site consistency test (SCT: the year's accidents at the top-5%
cells; higher is better), the method consistency test (MCT: top-5% cells flagged again a year later;
higher is steadier) and the total rank difference (TRDT: lower is steadier). Then the nested choice: the
default is picked on the splits before the last (the service's rule, serving/hotspots.py) and judged on the
last, against the best of past counts and Empirical Bayes there. With the generator's truth at hand
(``traffic_truth_cells.parquet``), the ranking by the true yearly rates is printed as the bound.

Last, the answer time of next year's forecast as ``POST /hotspots`` computes it (serving/hotspots.py, top 1000
cells explained): the first question on a fresh data snapshot (the records loaded, every method fitted and
the back-test run) and a repeated one (median of 5), against the floor of ranking by past counts alone
(a pandas group-by of the records).

    .venv/bin/python -m bench.hotspots_eval                       # the settings' data
    .venv/bin/urban-safety data generate --years 6 (with URBAN_SAFETY_DATA_DIR=/tmp/six)
    .venv/bin/python -m bench.hotspots_eval --data-dir /tmp/six   # six generated years, drifting cell rates
    .venv/bin/python -m bench.hotspots_eval --data-dir <an imported accident history>
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from features.domains.traffic import forecast as fc
from features.sources import Sources
from serving import hotspots as sh
from training import hotspots as hm
from urban_safety.settings import get_settings

REFERENCES = ("counts", "counts_3y", "eb")


def _ci(row, col: str) -> str:
    if pd.isna(row.get(col)):
        return "-"
    return f"{row[col]:.1%} [{row[col + '_lo']:.1%}, {row[col + '_hi']:.1%}]"


def truth_share(settings, src, a: pd.Timestamp) -> float | None:
    """The year's accident share at the top 5% of cells by the generator's true rates of that year."""
    path = Path(settings.truth_dir) / "traffic_truth_cells.parquet"
    if not path.exists():
        return None
    truth = pd.read_parquet(path)
    if "year" not in truth:
        return None
    base = truth[truth["year"] == a.year].set_index("cell_id")["base"].reindex(src.grid.cells["cell_id"])
    ranked = hm.order(base.to_numpy(float))[: int(np.ceil(hm.TOP_SHARE * len(base)))]
    acc = fc.records(src)
    year = acc[(acc["time"] >= a) & (acc["time"] < a + pd.DateOffset(years=1))]
    return float(np.isin(year["cell_pos"], ranked).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, help="a data folder (default: the settings')")
    parser.add_argument("--timing-only", action="store_true", help="only the answer time of next year's forecast")
    args = parser.parse_args()
    console = Console(width=200)
    settings = get_settings() if args.data_dir is None else get_settings().model_copy(update={"data_dir": args.data_dir})
    if args.timing_only:
        timing(settings, console)
        return
    src = Sources.from_settings(settings)
    first, end = fc.record_span(src)
    started = time.perf_counter()
    results = hm.backtest(src)
    seconds = time.perf_counter() - started
    n = len(src.grid.cells)
    out = Table(title=f"traffic hotspot methods, {src.city.name}: record {first:%Y-%m-%d} .. {end:%Y-%m-%d}, {n:,} cells "
                      f"(top 5% = {int(np.ceil(hm.TOP_SHARE * n))} cells)")
    for col in ("year", "method", "accidents", "top 5% accidents", "top 5% ECLO", f"top {hm.TOP_N} accidents",
                f"top {hm.TOP_N} ECLO", "SCT", "MCT", "TRDT"):
        out.add_column(col, justify="left" if col in ("year", "method") else "right")
    for a, group in results.groupby("as_of", sort=True):
        bound = truth_share(settings, src, a)
        for row in group.to_dict("records"):
            if not row["fitted"]:
                out.add_row(f"{a:%Y}", row["method"], f"{row['accidents']:,}", "not fitted", *[""] * 6)
                continue
            out.add_row(f"{a:%Y}", row["method"], f"{row['accidents']:,}", _ci(row, "top5_accidents"),
                        _ci(row, "top5_eclo"), _ci(row, f"top{hm.TOP_N}_accidents"), _ci(row, f"top{hm.TOP_N}_eclo"),
                        f"{int(row['sct']):,}", "-" if pd.isna(row.get("mct")) else f"{int(row['mct'])}",
                        "-" if pd.isna(row.get("trdt")) else f"{int(row['trdt']):,}")
        if bound is not None:
            out.add_row(f"{a:%Y}", "truth (bound)", "", f"{bound:.1%}", *[""] * 6)
        out.add_section()
    console.print(out)
    console.print(f"back-test: {results['as_of'].nunique()} splits x {len(hm.METHODS)} methods in {seconds:.1f} s",
                  highlight=False)

    splits = sorted(results["as_of"].unique())
    if len(splits) < 2:
        console.print("nested choice: needs at least two splits (three years of record)", highlight=False)
        return
    last = splits[-1]
    method, reason = hm.choose(results[results["as_of"] < last])
    judged = results[results["as_of"] == last].set_index("method")
    chosen = judged.loc[method]
    refs = judged.loc[[m for m in REFERENCES if judged.loc[m, "fitted"]]]
    best = refs["top5_accidents"].idxmax()
    console.print(f"nested: default chosen on {', '.join(f'{a:%Y}' for a in splits[:-1])}: {method} ({reason})",
                  highlight=False)
    verdict = "at least as good" if chosen["top5_accidents"] >= refs.loc[best, "top5_accidents_lo"] else "WORSE"
    console.print(f"judged on {last:%Y}: {method} {_ci(chosen, 'top5_accidents')} against the best of past counts and "
                  f"EB, {best} {_ci(refs.loc[best], 'top5_accidents')}: {verdict}", highlight=False)
    timing(settings, console)


def timing(settings, console) -> None:
    """Next year's forecast: the first answer on a fresh snapshot, the warm answer, and the counts floor."""
    fc.forget()  # nothing fitted: as after a start
    src = Sources.from_settings(settings)
    started = time.perf_counter()
    _, newest = fc.record_span(src)
    load = time.perf_counter() - started
    end = newest + pd.DateOffset(years=1)

    def answer():
        result = sh.rank(src, newest, end)
        sh.explain(src, result, 1000)
        return result

    started = time.perf_counter()
    result = answer()
    first = time.perf_counter() - started
    warm = []
    for _ in range(5):
        started = time.perf_counter()
        answer()
        warm.append(time.perf_counter() - started)
    floor = []
    for _ in range(5):
        started = time.perf_counter()
        acc = src["taas"]
        acc.groupby([acc["lat"].round(3), acc["lon"].round(3)]).size().nlargest(1000)
        floor.append(time.perf_counter() - started)
    console.print(f"next year's forecast ({newest:%Y-%m-%d} .. {end:%Y-%m-%d}, {len(src.grid.cells):,} cells at "
                  f"{src.city.grid_m} m, method {result.method}): records loaded {load:.2f} s; first answer "
                  f"{first:.2f} s; warm answer {np.median(warm):.3f} s (median of 5); floor, past counts by a pandas "
                  f"group-by: {np.median(floor):.3f} s", highlight=False)


if __name__ == "__main__":
    main()

"""The earthquake consequences against Korea's record: Pohang 2017 (calibration) and Gyeongju 2016 (out of
sample), each on its built-in city generated with the earthquake sources only.

    .venv/bin/python bench/quake_record.py [--folder DIR] [--fit] [--retrofit]

Prints, per event, the model's mean and 5-95% range beside the record and the band. ``--fit`` refits the
three Korean factors of features/domains/earthquake/consequences.py on Pohang 2017 alone (the capacity
factor to the loss, then the casualty factor to the injuries and the moderate-damage displacement to the
displaced, each within its range) and prints them; copy them into the module by hand. ``--retrofit``
prints the expected annual loss and casualties of the retrofit ranking on Pohang for 40, 100, 400 and
1,000 scenarios (the quadrature's agreement).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from features.domains.earthquake import consequences as cq
from features.domains.earthquake import record
from features.sources import Sources


def table(event: record.Event, result: dict) -> None:
    ok = record.inside(event, result)
    print(f"\n{event.name}: {event.conditions} ({event.population} population)")
    print(f"  {'':10} {'model mean':>12} {'5-95% range':>24} {'record':>10} {'band':>20}  in band")
    for q in record.QUANTITIES:
        f = record.EUK if q == "loss_krw" else 1.0
        unit = "억원" if q == "loss_krw" else ""
        mean, lo, hi = (v / f for v in result[q])
        band = tuple(v / f for v in event.bands[q])
        print(f"  {q:10} {mean:>10,.1f}{unit:2} [{lo:>9,.1f}, {hi:>10,.1f}] {event.record[q] / f:>10,.0f} "
              f"[{band[0]:>7,.0f}, {band[1]:>7,.0f}]  {'yes' if ok[q] else 'NO'}")


def fit(event: record.Event, src) -> None:
    """Bisection on the capacity factor (loss falls as it grows), then the two linear factors."""
    target = event.record
    lo, hi = cq.CALIBRATION_RANGES["CAPACITY_FACTOR"]
    for _ in range(14):
        cq.CAPACITY_FACTOR = float(np.sqrt(lo * hi))
        loss = record.run(event, src)["loss_krw"][0]
        lo, hi = (cq.CAPACITY_FACTOR, hi) if loss > target["loss_krw"] else (lo, cq.CAPACITY_FACTOR)
    cq.CASUALTY_FACTOR = 1.0
    cq.MODERATE_DISPLACED = 0.0
    base = record.run(event, src)
    cq.MODERATE_DISPLACED = 1.0
    full = record.run(event, src)["displaced"][0]
    casualty = target["injuries"] / base["injuries"][0]
    moderate = (target["displaced"] - base["displaced"][0]) / max(full - base["displaced"][0], 1e-9)
    print(f"\nfit on {event.name}: CAPACITY_FACTOR = {cq.CAPACITY_FACTOR:.3g}, CASUALTY_FACTOR = {casualty:.3g}, "
          f"MODERATE_DISPLACED = {moderate:.3g} (ranges {cq.CALIBRATION_RANGES})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=None, help="where the two cities are generated (kept)")
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--retrofit", action="store_true")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="quake-record-"))
    sources = {name: Sources.from_settings(record.generate_city(e.city, folder / e.city))
               for name, e in record.EVENTS.items()}
    print(f"factors: CAPACITY_FACTOR {cq.CAPACITY_FACTOR}, CASUALTY_FACTOR {cq.CASUALTY_FACTOR}, "
          f"MODERATE_DISPLACED {cq.MODERATE_DISPLACED}; {cq.SAMPLES} ground-motion fields")
    if args.retrofit:
        from features.domains.earthquake import retrofit as rf

        src = sources["pohang2017"]
        base = None
        for count in (1000, 400, 100, 40):
            ranked = rf.priorities(src, rf.scenario_set(src, count))
            loss, people = ranked["expected_annual_loss_krw"].sum(), ranked["expected_annual_casualties"].sum()
            base = base or (loss, people)
            print(f"{count:>5} scenarios: expected annual loss {loss / record.EUK:,.2f}억원 ({loss / base[0] - 1:+.1%} "
                  f"vs 1,000), casualties {people:.4f}/yr ({people / base[1] - 1:+.1%})")
        return
    if args.fit:
        fit(record.EVENTS["pohang2017"], sources["pohang2017"])
        return
    for name, event in record.EVENTS.items():
        table(event, record.run(event, sources[name]))


if __name__ == "__main__":
    main()

"""The monthly district hotspot report: for a month, each district's expected accidents and ECLO and its top
cells with their dominant accident types, and what changed since the last report in the same folder.

Files: ``hotspots_report_YYYY-MM.md`` (for people) and ``hotspots_report_YYYY-MM.csv`` (the listed cells, one
row each; the next report compares against it). Both are written whole or not at all.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from features.domains.traffic import forecast as fc
from features.store import atomic_path
from serving import hotspots as sh

PER_DISTRICT = 5  # cells listed per district
NAME = re.compile(r"hotspots_report_(\d{4})-(\d{2})\.csv$")


def previous(out: Path, month: pd.Timestamp) -> tuple[pd.Timestamp, pd.DataFrame] | None:
    """The newest earlier report's month and cells in ``out`` (None: no earlier report)."""
    found = []
    for path in Path(out).glob("hotspots_report_*.csv"):
        m = NAME.search(path.name)
        if m and (when := pd.Timestamp(year=int(m[1]), month=int(m[2]), day=1)) < month:
            found.append((when, path))
    if not found:
        return None
    when, path = max(found)
    return when, pd.read_csv(path, encoding="utf-8-sig")


def cells_of(src, result: sh.Hotspots) -> pd.DataFrame:
    """Each district's top :data:`PER_DISTRICT` cells of a cell ranking, with their dominant accident type."""
    top = result.ranked.groupby("district", sort=False).head(PER_DISTRICT).copy()
    top["district_rank"] = top.groupby("district", sort=False).cumcount() + 1
    types = fc.dominant_types(src, top["cell_pos"].to_numpy(), result.as_of)
    top["dominant_type"] = [(t["accident_type"] or {}).get("value") for t in types]
    top["dominant_road"] = [(t["road_type"] or {}).get("value") for t in types]
    top["dominant_time"] = [(t["time_of_day"] or {}).get("value") for t in types]
    cols = ["district", "district_rank", "rank", "cell_id", "dong", "expected_accidents", "expected_eclo",
            "expected_frequency_tier", "expected_severity_tier", "expected_scale_tier", "dominant_type",
            "dominant_road", "dominant_time"]
    return top[cols].sort_values(["district", "district_rank"], ignore_index=True)


def write(src, month, out: Path, as_of=None, by: sh.RankBy = "eclo", method: str = "auto") -> Path:
    """Write the report for the month starting ``month`` into ``out``; returns the Markdown file's path."""
    month = pd.Timestamp(month).normalize().replace(day=1)
    end = month + pd.DateOffset(months=1)
    cells = sh.rank(src, month, end, as_of, by, method, "cell")
    districts = sh.rank(src, month, end, cells.as_of, by, cells.method, "district")
    listed = cells_of(src, cells)
    last = previous(out, month)
    lines = [f"# Traffic hotspots, {month:%Y-%m} ({src.city.name})", "",
             f"Forecast for {month:%Y-%m-%d} .. {end:%Y-%m-%d} from the accident record before {cells.as_of:%Y-%m-%d}; "
             f"method {cells.method} ({cells.method_reason}); ranked by expected {'ECLO' if by == 'eclo' else 'accidents'}.",
             *(f"Note: {n}" for n in cells.notes), "", "## Districts", "",
             "| rank | district | expected accidents | expected ECLO | cells |", "|---:|---|---:|---:|---:|"]
    for row in districts.ranked.to_dict("records"):
        lines.append(f"| {row['rank']} | {row['district']} | {row['expected_accidents']:.1f} | "
                     f"{row['expected_eclo']:.1f} | {row['cells']} |")
    lines += ["", f"## Top {PER_DISTRICT} cells per district", "",
              "| district | # | cell | 동 | expected accidents | expected ECLO | tiers F/S/S | dominant type | road | time |",
              "|---|---:|---|---|---:|---:|---|---|---|---|"]
    for row in listed.to_dict("records"):
        tiers = "/".join(str(row[f"expected_{a}_tier"]) for a in sh.AXES)
        lines.append(f"| {row['district']} | {row['district_rank']} | {row['cell_id']} | {row['dong']} | "
                     f"{row['expected_accidents']:.2f} | {row['expected_eclo']:.1f} | {tiers} | {row['dominant_type']} | "
                     f"{row['dominant_road']} | {row['dominant_time']} |")
    lines += ["", "## Change against the last report", ""]
    if last is None:
        lines.append("No earlier report in this folder.")
    else:
        when, before = last
        was = set(before["cell_id"])
        now = set(listed["cell_id"])
        lines.append(f"Against {when:%Y-%m}: {len(now - was)} cells new to the lists, {len(was - now)} left them.")
        for cid in sorted(now - was):
            row = listed[listed["cell_id"] == cid].iloc[0]
            lines.append(f"- new: {cid} ({row['district']} {row['dong']}), #{row['district_rank']} in its district")
        for cid in sorted(was - now):
            row = before[before["cell_id"] == cid].iloc[0]
            lines.append(f"- left: {cid} ({row['district']} {row['dong']}), was #{row['district_rank']}")
    md = Path(out) / f"hotspots_report_{month:%Y-%m}.md"
    with atomic_path(md.with_suffix(".csv")) as tmp:
        listed.to_csv(tmp, index=False, encoding="utf-8-sig")
    with atomic_path(md) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return md

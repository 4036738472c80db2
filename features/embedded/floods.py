"""Flood onsets per cell and hour from rain over drain capacity, high tide and swollen streams.

The hourly onset hazard ``h(c, i)`` (onset within the hour ending at stamp ``i``) is the true process;
onsets are sampled from it (at most one per cell per 24 h), written as flood trace records, and for each
lead time ``L`` in :data:`LEADS` the probability of an onset within ``L`` hours,
``p_L(c, t) = 1 - prod_{k <= L} (1 - h(c, t + k))``, is kept as the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.embedded.geo import random_points, sigungu_codes
from features.embedded.period import Period
from features.grid import Grid

K_RAIN = 0.015  # onset intensity when rain equals drain capacity on an average cell
K_SEA = 0.004  # at the city's sea-flood reference tide (Incheon: 950 cm) on a low reclaimed cell at the shore
K_STREAM = 0.02  # at 180 mm in 24 h beside a stream
CAUSES = np.array(["집중호우", "해수범람(만조)", "하천범람"], dtype=object)
LEADS = (1, 3, 6)  # the flood model's lead times (h): one truth column ``p_flood_<L>h`` each
CHUNK = 256  # hours per block: (256 x 2,208) float32 blocks keep memory small


@dataclass(frozen=True)
class FloodResult:
    traces: pd.DataFrame  # FLUD_TRACE columns + year
    truth: pd.DataFrame  # cell_id, time, p_flood_1h, p_flood_3h, p_flood_6h
    onsets: int


def _rolling(a: np.ndarray, hours: int) -> np.ndarray:
    c = np.cumsum(np.vstack([np.zeros((1, a.shape[1])), a]), axis=0)
    return c[1:] - c[np.maximum(np.arange(1, len(a) + 1) - hours, 0)]


def _cell_weights(static: pd.DataFrame, area_factor: float) -> dict[str, np.ndarray]:
    """Per-cell susceptibility to each flood cause (independent of time)."""
    imp, elev = static["impervious_share"].to_numpy(), static["elevation_m"].to_numpy()
    slope, manholes = static["slope_deg"].to_numpy(), static["manhole_density_km2"].to_numpy()
    coast, stream = static["dist_coast_m"].to_numpy(), static["dist_stream_m"].to_numpy()
    rain_w = np.exp(1.8 * (imp - 0.6) + 0.9 * np.exp(-elev / 8) - 0.35 * np.log1p(slope)
                    - 0.4 * (manholes / 60 - 1))
    # Inland (no coast: blank distance) means no sea flooding.
    sea_w = (elev < 4) * np.exp(-np.nan_to_num(coast, nan=np.inf) / 700) * (1 + static["reclaimed"].to_numpy())
    stream_w = (stream < 300) * np.exp(-stream / 150) * (1 + (elev < 15))
    return {"rain": (rain_w * area_factor).astype(np.float32), "sea": (sea_w * area_factor).astype(np.float32),
            "stream": (stream_w * area_factor).astype(np.float32),
            "cap": static["drain_capacity_mmh"].to_numpy().astype(np.float32)}


def _hazard(w, r1, r3, r24, tide, sea_cm) -> tuple[np.ndarray, np.ndarray]:
    """Onset probability and dominant cause for a block of hours (rows) by cells (columns); the sea floods
    above ``sea_cm[0]`` and reaches ``K_SEA`` at ``sea_cm[1]``."""
    x = np.maximum(r1, r3 / 1.8) / w["cap"]
    lam_r = K_RAIN * w["rain"] * x ** 4
    sea = np.where(tide > sea_cm[0], np.exp((tide - sea_cm[1]) / 8), 0)
    lam_s = K_SEA * w["sea"] * sea[:, None].astype(np.float32)
    lam_st = K_STREAM * w["stream"] * (np.clip(r24 - 120, 0, None) / 60) ** 2
    parts = np.stack([lam_r, lam_s, lam_st])
    return (1 - np.exp(-parts.sum(axis=0))).astype(np.float32), parts.argmax(axis=0)


def simulate_floods(grid: Grid, static: pd.DataFrame, station_of_cell: np.ndarray, rain: np.ndarray,
                    tide_obs: np.ndarray | None, sea_cm: tuple[float, float] | None, period: Period,
                    rng: np.random.Generator) -> FloodResult:
    """Sample flood onsets and compute the truth.

    ``station_of_cell`` indexes columns of ``rain`` (hours, stations): each cell's nearest station.
    ``tide_obs`` (cm, per hour) floods low coastal cells above ``sea_cm`` (from, reference level); a city
    without a tide gauge passes None for both and floods from rain and streams only.
    """
    n, ncell = period.n, len(static)
    if tide_obs is None or sea_cm is None:
        tide_obs, sea_cm = np.full(n, -np.inf), (np.inf, np.inf)
    w = _cell_weights(static, (grid.size_m / 500) ** 2)
    used = np.unique(station_of_cell)
    col = np.searchsorted(used, station_of_cell)
    r1 = rain[:, used].astype(np.float32)
    r3, r24 = _rolling(r1, 3).astype(np.float32), _rolling(r1, 24).astype(np.float32)
    active = np.flatnonzero((r1 > 0).any(axis=1) | (tide_obs > sea_cm[0]) | (r24 > 120).any(axis=1))

    rows = np.full(n + max(LEADS) + 1, len(active), dtype=np.int64)  # hour -> row of H; the extra row is all zero
    rows[active] = np.arange(len(active))
    haz = np.zeros((len(active) + 1, ncell), dtype=np.float32)
    found = []
    for b in range(0, len(active), CHUNK):
        hrs = active[b:b + CHUNK]
        h, cause = _hazard(w, r1[hrs][:, col], r3[hrs][:, col], r24[hrs][:, col], tide_obs[hrs], sea_cm)
        haz[b:b + len(hrs)] = h
        ti, ci = np.nonzero(rng.random(h.shape, dtype=np.float32) < h)
        found.append((hrs[ti], ci, cause[ti, ci], r1[hrs[ti], col[ci]] / w["cap"][ci]))
    hour, cell, cause, excess = (np.concatenate(a) for a in zip(*found, strict=True)) if found else \
        (np.zeros(0, np.int64),) * 4
    keep = _one_per_day(hour, cell)
    traces = _traces(grid, static, period, hour[keep], cell[keep], cause[keep], excess[keep], rng)
    return FloodResult(traces, _truth(haz, rows, active, static, period), int(keep.sum()))


def _one_per_day(hour: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Keep an onset only if the cell's previous kept onset is at least 24 h earlier."""
    keep = np.zeros(len(hour), dtype=bool)
    last: dict[int, int] = {}
    for k in np.lexsort((hour, cell)):
        c, h = int(cell[k]), int(hour[k])
        if h - last.get(c, -10**9) >= 24:
            keep[k], last[c] = True, h
    return keep


def _truth(haz, rows, active, static, period) -> pd.DataFrame:
    """Sparse ``p_flood_<L>h`` per lead at issue stamps whose next hours include an active hour; a (cell,
    stamp) is kept when its longest-lead probability (the largest) reaches 1e-4."""
    n, longest = period.n, max(LEADS)
    issue = np.unique(np.concatenate([active - k for k in range(1, longest + 1)]))
    issue = issue[(issue >= 0) & (issue < n)]
    out_t, out_c, out_p = [], [], {lead: [] for lead in LEADS}
    for b in range(0, len(issue), CHUNK):
        t = issue[b:b + CHUNK]
        survive = np.ones((len(t), haz.shape[1]), dtype=np.float32)
        by_lead = {}
        for k in range(1, longest + 1):
            survive *= 1 - haz[rows[t + k]]
            if k in LEADS:
                by_lead[k] = 1 - survive
        ti, ci = np.nonzero(by_lead[longest] >= 1e-4)
        out_t.append(t[ti])
        out_c.append(ci)
        for lead in LEADS:
            out_p[lead].append(by_lead[lead][ti, ci].astype(np.float32))
    t, c = np.concatenate(out_t), np.concatenate(out_c)
    return pd.DataFrame({"cell_id": static["cell_id"].to_numpy()[c], "time": period.stamps[t],
                         **{f"p_flood_{lead}h": np.concatenate(out_p[lead]) for lead in LEADS}})


def _traces(grid, static, period, hour, cell, cause, excess, rng) -> pd.DataFrame:
    """Flood trace records: a point in the cell, depth, grade, cause, dates, district and dong codes."""
    order = np.argsort(hour, kind="stable")
    hour, cell, cause, excess = hour[order], cell[order], cause[order], excess[order]
    m = len(hour)
    depth = np.select([cause == 0, cause == 1], [0.1 + 0.25 * np.clip(excess, 0.3, 3) * rng.lognormal(0, 0.5, m),
                                                  rng.uniform(0.2, 1.0, m)], rng.uniform(0.3, 1.5, m))
    grade = np.digitize(depth, [0.3, 0.5, 1.0]) + 1
    duration = np.select([cause == 0, cause == 1], [rng.uniform(2, 12, m), rng.uniform(2, 4, m)],
                         rng.uniform(6, 48, m))
    onset = period.stamps[hour]
    end = onset + pd.to_timedelta(duration, unit="h")
    lat, lon = random_points(grid, cell, rng)
    cells = grid.cells
    sgg = sigungu_codes(grid)[cell]
    depth_txt = np.where(rng.random(m) < 0.05, "-", np.char.mod("%.2f", depth)).astype(object)
    return pd.DataFrame({
        "FLUD_SHIM": depth_txt, "FLUD_GD": grade, "FLUD_YEAR": onset.year, "FLUD_NM2": CAUSES[cause],
        "SAT_DATE": onset.strftime("%Y%m%d"), "END_DATE": end.strftime("%Y%m%d"),
        "SAT_TM": onset.strftime("%H"), "SGG_CD": sgg, "EMD_CD": cells["dong_code"].to_numpy()[cell].astype(np.int64),
        "geometry": [f"POINT ({x:.6f} {y:.6f})" for x, y in zip(lon, lat, strict=True)],
        "year": onset.year,
    })

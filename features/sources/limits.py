"""The one table of physical limits: per measured element, its unit, what is possible and what is extreme.

- Hard limits: what is physically possible (or possible in Korea, where a Korean fact bounds it). A value
  beyond them is refused by the canonical schema (``features/sources/canonical.py``), with the file, row
  and field, like any other bad value.
- Warning thresholds: plausible but extreme values. ``urban-safety data check`` and ``data import`` list
  them as problems to look at (``features/sources/check.py``); they load.

Every canonical schema takes its bounds for these elements from here (tests/features/sources/test_limits.py
fails on a schema keeping a literal bound of its own), and the embedded generator clips what its city config
could push beyond them (``clip``). Figures cited are records as published; "chosen" marks a judgement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa


@dataclass(frozen=True)
class Limit:
    """Hard limits ``low``..``high`` (inclusive) and optional warning thresholds, all in ``unit``."""

    unit: str
    low: float
    high: float
    warn_low: float | None = None  # values below this are extreme (warned), None: no low warning
    warn_high: float | None = None  # values above this are extreme (warned), None: no high warning

    @property
    def bounds(self) -> tuple[float, float]:
        """The hard limits as floats (e.g. an API condition's minimum and maximum)."""
        return float(self.low), float(self.high)

    def check(self) -> pa.Check:
        """The schema check of the hard limits."""
        return pa.Check.in_range(self.low, self.high)

    def excess(self, values) -> np.ndarray:
        """How far (in ``unit``) each value lies beyond its warning threshold; 0 within them, and for NaN."""
        v = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
        out = np.zeros(len(v))
        if self.warn_low is not None:
            out = np.fmax(out, self.warn_low - v)
        if self.warn_high is not None:
            out = np.fmax(out, v - self.warn_high)
        return out

    def extreme(self, values) -> np.ndarray:
        """Boolean mask: values beyond a warning threshold (plausible but extreme; NaN: False)."""
        return self.excess(values) > 0

    def warning_text(self) -> str:
        """The warning thresholds in words, e.g. "above 150 mm"."""
        parts = [f"below {self.warn_low:g} {self.unit}" if self.warn_low is not None else "",
                 f"above {self.warn_high:g} {self.unit}" if self.warn_high is not None else ""]
        return " or ".join(p for p in parts if p)


#: Canonical column -> its limits. Keys are the canonical column names the schemas use.
LIMITS: dict[str, Limit] = {
    # Air temperature, hourly. Korea's records: 41.0 °C at Hongcheon (1 Aug 2018) and -32.6 °C at Yangpyeong
    # (5 Jan 1981). Hard limits chosen about 8 °C beyond them; warnings chosen near them.
    "temp_c": Limit("°C", -40, 50, warn_low=-30, warn_high=40),
    # Hourly rain (and the nowcast's hourly forecast). Korea's long-standing hourly record is 145 mm at
    # Suncheon (31 Jul 1998); warning chosen just above it, hard limit chosen as about twice it.
    "rain_mm": Limit("mm", 0, 300, warn_high=150),
    # Wind speed (KMA prints a 10-minute mean). Korea's strongest gust on record is 60.0 m/s at Gosan, Jeju
    # (Typhoon Maemi, 2003); hard limit chosen above it. Warning chosen at 40 m/s, well beyond hurricane force
    # on the Beaufort scale (32.7 m/s).
    "wind_ms": Limit("m/s", 0, 75, warn_high=40),
    # Wind direction: degrees from north by definition (KMA prints 360 for north, 0 for calm).
    "wind_dir_deg": Limit("deg", 0, 360),
    # Relative humidity: a percentage by definition.
    "humidity_pct": Limit("%", 0, 100),
    # Sea-level pressure, or station pressure where the export has none (features/sources/loaders/kma.py).
    # Low chosen for station pressure on Korea's highest ground in a deep low (the standard atmosphere gives
    # 795 hPa at 2,000 m); high chosen above the world's highest sea-level pressure (about 1,084 hPa).
    # No warning: station pressure depends on the barometer's height, so no one threshold is extreme.
    "pressure_hpa": Limit("hPa", 750, 1100),
    # Snow depth. Korea's deepest on record is 293.6 cm at Ulleungdo (1962); hard limit chosen a third above
    # it, warning chosen at 100 cm.
    "snow_cm": Limit("cm", 0, 400, warn_high=100),
    # Hourly PM10 and PM2.5 (µg/m³). Chosen: yellow-dust hours reach several hundred µg/m³ of PM10, so
    # warnings at 1,000 (PM10) and 500 (PM2.5), hard limits twice that.
    "pm10": Limit("µg/m³", 0, 2000, warn_high=1000),
    "pm25": Limit("µg/m³", 0, 1000, warn_high=500),
    # Earthquake magnitude (KMA ML). The largest earthquake measured is Mw 9.5 (Chile, 1960): hard limits
    # chosen at 0 and 10. Korea's instrumental record is ML 5.8 (Gyeongju, 12 Sep 2016); warning chosen at 7.0, the
    # top of the generated scenario sets (features/embedded/quakes.py SCENARIO_ML).
    "magnitude": Limit("ML", 0, 10, warn_high=7.0),
    # Hypocentre depth: the deepest earthquakes are about 700 km deep. No warning: deep-focus events under
    # the East Sea are real.
    "depth_km": Limit("km", 0, 700),
    # Peak ground acceleration of a strong-motion record (g). The largest recorded is about 4 g (2008
    # Iwate-Miyagi Nairiku, KiK-net IWTH25, 4,022 gal from three components): warning chosen at 2 g, hard
    # limit at 10 g.
    "pga_g": Limit("g", 0, 10, warn_high=2.0),
    # Storeys above ground. Korea's tallest building, Lotte World Tower (555 m), has 123: warning above; hard
    # limit chosen at 200. Below ground: chosen at 20 (no warning).
    "floors_above": Limit("storeys", 0, 200, warn_high=123),
    "floors_below": Limit("storeys", 0, 20),
    # Flood trace depth. Chosen: warning above 5 m (water over a two-storey house), hard limit 20 m.
    "depth_m": Limit("m", 0, 20, warn_high=5),
    # Tide level on a KHOA gauge's datum (about the lowest low water). Chosen: Incheon's spring high waters
    # reach about 1,000 cm on its datum (its alert steps are 886-1,000 cm), the largest range in Korea; the
    # limits leave room for surge and for datums below the lowest water. No warning: alert steps are per gauge.
    "tide_cm": Limit("cm", -200, 1200),
    # Cell mean elevation. Korea's highest point is Hallasan, 1,947 m: above 1,950 m is impossible. Low chosen:
    # reclaimed land and polders lie at most a few metres below sea level. Warning above 1,500 m: only a few
    # summits (Hallasan, Jirisan 1,915 m, Seoraksan 1,708 m among them) rise above it.
    "elevation_m": Limit("m", -10, 1950, warn_high=1500),
    # Cell mean slope: an angle from the horizontal, 0-90° by definition; warning chosen above 45° (a cliff,
    # not a cell's mean).
    "slope_deg": Limit("deg", 0, 90, warn_high=45),
    # Shares of a cell's area: 0-1 by definition.
    "impervious_share": Limit("share", 0, 1),
    "commercial_share": Limit("share", 0, 1),
    # Sewer design capacity as rain intensity. Hard limit chosen at 200 mm/h; warning chosen above 150 mm/h,
    # beyond Korea's hourly rain record (see rain_mm): such a design is more likely a unit error.
    "drain_capacity_mmh": Limit("mm/h", 0, 200, warn_high=150),
    # Time-averaged shear-wave velocity of the top 30 m. Chosen: from the softest soils (about 100 m/s; NEHRP
    # class E is below 180 m/s) to hard rock (class A is above 1,500 m/s). No warning.
    "vs30_mps": Limit("m/s", 100, 2000),
}

#: Canonical columns holding one of the elements above under another name.
ALIASES: dict[str, str] = {"tide_pred_cm": "tide_cm"}


def limit_of(column: str) -> Limit | None:
    """The limits of a canonical column (its own or its alias's), None when the table has none."""
    return LIMITS.get(ALIASES.get(column, column))


def check(column: str) -> pa.Check:
    """The schema check of a canonical column's hard limits (KeyError: not in the table)."""
    limit = limit_of(column)
    if limit is None:
        raise KeyError(f"no limits for {column!r}; the table has: {', '.join(LIMITS)}")
    return limit.check()


def clip(frame: pd.DataFrame, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """A copy of ``frame`` with its limited columns clipped to their hard limits.

    ``columns`` maps the frame's column names to canonical ones (the generator's raw formats print their
    own headers); default: every column named as a canonical one. Blanks stay blank, and so does the text of
    a text column where it is no number (KMA's "-" for an unknown depth)."""
    out = frame.copy()
    names = columns if columns is not None else {c: c for c in frame.columns}
    for name, canonical in names.items():
        limit = limit_of(canonical)
        if limit is None or name not in out.columns:
            continue
        if pd.api.types.is_numeric_dtype(out[name]):
            out[name] = out[name].clip(limit.low, limit.high)
        else:
            number = pd.to_numeric(out[name], errors="coerce")
            beyond = (number < limit.low) | (number > limit.high)
            out.loc[beyond, name] = number[beyond].clip(limit.low, limit.high).map("{:g}".format)
    return out


def clip_values(values, column: str) -> np.ndarray:
    """``values`` (array, in the column's unit) clipped to a canonical column's hard limits."""
    limit = limit_of(column)
    return np.clip(np.asarray(values, dtype=float), limit.low, limit.high)

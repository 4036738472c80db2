"""KMA ASOS and AWS hourly files from the true weather, with the portal's blanks, QC flags and outages."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.embedded.period import Period
from features.embedded.weather import Weather

# KMA prints 16-point directions as these whole degrees (0 = calm).
COMPASS_16 = np.array([360, 20, 50, 70, 90, 110, 140, 160, 180, 200, 230, 250, 270, 290, 320, 340])


def _dew_point(temp: np.ndarray, rh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dew point (C) and vapour pressure (hPa) by the Magnus formula."""
    g = np.log(np.clip(rh, 1, 100) / 100) + 17.62 * temp / (243.12 + temp)
    dew = 243.12 * g / (17.62 - g)
    return dew, 6.112 * np.exp(17.62 * dew / (243.12 + dew))


def _gaps(n: int, rng: np.random.Generator, rate: float = 0.002) -> tuple[np.ndarray, np.ndarray]:
    """Per-variable random gaps (~0.2%) and whole-row outages (about one 2-8 h outage a year)."""
    single = rng.random(n) < rate
    outage = np.zeros(n, dtype=bool)
    for s in rng.integers(0, n, max(1, n // 8760)):
        outage[s:s + rng.integers(2, 9)] = True
    return single, outage


def _blank(values, missing: np.ndarray, decimals: int):
    """Rounded values with blanks; whole numbers print without a decimal point."""
    out = np.round(np.asarray(values, dtype=np.float64), decimals)
    out[missing] = np.nan
    return pd.array(out, dtype="Int64") if decimals == 0 else out


def _flag(missing: np.ndarray, code: str = "9") -> np.ndarray:
    return np.where(missing, code, "").astype(object)


def asos_frame(period: Period, w: Weather, stations, rng: np.random.Generator) -> pd.DataFrame:
    """Rows of ``OBS_ASOS_TIM`` for the ASOS stations (station-major, hourly)."""
    frames = []
    for st in stations:
        j, n = w.col(st.id), period.n
        _, outage = _gaps(n, rng)
        out = {v: (rng.random(n) < 0.002) | outage for v in ("temp", "rain", "wind", "rh", "pres")}
        rain = w.rain[:, j]
        dry = (rain < 0.1) & ~out["rain"]
        dew, vap = _dew_point(w.temp[:, j], w.humidity[:, j])
        speed = w.wind[:, j]
        compass = np.where(speed < 0.3, 0, COMPASS_16[np.round(w.wind_dir[:, j] / 22.5).astype(int) % 16])
        suspect = rng.random(n) < 0.0005  # flagged but kept, as the portal does
        th = out["temp"] | out["rh"]
        snow = np.where(w.snow[:, j] >= 0.1, np.round(w.snow[:, j], 1), np.nan)
        frames.append(pd.DataFrame({
            "지점": st.id, "지점명": st.name, "일시": period.kma_text,
            "기온(°C)": _blank(w.temp[:, j], out["temp"], 1),
            "기온 QC플래그": np.where(suspect & ~out["temp"], "1", _flag(out["temp"])).astype(object),
            "강수량(mm)": _blank(rain, out["rain"] | dry, 1),
            # 9 with a blank = nothing fell; 1 with a blank = the gauge failed.
            "강수량 QC플래그": np.where(dry, "9", _flag(out["rain"], "1")).astype(object),
            "풍속(m/s)": _blank(speed, out["wind"], 1), "풍속 QC플래그": _flag(out["wind"]),
            "풍향(16방위)": _blank(compass, out["wind"], 0), "풍향 QC플래그": _flag(out["wind"]),
            "습도(%)": _blank(w.humidity[:, j], out["rh"], 0), "습도 QC플래그": _flag(out["rh"]),
            "증기압(hPa)": _blank(vap, th, 1), "이슬점온도(°C)": _blank(dew, th, 1),
            "현지기압(hPa)": _blank(w.pressure[:, j], out["pres"], 1), "현지기압 QC플래그": _flag(out["pres"]),
            "해면기압(hPa)": _blank(w.slp[:, j], out["pres"], 1), "해면기압 QC플래그": _flag(out["pres"]),
            "적설(cm)": np.where(outage, np.nan, snow),
        }).assign(year=period.year))
    return pd.concat(frames, ignore_index=True)


def aws_frame(period: Period, w: Weather, stations, rng: np.random.Generator) -> pd.DataFrame:
    """Rows of ``OBS_AWS_TIM`` for the AWS stations; AWS print 0.0 for no rain and have no sunshine sensors."""
    frames = []
    for st in stations:
        j, n = w.col(st.id), period.n
        single, outage = _gaps(n, rng)
        miss = single | outage
        frames.append(pd.DataFrame({
            "지점": st.id, "일시": period.kma_text,
            "기온(°C)": _blank(w.temp[:, j], miss | (rng.random(n) < 0.001), 1),
            "풍향(deg)": _blank(w.wind_dir[:, j], outage, 1), "풍속(m/s)": _blank(w.wind[:, j], outage, 1),
            "강수량(mm)": _blank(w.rain[:, j], outage | (rng.random(n) < 0.001), 1),
            "현지기압(hPa)": _blank(w.pressure[:, j], outage, 1), "해면기압(hPa)": _blank(w.slp[:, j], outage, 1),
            "습도(%)": _blank(w.humidity[:, j], miss, 0), "일사": np.nan, "일조": np.nan,
        }).assign(year=period.year))
    return pd.concat(frames, ignore_index=True)

"""Helpers for domain tests: a tiny hand-built bundle of canonical frames (no files, no generator)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.city import load_city
from features.sources import Sources
from features.sources.canonical import SCHEMAS
from features.timeseries import weather_stations

START = pd.Timestamp("2021-07-01")


def tiny_sources(tmp_path, days: int = 60, seed: int = 0) -> Sources:
    """Sources on Incheon's 2 km grid whose frames are small synthetic canonical frames.

    Weather: a few rain storms (one heavy) and a cold snap; tide: a semidiurnal curve whose spring
    tides pass 886 cm; nowcasts: the next hours' observed rain, slightly off; flood traces at the
    heaviest storm (one without an onset hour); accidents spread over cells (some unplaceable).
    """
    rng = np.random.default_rng(seed)
    city = load_city("incheon", grid_m=2000)
    src = Sources(tmp_path / "raw", city)
    cells = src.grid.cells
    hours = pd.date_range(START, periods=days * 24, freq="h")
    n = len(hours)

    stations = weather_stations(city, upwind=True)
    rain = np.zeros(n)
    for start, peak in ((100, 12.0), (400, 45.0), (900, 6.0)):
        rain[start:start + 6] = peak * np.array([0.2, 0.6, 1.0, 0.7, 0.3, 0.1])
    weather = []
    for i, sid in enumerate(stations["station_id"]):
        temp = 2 + 8 * np.sin(np.arange(n) * 2 * np.pi / 24) - 0.1 * i
        weather.append(pd.DataFrame({
            "station_id": sid, "time": hours, "temp_c": temp,
            "rain_mm": np.round(rain * (1 + 0.1 * i) + rng.exponential(0.05, n) * (rng.random(n) < 0.1), 1),
            "wind_ms": 3.0, "wind_dir_deg": 270.0, "humidity_pct": 70.0, "pressure_hpa": 1010.0,
            "snow_cm": np.where(temp < 0, 1.0, np.nan),
        }))
    weather = pd.concat(weather, ignore_index=True)
    asos_ids = stations.loc[stations["kind"] == "asos", "station_id"]
    asos = weather[weather["station_id"].isin(asos_ids)].reset_index(drop=True)
    aws = weather[~weather["station_id"].isin(asos_ids)].reset_index(drop=True).assign(snow_cm=np.nan)

    leads = np.arange(1, 7)  # the ultra-short-range forecast's six hours
    issued = np.repeat(hours, len(leads) * len(stations))
    lead = np.tile(np.repeat(leads, len(stations)), n)
    st = np.tile(stations[["nx", "ny"]].to_numpy(), (len(leads) * n, 1))
    future = np.searchsorted(hours, issued + pd.to_timedelta(lead, unit="h"))
    nowcast = pd.DataFrame({"issued": issued, "valid": issued + pd.to_timedelta(lead, unit="h"),
                            "nx": st[:, 0], "ny": st[:, 1],
                            "rain_mm": np.round(rain[np.clip(future, 0, n - 1)] * 0.9, 1)})

    phase = np.arange(n) * 2 * np.pi / 12.42
    spring = 1 + 0.25 * np.cos(np.arange(n) * 2 * np.pi / (14.77 * 24))
    pred = 460 + 360 * spring * np.cos(phase)
    tide = pd.DataFrame({"station": city.tide.station, "time": hours, "tide_pred_cm": np.round(pred),
                         "tide_cm": np.round(pred + rng.normal(0, 8, n))})

    storm = hours[400 + 2]
    flooded = cells.sample(4, random_state=seed)
    traces = pd.DataFrame({
        "depth_m": 0.3, "grade": 1, "year": storm.year, "cause": "집중호우",
        "start_date": storm.normalize(), "end_date": storm.normalize(),
        "onset": [storm, storm + pd.Timedelta(hours=1), pd.NaT, storm - pd.Timedelta(days=20)],
        "sgg_cd": flooded["district_code"].to_numpy(), "emd_cd": None,
        "lat": flooded["lat"].to_numpy(), "lon": flooded["lon"].to_numpy(),
    })

    k = days * 40
    where = rng.integers(0, len(cells), k) % 12  # accidents concentrate on a dozen cells
    acc_time = START + pd.to_timedelta(rng.integers(0, n, k), unit="h")
    taas = pd.DataFrame({
        "time": acc_time, "weather": "맑음", "district": "부평구", "road_type": "단일로 - 기타",
        "surface": "건조", "accident_type": "차대차 - 측면충돌", "deaths": 0, "serious": 1, "minor": 0,
        "reported": 0, "eclo": 5.0,
        "lat": cells["lat"].to_numpy()[where] + 0.001, "lon": cells["lon"].to_numpy()[where],
    })
    taas.loc[:2, ["lat", "lon"]] = np.nan  # an export row without coordinates is dropped, not fatal

    static = pd.DataFrame({"cell_id": cells["cell_id"]})
    for col in SCHEMAS["static"].columns:
        if col != "cell_id":
            static[col] = rng.uniform(0, 1, len(cells))
    static["elevation_m"] = rng.uniform(1, 40, len(cells))
    static["dist_stream_m"] = rng.uniform(0, 3000, len(cells))
    static["drain_capacity_mmh"] = rng.uniform(20, 60, len(cells))
    static["reclaimed"] = (rng.random(len(cells)) < 0.2).astype(float)
    static["vs30_mps"] = rng.uniform(200, 800, len(cells))

    frames = {"asos": asos, "aws": aws, "nowcast": nowcast, "tide": tide, "flood_traces": traces,
              "taas": taas, "static": static}
    for name, frame in frames.items():
        src = src.override(name, SCHEMAS[name].validate(frame))
    return src


def assert_rebuilds(spec, src, table, n: int = 40, seed: int = 0) -> None:
    """build_rows on requests taken from ``table`` (keys, time, conditions) gives the table's features."""
    picked = table.sample(min(n, len(table)), random_state=seed)
    requests = picked[[*spec.keys, spec.time, *spec.conditions]].reset_index(drop=True)
    rows = spec.build_rows(src, requests)
    expected = picked[list(spec.features)].reset_index(drop=True)
    pd.testing.assert_frame_equal(rows[list(spec.features)], expected)

"""End to end on a city with weather and air quality only, in the layouts the portals deliver: a KMA ASOS
export (CP949, only the elements ticked), AirKorea final data for one station (CSV, hour 24) and the
real-time API's JSON for another that measures no PM2.5 at all (`-`), named only by station name.

import -> features -> train (no truth files) -> a real `bentoml serve` answering fine dust, and 503
naming what is missing for flood, traffic and earthquake.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from features.store import read_table
from tests.serving.conftest import cli, project_env, serve_city

DAYS = 70
START = pd.Timestamp("2023-01-01 01:00")
CITY = """
name = "Dustville"
code = "DST"
grid_m = 1000

[boundary]
file = "dustville.geojson"
district_field = "name"

[[weather_stations]]
id = 133
name = "시내"
kind = "asos"
lon = 127.03
lat = 36.02
nx = 67
ny = 100

[[air_stations]]
code = 525101
name = "시내"
region = "테스트 서"
lon = 127.015
lat = 36.02

[[air_stations]]
code = 525102
name = "외곽 측정소"
region = "테스트 동"
lon = 127.045
lat = 36.02

[tide]
station = "none"
code = "NONE"
lon = 127.0
lat = 36.0
alert_cm = [886, 906, 953, 1000]

[seismic_region]
lon = [126.0, 128.0]
lat = [35.0, 37.0]
"""
# Its own outline (GeoJSON is WGS84): two districts side by side.
BOUNDARY = json.dumps({"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": name},
     "geometry": {"type": "Polygon", "coordinates": [[[x0, 36.00], [x1, 36.00], [x1, 36.04], [x0, 36.04], [x0, 36.00]]]}}
    for name, x0, x1 in (("서", 127.00, 127.03), ("동", 127.03, 127.06))]})


def write_bundle(folder: Path) -> dict[str, list[Path]]:
    """Two months of plausible hourly data: dust that persists for days and washes out with rain."""
    rng = np.random.default_rng(3)
    hours = pd.date_range(START, periods=DAYS * 24, freq="h")
    rain = np.where(rng.random(len(hours)) < 0.05, rng.gamma(1.5, 3.0, len(hours)), 0.0)
    level = np.empty(len(hours))
    level[0] = 50
    for i in range(1, len(hours)):  # AR(1) in log space, pulled down by rain
        level[i] = np.exp(0.98 * np.log(level[i - 1]) + 0.02 * np.log(45) + rng.normal(0, 0.08)) - 0.8 * rain[i]
        level[i] = max(level[i], 5)
    folder.mkdir(parents=True)
    weather = pd.DataFrame({"지점": 133, "지점명": "시내", "일시": hours.strftime("%Y-%m-%d %H:%M"),
                            "기온(°C)": np.round(2 + 5 * np.sin(np.arange(len(hours)) / 24 * 2 * np.pi), 1),
                            "강수량(mm)": np.where(rain > 0, np.round(rain, 1), np.nan),
                            "풍속(m/s)": np.round(rng.gamma(2, 1.2, len(hours)), 1),
                            "풍향(16방위)": rng.choice(np.arange(0, 360, 22.5), len(hours)),
                            "습도(%)": np.round(rng.uniform(30, 95, len(hours)))})
    asos = folder / "OBS_ASOS_TIM_2023.csv"
    weather.to_csv(asos, index=False, encoding="cp949")
    # AirKorea final data: hour 24 closes the day (2023010124 = 2023-01-02 00:00).
    stamp = (hours - pd.Timedelta(hours=1)).strftime("%Y%m%d") + \
        ((hours - pd.Timedelta(hours=1)).hour + 1).map("{:02d}".format)
    pm10 = np.round(np.clip(level + rng.normal(0, 4, len(hours)), 2, None))
    final = pd.DataFrame({"지역": "테스트 서", "측정소코드": 525101, "측정소명": "시내", "측정일시": stamp,
                          "SO2": 0.003, "CO": 0.4, "O3": 0.02, "NO2": 0.02, "PM10": pm10,
                          "PM25": np.round(np.clip(0.55 * pm10 + rng.normal(0, 2, len(hours)), 1, None)), "주소": "○○로 1"})
    final_csv = folder / "AIRKOREA_2023_final.csv"
    final.to_csv(final_csv, index=False, encoding="utf-8-sig")
    # The real-time API: stationName only, "-" for the PM2.5 this station never measured.
    items = [{"stationName": "외곽 측정소", "sidoName": "테스트", "dataTime": f"{t:%Y-%m-%d %H}:00",
              "pm10Value": str(int(v)), "pm25Value": "-", "pm10Flag": None, "pm25Flag": "통신장애"}
             for t, v in zip(hours, np.round(np.clip(0.8 * level + rng.normal(0, 4, len(hours)), 2, None)), strict=True)]
    api = folder / "AIRKOREA_2023_realtime.json"
    api.write_text(json.dumps({"response": {"header": {"resultCode": "00", "resultMsg": "NORMAL_SERVICE"},
                                            "body": {"items": {"item": items}, "totalCount": len(items)}}},
                              ensure_ascii=False), encoding="utf-8")
    return {"asos": [asos], "airkorea": [final_csv, api]}


@pytest.fixture(scope="module")
def city_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("dustville")
    env = project_env(base, "dustville", CITY, BOUNDARY)
    bundle = write_bundle(base / "downloads")
    return env, bundle


def test_partial_city_imports_trains_and_serves_fine_dust_only(city_env):
    env, bundle = city_env
    run = cli(env)

    out = run("data", "import", "--source", "asos", *map(str, bundle["asos"]))
    assert "CP949" in out
    out = run("data", "import", "--source", "airkorea", *map(str, bundle["airkorea"]))
    assert "API JSON response" in out and "in the city config (1): 외곽 측정소 (525102)" in out
    out = run("features", "build", "--domain", "all")
    assert "skipping flood: no data" in out and "skipping earthquake: no data" in out
    table = read_table(Path(env["URBAN_SAFETY_DATA_DIR"]) / "features" / "fine_dust")
    counts = table.groupby(["station_code", "pollutant"]).size()
    assert set(counts.index) == {(525101, 0), (525101, 1), (525102, 0)}  # no PM2.5 rows at 외곽
    out = run("train", "--domain", "all", "--trials", "2", "--timeout", "60")
    assert "skipping traffic" in out and "n/a" in out and "fine_dust v1" in out

    with serve_city(env, Path(env["BENTOML_HOME"]).parent / "server.log") as url:
        ready = httpx.get(f"{url}/readyz", timeout=10).json()
        assert ready["ready"] is True and ready["domains"]["fine_dust"] == "serving"
        assert "no data" in ready["domains"]["flood"]
        dust = httpx.post(f"{url}/risk", json={"domain": "fine_dust", "locations": [{"lat": 36.02, "lon": 127.045}]},
                          timeout=30)
        assert dust.status_code == 200, dust.text
        result = dust.json()["results"][0]
        assert result["details"]["station_code"] == 525102 and result["details"]["pm10"] > 0
        # The station never measured PM2.5: no forecast is made up for it (its own mean is an essential input);
        # the grade stands on PM10 and the answer says so.
        assert result["status"] == "scored" and result["details"]["pm25"] is None
        assert any("own_today_mean" in note for note in result["notes"]), result["notes"]
        for domain in ("flood", "traffic", "earthquake"):
            answer = httpx.post(f"{url}/risk", json={"domain": domain, "locations": [{"lat": 36.02, "lon": 127.03}]},
                                timeout=30)
            assert answer.status_code == 503, answer.text
            assert "no data" in answer.json()["error"] and domain in answer.json()["error"]


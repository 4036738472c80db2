"""End to end on a city that has accident records and nothing else: no weather station, no static layers.
Three years of TAAS exports (the portal's layout) -> import -> `urban-safety hotspots` for next year -> a
real `bentoml serve` answering `/hotspots` (the city-wide safety performance function, said so) and 503 for
the hourly traffic risk, which needs the weather it does not have."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from tests.serving.conftest import cli, project_env, serve_city

CITY = """
name = "Crashton"
code = "CRT"
grid_m = 1000
domains = ["traffic"]

[boundary]
file = "crashton.geojson"
district_field = "name"
"""
BOUNDARY = json.dumps({"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": name},
     "geometry": {"type": "Polygon", "coordinates": [[[x0, 36.00], [x1, 36.00], [x1, 36.05], [x0, 36.05], [x0, 36.00]]]}}
    for name, x0, x1 in (("서구", 127.00, 127.03), ("동구", 127.03, 127.06))]})
YEARS = (2023, 2024, 2025)


def write_taas(folder: Path) -> list[Path]:
    """TAAS exports, one per year: a few busy corners and a quiet rest, in the portal's columns."""
    rng = np.random.default_rng(5)
    corners = np.array([[36.012, 127.012], [36.031, 127.044], [36.041, 127.021]])
    folder.mkdir(parents=True)
    paths = []
    for year in YEARS:
        n = 420
        busy = rng.random(n) < 0.6
        at = corners[rng.integers(0, len(corners), n)]
        lat = np.where(busy, at[:, 0] + rng.normal(0, 0.001, n), rng.uniform(36.001, 36.049, n))
        lon = np.where(busy, at[:, 1] + rng.normal(0, 0.001, n), rng.uniform(127.001, 127.059, n))
        when = pd.Timestamp(f"{year}-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24, n), unit="h")
        serious = rng.binomial(1, 0.2, n)
        frame = pd.DataFrame({
            "사고일시": [f"{t.year}년 {t.month}월 {t.day}일 {t.hour:02d}시" for t in when],
            "요일": "월요일", "기상상태": "맑음", "시군구": np.where(lon < 127.03, "크래시시 서구", "크래시시 동구"),
            "도로형태": rng.choice(["교차로 - 교차로안", "단일로 - 기타"], n), "노면상태": "건조",
            "사고유형": rng.choice(["차대차 - 측면충돌", "차대사람 - 횡단중"], n), "가해운전자 차종": "승용",
            "사망자수": 0, "중상자수": serious, "경상자수": 1 - serious, "부상신고자수": 0,
            "ECLO": 5 * serious + 3 * (1 - serious), "경도": lon.round(6), "위도": lat.round(6)})
        path = folder / f"TAAS_{year}.csv"
        frame.to_csv(path, index=False, encoding="cp949")
        paths.append(path)
    return paths


def test_accident_records_alone_give_hotspots(tmp_path):
    env = project_env(tmp_path, "crashton", CITY, BOUNDARY)
    files = write_taas(tmp_path / "downloads")
    run = cli(env)
    run("data", "import", "--source", "taas", *map(str, files))
    out = run("hotspots", "--from", "2026-01-01", "--to", "2027-01-01", "--top-n", "5", "--out", str(tmp_path / "hs"))
    assert "as of 2026-01-01" in out and "city-wide" in out
    listed = pd.read_csv(tmp_path / "hs" / "hotspots.csv", encoding="utf-8-sig")
    assert len(listed) == 5
    assert listed["expected_eclo"].is_monotonic_decreasing and listed["expected_accidents"].gt(0).all()
    from typer.testing import CliRunner

    from urban_safety.cli import app

    bad = CliRunner().invoke(app, ["hotspots", "--from", "2026-01-01", "--to", "2026-04-01", "--as-of", "2026-02-01",
                                   "--out", str(tmp_path / "bad")], env=env)
    lines = bad.output.strip().splitlines()
    assert bad.exit_code == 1 and len(lines) == 1 and "--as-of" in lines[0] and "allowed" in lines[0], bad.output
    assert not (tmp_path / "bad").exists()  # nothing half-written
    out = run("train", "--domain", "all", "--trials", "2", "--timeout", "60")
    assert "skipping traffic" in out and "asos" in out

    with serve_city(env, tmp_path / "server.log") as url:
        ready = httpx.get(f"{url}/readyz", timeout=10).json()
        assert ready["products"]["hotspots"] == "serving" and "asos" in ready["domains"]["traffic"]
        resp = httpx.post(f"{url}/hotspots", json={"period": {"from": "2026-01-01", "to": "2027-01-01"}, "top_n": 3},
                          timeout=60)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["as_of"] == "2026-01-01" and body["observed_through"] is None
        assert any("city-wide" in n for n in body["notes"]) and "traffic_volume" in body["not_applicable"]
        corners = {(round(c["lat"], 2), round(c["lon"], 2)) for c in body["cells"]}
        assert len(body["cells"]) == 3 and all(c["expected"]["accidents"] > 20 for c in body["cells"]), corners
        risk = httpx.post(f"{url}/risk", json={"domain": "traffic", "locations": [{"lat": 36.02, "lon": 127.02}]},
                          timeout=30)
        assert risk.status_code == 503 and "asos" in risk.json()["error"]


"""The embedded data generator: formats, determinism, atomic replacement and the physics it promises."""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.embedded import generate, nowcast
from features.grid import build_grid
from features.sources import Sources
from features.sources.formats import FORMATS, USER_SUPPLIED
from features.spatial import haversine_km
from tests.conftest import small_settings

GENERATED = sorted(set(FORMATS) - set(USER_SUPPLIED))  # the layers only a user brings are not generated

TRUTH_COLUMNS = {
    "flood_truth.parquet": ["cell_id", "time", "p_flood_1h", "p_flood_3h", "p_flood_6h"],
    "traffic_truth_cells.parquet": ["cell_id", "year", "base"],
    "traffic_truth_slots.parquet": ["time", "multiplier"],
    "earthquake_truth.parquet": ["scenario_id", "cell_id", "damage_share"],
    "fine_dust_truth.parquet": ["station_code", "date", "pm10", "pm25"],
}


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _read(settings, source: str) -> pd.DataFrame:
    fmt = FORMATS[source]
    files = sorted((settings.raw_dir / source).glob(fmt.pattern))
    return pd.concat([pd.read_csv(f, encoding=fmt.encoding, dtype={"측정일시": str, "SAT_DATE": str,
                                                                   "SAT_TM": str}) for f in files],
                     ignore_index=True)


def test_same_seed_gives_identical_files(tmp_path, small_data):
    again = small_settings(tmp_path)
    generate(again)
    assert _hashes(again.raw_dir) == _hashes(small_data.raw_dir)
    assert _hashes(again.truth_dir) == _hashes(small_data.truth_dir)


def test_failure_keeps_previous_data_and_other_seed_differs(tmp_path, small_data, monkeypatch):
    settings = small_settings(tmp_path, seed=8, quake_scenarios=10)
    generate(settings)
    before_raw, before_truth = _hashes(settings.raw_dir), _hashes(settings.truth_dir)
    ours = _hashes(small_data.raw_dir)
    for source in GENERATED:  # a different seed changes every source
        mine = {k: v for k, v in before_raw.items() if k.startswith(source + "/")}
        assert mine and mine != {k: v for k, v in ours.items() if k.startswith(source + "/")}, source

    gen = importlib.import_module("features.embedded.generate")  # the module, not the function
    real = gen.write_by_year

    def failing(frame, years, raw, source, *args, **kwargs):
        if source == "airkorea":  # the last source written
            raise RuntimeError("disk full")
        return real(frame, years, raw, source, *args, **kwargs)

    monkeypatch.setattr(gen, "write_by_year", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(small_settings(tmp_path, seed=9, quake_scenarios=10))
    assert _hashes(settings.raw_dir) == before_raw
    assert _hashes(settings.truth_dir) == before_truth
    assert not list(settings.data.glob(".generate-tmp-*"))


@pytest.mark.parametrize("source", GENERATED)
def test_files_follow_the_source_format(small_data, source):
    fmt = FORMATS[source]
    files = sorted((small_data.raw_dir / source).glob(fmt.pattern))
    assert files, f"no {source} files"
    for f in files:
        text = f.read_bytes().decode(fmt.encoding)  # strict: raises on a wrong encoding
        assert tuple(text.splitlines()[0].split(",")) == fmt.columns
        if fmt.encoding == "utf-8-sig":
            assert f.read_bytes().startswith(b"\xef\xbb\xbf")


def test_truth_files_have_documented_columns(small_data):
    for name, columns in TRUTH_COLUMNS.items():
        frame = pd.read_parquet(small_data.truth_dir / name)
        assert list(frame.columns) == columns, name
        assert len(frame) > 0, name
    flood = pd.read_parquet(small_data.truth_dir / "flood_truth.parquet")
    assert flood["p_flood_6h"].between(1e-4, 1).all()
    # A flood within 1 h is a flood within 3 h, and within 6 h.
    assert (flood["p_flood_1h"] <= flood["p_flood_3h"]).all() and (flood["p_flood_3h"] <= flood["p_flood_6h"]).all()


def test_weather_and_tide_are_plausible(small_data):
    asos = _read(small_data, "asos")
    city = asos[asos["지점"] == 112].assign(month=lambda d: pd.to_datetime(d["일시"]).dt.month)
    temp = city.groupby("month")["기온(°C)"].mean()
    assert temp[1] < 3 < 20 < temp[8]
    assert (city["기온(°C)"] < 0).any()
    rain = city["강수량(mm)"].fillna(0)
    assert rain[city["month"].between(6, 9)].sum() > 0.5 * rain.sum()
    assert set(city.loc[city["강수량(mm)"].isna(), "강수량 QC플래그"].astype(int)) <= {1, 9}
    tide = _read(small_data, "tide")
    assert 850 < tide["예측조위(cm)"].max() < 1000 and tide["예측조위(cm)"].min() < 100


def test_nowcasts_reach_six_hours_and_err_more_further_ahead(small_data):
    nc = Sources.from_settings(small_data)["nowcast"]
    lead = (nc["valid"] - nc["issued"]) / pd.Timedelta(hours=1)
    assert sorted(lead.unique()) == [1, 2, 3, 4, 5, 6]
    assert lead.value_counts().min() > 0.99 * lead.value_counts().max()  # every issue hour has all six
    rng = np.random.default_rng(0)
    truth = np.full(20_000, 20.0)
    spread = [np.std(np.log(f[f > 0] / 20.0)) for f in (nowcast.forecast_values(truth, k, rng) for k in range(1, 7))]
    missed = [(nowcast.forecast_values(truth, k, rng) == 0).mean() for k in range(1, 7)]
    assert np.all(np.diff(spread) > 0) and np.all(np.diff(missed) >= 0)


def test_floods_follow_rain(small_data):
    traces = _read(small_data, "flood_traces")
    assert len(traces) > 10
    rain = pd.concat([_read(small_data, "asos").query("지점 == 112")[["일시", "강수량(mm)"]],
                      _read(small_data, "aws")[["일시", "강수량(mm)"]]])
    wettest = rain.fillna({"강수량(mm)": 0}).groupby("일시")["강수량(mm)"].max()
    wettest.index = pd.to_datetime(wettest.index)
    onset = pd.to_datetime(traces["SAT_DATE"]) + pd.to_timedelta(traces["SAT_TM"].astype(int), unit="h")
    rainy = traces["FLUD_NM2"] == "집중호우"
    wet_at_onset = (wettest.reindex(onset[rainy]).to_numpy() >= 1).mean()
    assert wet_at_onset > 0.8 > 0.2 > (wettest >= 1).mean()


def test_accidents_follow_roads(small_data):
    grid = build_grid(small_data.city_config)
    taas = _read(small_data, "taas")
    counts = pd.Series(grid.cell_ids(taas["위도"], taas["경도"])).value_counts()
    static = _read(small_data, "static").set_index("cell_id")
    roads = static[["road_km_arterial", "road_km_collector", "road_km_local"]].sum(axis=1)
    per_cell = counts.reindex(static.index, fill_value=0)
    assert per_cell.corr(roads, method="spearman") > 0.4
    assert 4000 < len(taas) < 9000  # ~6,500 a year whatever the grid
    cells = pd.read_parquet(small_data.truth_dir / "traffic_truth_cells.parquet")
    slots = pd.read_parquet(small_data.truth_dir / "traffic_truth_slots.parquet")
    per_year = slots.groupby(slots["time"].dt.year)["multiplier"].sum()
    expected = float((cells.groupby("year")["base"].sum() * per_year).sum())
    assert abs(len(taas) - expected) < 4 * np.sqrt(expected)


def test_fine_dust_arrives_from_the_west(small_data):
    air = _read(small_data, "airkorea")
    air["day"] = pd.to_datetime(air["측정일시"].str[:8])
    daily = air.groupby(["측정소명", "day"])["PM10"].mean().unstack(0)
    city = np.log(daily.drop(columns="백령도").mean(axis=1))
    island = np.log(daily["백령도"])
    wx = _read(small_data, "asos").query("지점 == 102")
    day = pd.to_datetime(wx["일시"]) - pd.Timedelta(hours=1)
    rad = np.radians(wx["풍향(16방위)"].astype(float))
    vec = pd.DataFrame({"x": wx["풍속(m/s)"] * np.sin(rad), "y": wx["풍속(m/s)"] * np.cos(rad)})
    vec = vec.groupby(day.dt.normalize().to_numpy()).mean()
    west = ((np.degrees(np.arctan2(vec["x"], vec["y"])) % 360).between(202.5, 337.5)).reindex(daily.index)
    frame = pd.DataFrame({"island": island, "next": city.shift(-1), "west": west}).dropna()
    by_wind = {w: g["island"].corr(g["next"]) for w, g in frame.groupby("west")}
    assert by_wind[True] > 0.5 and by_wind[True] > by_wind[False]


def test_damage_grows_with_magnitude_and_falls_with_distance(small_data):
    survey = _read(small_data, "damage_surveys")
    per = survey.groupby("시나리오번호").agg(m=("규모", "first"), lat=("위도", "first"), lon=("경도", "first"),
                                          n=("조사건물수", "sum"), hit=("중파이상건수", "sum"))
    per["dist"] = haversine_km(per["lat"], per["lon"], 37.47, 126.65)
    share = np.log((per["hit"] + 0.5) / per["n"])
    design = np.column_stack([np.ones(len(per)), per["m"], np.log(per["dist"] + 10)])
    coef, *_ = np.linalg.lstsq(design, share, rcond=None)
    assert coef[1] > 0 and coef[2] < 0
    buildings = _read(small_data, "buildings")
    assert 0.8 * 36 * len(build_grid(small_data.city_config).cells) < len(buildings)

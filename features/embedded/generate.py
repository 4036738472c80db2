"""Generate the embedded data set of the configured city: raw files in the real source formats, plus the truth.

The city's geography, tide, seismic sources and stations come from its config; a source the city has no
station for (a tide gauge inland) is not written at all.

Everything is written into a temporary folder beside the data and swapped in by renames at the end,
so a failed run leaves the previous raw and truth folders untouched.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from features.city import check_data_city, mark_data_city
from features.embedded import accidents, air, buildings, damage, floods, quakes, tide
from features.embedded.nowcast import nowcast_frame
from features.embedded.period import Period
from features.embedded.seeds import stream
from features.embedded.static_layers import build_static
from features.embedded.weather import simulate_weather
from features.embedded.weather_files import asos_frame, aws_frame
from features.embedded.writers import write_by_year, write_csv, write_truth
from features.grid import build_grid
from features.sources.formats import STATIC
from features.spatial import nearest


def generate(settings, progress: Callable[[str], None] | None = None) -> dict:
    """Write raw files for all sources into ``settings.raw_dir`` and the truth into ``settings.truth_dir``.

    Deterministic for ``settings.seed``. Returns ``{source: {"files": n, "rows": n}, "truth": {file: rows}}``.
    """
    say = progress or (lambda _msg: None)
    # Another city's features and live store would stay behind (a new grid is fine: everything is rewritten).
    check_data_city(settings.data, settings.city_config, grid=False)
    settings.data.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".generate-tmp-", dir=settings.data))
    try:
        summary = _generate_into(settings, tmp / "raw", tmp / "truth", say)
        _swap_in(tmp, [("raw", settings.raw_dir), ("truth", settings.truth_dir)])
        mark_data_city(settings.data, settings.city_config, settings.city_config.grid_m)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say("done")
    return summary


def _swap_in(tmp: Path, pairs: list[tuple[str, Path]]) -> None:
    """Replace each target folder by ``tmp/<name>``; undo the swaps already made if one fails."""
    done: list[tuple[Path, Path]] = []
    try:
        for name, target in pairs:
            old = tmp / f"old-{name}"
            if target.exists():
                target.rename(old)
            (tmp / name).rename(target)
            done.append((target, old))
    except BaseException:
        for target, old in reversed(done):
            shutil.rmtree(target, ignore_errors=True)
            if old.exists():
                old.rename(target)
        raise


def _generate_into(settings, raw: Path, truth: Path, say: Callable[[str], None]) -> dict:
    city = settings.city_config
    grid = build_grid(city)
    period = Period.from_settings(settings.start, settings.years)
    years = sorted(set(period.year))
    seed = settings.seed
    meta = {"seed": seed, "start": str(settings.start), "years": settings.years, "grid_m": city.grid_m}
    out: dict = {"truth": {}}

    say("static layers")
    static = build_static(grid, stream(seed, "static"))
    out["static"] = {"files": 1, "rows": write_csv(static[list(STATIC.columns)], raw, "static", "grid_layers.csv")}

    say("weather")
    wx = simulate_weather(city, period, stream(seed, "weather"))
    stations = city.weather_stations
    asos = asos_frame(period, wx, [s for s in stations if s.kind == "asos"], stream(seed, "asos"))
    out["asos"] = write_by_year(asos.drop(columns="year"), asos["year"], raw, "asos", "OBS_ASOS_TIM_{year}.csv")
    if any(s.kind == "aws" for s in stations):  # a city may have ASOS stations only
        aws = aws_frame(period, wx, [s for s in stations if s.kind == "aws"], stream(seed, "aws"))
        out["aws"] = write_by_year(aws.drop(columns="year"), aws["year"], raw, "aws", "OBS_AWS_TIM_{year}.csv")

    observed = None  # no gauge: no sea flooding, no tide file
    if city.tide is not None:
        say("tide")
        predicted = tide.predicted_tide(period, city.tide)
        observed = predicted + tide.surge(period, wx.events, stream(seed, "tide"))
        # The file also holds the astronomical prediction for the days after the last observation, as KHOA
        # publishes it ahead: a live service reads the coming hours' predicted high water from it.
        ahead = Period(period.start, period.end + tide.PREDICTED_AHEAD)
        tail = np.full(ahead.n - period.n, np.nan)
        tf = tide.tide_frame(ahead, city.tide.station, tide.predicted_tide(ahead, city.tide),
                             np.concatenate([observed, tail]), stream(seed, "tide-gaps"))
        out["tide"] = write_by_year(tf, ahead.year, raw, "tide", f"TIDE_{city.tide.code}_{{year}}.csv")

    say("nowcasts")
    nc = nowcast_frame(period, stations, wx.rain, stream(seed, "nowcast"))
    out["nowcast"] = write_by_year(nc.drop(columns="year"), nc["year"], raw, "nowcast", "VSRT_RN1_{year}.csv")
    del nc

    say("floods")
    local = np.flatnonzero([not s.upwind for s in stations])
    cells = grid.cells
    station_of_cell = local[nearest(cells["lat"], cells["lon"], [stations[k].lat for k in local],
                                    [stations[k].lon for k in local])]
    sea = None if city.tide is None else city.tide.flood_levels_cm
    fl = floods.simulate_floods(grid, static, station_of_cell, wx.rain, observed, sea, period, stream(seed, "floods"))
    out["flood_traces"] = write_by_year(fl.traces.drop(columns="year"), fl.traces["year"], raw, "flood_traces",
                                        "FLUD_TRACE_{year}.csv", all_years=years)
    out["truth"]["flood_truth.parquet"] = write_truth(fl.truth, truth, "flood_truth.parquet", meta)

    say("traffic accidents")
    main = wx.col(next(s.id for s in stations if s.kind == "asos" and not s.upwind))
    city_wx = {"temp": wx.temp[:, main], "rain": wx.rain[:, main], "humidity": wx.humidity[:, main],
               "snow": wx.snow[:, main]}
    acc = accidents.simulate_accidents(grid, static, city_wx, period, stream(seed, "traffic"))
    out["taas"] = write_by_year(acc.taas.drop(columns="year"), acc.taas["year"], raw, "taas", "TAAS_{year}.csv",
                                all_years=years)
    out["truth"]["traffic_truth_cells.parquet"] = write_truth(acc.cells, truth, "traffic_truth_cells.parquet", meta)
    out["truth"]["traffic_truth_slots.parquet"] = write_truth(acc.slots, truth, "traffic_truth_slots.parquet", meta)

    say("earthquakes and buildings")
    eq = _earthquakes(settings, grid, static, period, raw, truth, meta)
    out["truth"].update(eq.pop("truth"))
    out.update(eq)

    say("air quality")
    af, at = air.simulate_air(grid, static, wx, period, stream(seed, "air"))
    out["airkorea"] = write_by_year(af.drop(columns="year"), af["year"], raw, "airkorea", "AIRKOREA_{year}.csv")
    out["truth"]["fine_dust_truth.parquet"] = write_truth(at, truth, "fine_dust_truth.parquet", meta)
    return out


def _earthquakes(settings, grid, static, period, raw, truth, meta) -> dict:
    """Catalogue, building register, scenario damage surveys and their truth."""
    seed, city, cells = settings.seed, grid.city, grid.cells
    clat, clon = float(cells["lat"].mean()), float(cells["lon"].mean())
    cat = quakes.catalogue(city, period.end, clat, clon, stream(seed, "quakes"))
    out = {"quakes": {"files": 1, "rows": write_csv(cat.drop(columns=["_lat", "_lon"]), raw, "quakes",
                                                     "KMA_EQK_list.csv")}}
    scen = quakes.scenarios(cat, settings.quake_scenarios, period.start, period.end, clat, clon,
                            stream(seed, "scenarios"))
    stock = buildings.build_stock(grid, static, period.end, stream(seed, "buildings"))
    register = buildings.register_frame(grid, stock, stream(seed, "register"))
    out["buildings"] = {"files": 1, "rows": write_csv(register, raw, "buildings", "BLD_TITLE_all.csv")}
    ground = quakes.pga(scen, cells["lat"].to_numpy(), cells["lon"].to_numpy(), static["vs30_mps"].to_numpy(),
                        stream(seed, "ground-motion"))
    survey, eq_truth = damage.surveys(scen, ground, stock, cells["cell_id"].to_numpy(), stream(seed, "damage"))
    years = sorted(set(pd.DatetimeIndex(scen["time"]).year))
    out["damage_surveys"] = write_by_year(survey.drop(columns="year"), survey["year"], raw, "damage_surveys",
                                          "DAMAGE_SURVEY_{year}.csv", all_years=years)
    out["truth"] = {"earthquake_truth.parquet": write_truth(eq_truth, truth, "earthquake_truth.parquet", meta)}
    return out

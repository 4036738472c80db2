"""Generate the embedded data set of the configured city: raw files in the real source formats, plus the truth.

The city's geography, tide, seismic sources and stations come from its config. Only the sources the
domains the city runs read are written (``domains = ["earthquake"]``: static layers, buildings, the
catalogue and damage surveys), and a source the city has no station for (a tide gauge inland, AWS) is not
written at all; the summary's ``skipped`` says why each other source is missing.

Everything is written into a temporary folder beside the data and swapped in by renames at the end,
so a failed run leaves the previous raw and truth folders untouched.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from features.city import check_data_city, mark_data_city
from features.city_domains import missing_station, readers_of, sources_of
from features.embedded import accidents, air, buildings, damage, floods, quakes, tide
from features.embedded.nowcast import nowcast_frame
from features.embedded.period import Period
from features.embedded.seeds import stream
from features.embedded.static_layers import build_static
from features.embedded.weather import simulate_weather
from features.embedded.weather_files import asos_frame, aws_frame
from features.embedded.writers import write_by_year, write_csv, write_truth
from features.grid import build_grid
from features.sources import limits
from features.sources.formats import FORMATS, STATIC, USER_SUPPLIED
from features.spatial import nearest

#: Every source the generator can write (the parcel and address layers come only from the user).
GENERATED = tuple(s for s in FORMATS if s not in USER_SUPPLIED)
#: Sources simulated from (or, for the tide, driven by) the hourly weather: any of them needs the weather.
WEATHER_DRIVEN = {"asos", "aws", "nowcast", "tide", "flood_traces", "taas", "airkorea"}
#: Written together: the building stock and the scenarios drawn from the catalogue make the damage surveys.
EARTHQUAKE_SOURCES = {"quakes", "buildings", "damage_surveys"}


def generate(settings, progress: Callable[[str], None] | None = None) -> dict:
    """Write raw files of the sources the city's domains read into ``settings.raw_dir`` and their truth into
    ``settings.truth_dir``.

    Deterministic for ``settings.seed`` (each source draws from its own stream, so skipping one changes no
    other). Returns ``{source: {"files": n, "rows": n}, "truth": {file: rows}, "skipped": {source: why}}``.
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
    wanted = sources_of(city)  # only what the domains the city runs read
    grid = build_grid(city)
    period = Period.from_settings(settings.start, settings.years)
    seed = settings.seed
    meta = {"seed": seed, "start": str(settings.start), "years": settings.years, "grid_m": city.grid_m}
    out: dict = {"truth": {}, "skipped": _skipped(city, wanted)}

    # Every other generator reads the static layers, so they are built whatever the domains; clipped to the
    # limits table's hard limits (a config's hills can stack above Korea's highest ground, which its loader
    # would refuse), written only when a domain reads them.
    say("static layers")
    static = limits.clip(build_static(grid, stream(seed, "static")))
    if "static" in wanted:
        out["static"] = {"files": 1, "rows": write_csv(static[list(STATIC.columns)], raw, "static", "grid_layers.csv")}

    stations = city.weather_stations
    wx = None
    if wanted.keys() & WEATHER_DRIVEN:
        say("weather")
        wx = simulate_weather(city, period, stream(seed, "weather"))
    if "asos" in wanted:
        asos = asos_frame(period, wx, [s for s in stations if s.kind == "asos"], stream(seed, "asos"))
        out["asos"] = write_by_year(asos.drop(columns="year"), asos["year"], raw, "asos", "OBS_ASOS_TIM_{year}.csv")
    if "aws" in wanted:  # not wanted where the city has ASOS stations only (DomainSpec.for_city)
        aws = aws_frame(period, wx, [s for s in stations if s.kind == "aws"], stream(seed, "aws"))
        out["aws"] = write_by_year(aws.drop(columns="year"), aws["year"], raw, "aws", "OBS_AWS_TIM_{year}.csv")

    observed = None  # no gauge: no sea flooding, no tide file
    if "tide" in wanted:  # not wanted without a gauge (DomainSpec.for_city)
        say("tide")
        # A config's mean level and constituents could sum beyond the loader's limits: clipped to them.
        predicted = limits.clip_values(tide.predicted_tide(period, city.tide), "tide_cm")
        observed = limits.clip_values(predicted + tide.surge(period, wx.events, stream(seed, "tide")), "tide_cm")
        # The file also holds the astronomical prediction for the days after the last observation, as KHOA
        # publishes it ahead: a live service reads the coming hours' predicted high water from it.
        ahead = Period(period.start, period.end + tide.PREDICTED_AHEAD)
        tail = np.full(ahead.n - period.n, np.nan)
        tf = tide.tide_frame(ahead, city.tide.station,
                             limits.clip_values(tide.predicted_tide(ahead, city.tide), "tide_cm"),
                             np.concatenate([observed, tail]), stream(seed, "tide-gaps"))
        out["tide"] = write_by_year(tf, ahead.year, raw, "tide", f"TIDE_{city.tide.code}_{{year}}.csv")

    if "nowcast" in wanted:
        say("nowcasts")
        nc = nowcast_frame(period, stations, wx.rain, stream(seed, "nowcast"))
        out["nowcast"] = write_by_year(nc.drop(columns="year"), nc["year"], raw, "nowcast", "VSRT_RN1_{year}.csv")
        del nc

    if "flood_traces" in wanted:
        say("floods")
        local = np.flatnonzero([not s.upwind for s in stations])
        cells = grid.cells
        station_of_cell = local[nearest(cells["lat"], cells["lon"], [stations[k].lat for k in local],
                                        [stations[k].lon for k in local])]
        sea = None if city.tide is None else city.tide.flood_levels_cm
        fl = floods.simulate_floods(grid, static, station_of_cell, wx.rain, observed, sea, period,
                                    stream(seed, "floods"))
        # A year without floods gets no file: its loader refuses a file without rows.
        out["flood_traces"] = write_by_year(fl.traces.drop(columns="year"), fl.traces["year"], raw, "flood_traces",
                                            "FLUD_TRACE_{year}.csv")
        out["truth"]["flood_truth.parquet"] = write_truth(fl.truth, truth, "flood_truth.parquet", meta)

    if "taas" in wanted:
        say("traffic accidents")
        main = wx.col(next(s.id for s in stations if s.kind == "asos" and not s.upwind))
        city_wx = {"temp": wx.temp[:, main], "rain": wx.rain[:, main], "humidity": wx.humidity[:, main],
                   "snow": wx.snow[:, main]}
        acc = accidents.simulate_accidents(grid, static, city_wx, period, stream(seed, "traffic"))
        out["taas"] = write_by_year(acc.taas.drop(columns="year"), acc.taas["year"], raw, "taas", "TAAS_{year}.csv")
        out["truth"]["traffic_truth_cells.parquet"] = write_truth(acc.cells, truth, "traffic_truth_cells.parquet",
                                                                  meta)
        out["truth"]["traffic_truth_slots.parquet"] = write_truth(acc.slots, truth, "traffic_truth_slots.parquet",
                                                                  meta)

    if wanted.keys() & EARTHQUAKE_SOURCES:
        say("earthquakes and buildings")
        eq = _earthquakes(settings, grid, static, period, raw, truth, meta)
        out["truth"].update(eq.pop("truth"))
        out.update(eq)

    if "airkorea" in wanted:  # the city config guarantees air stations for a city running fine dust
        say("air quality")
        af, at = air.simulate_air(grid, static, wx, period, stream(seed, "air"))
        out["airkorea"] = write_by_year(af.drop(columns="year"), af["year"], raw, "airkorea", "AIRKOREA_{year}.csv")
        out["truth"]["fine_dust_truth.parquet"] = write_truth(at, truth, "fine_dust_truth.parquet", meta)
    return out


def _skipped(city, wanted: dict[str, list[str]]) -> dict[str, str]:
    """Each source the generator can write but does not, with why (the city's domains, or its stations)."""
    out = {}
    for source in GENERATED:
        if source in wanted:
            continue
        readers = readers_of(source)
        lacking = city.lacks(source) or (f"{city.name} lists no {key}" if (key := missing_station(city, source))
                                         else None)
        run = [name for name in readers if city.runs(name)]
        out[source] = lacking if run and lacking else (
            f"{city.name} runs none of {', '.join(readers)} (its city config lists domains = {city.domains})")
    return out


def _earthquakes(settings, grid, static, period, raw, truth, meta) -> dict:
    """Catalogue, building register, scenario damage surveys and their truth."""
    seed, city, cells = settings.seed, grid.city, grid.cells
    clat, clon = float(cells["lat"].mean()), float(cells["lon"].mean())
    # Historical events come from the city config as written: clipped to the loader's limits like the rest.
    cat = limits.clip(quakes.catalogue(city, period.end, clat, clon, stream(seed, "quakes")),
                      {"규모": "magnitude", "깊이(km)": "depth_km"})
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
    out["damage_surveys"] = write_by_year(survey.drop(columns="year"), survey["year"], raw, "damage_surveys",
                                          "DAMAGE_SURVEY_{year}.csv")
    out["truth"] = {"earthquake_truth.parquet": write_truth(eq_truth, truth, "earthquake_truth.parquet", meta)}
    return out

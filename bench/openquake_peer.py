"""Peer benchmark: the earthquake physics (and the served model) against OpenQuake's scenario_damage.

Same exposure (40 cells of the embedded Incheon data and their buildings as of the service's "now", one
asset per cell and HAZUS fragility group at the cell centre), same site model (the cells' Vs30), same
HAZUS equivalent-PGA fragility (four damage states, β 0.64), BSSA14 as OpenQuake's GMM, and the three
scenarios of issue 13. OpenQuake runs at truncation level 0 (the median ground-motion field), so its
shares are compared with the physics' median-field share (``fragility_share`` with σ = 0); the features
and the baseline use the expected share over BSSA14's scatter, also printed. Scenario magnitudes are
moment magnitudes (what OpenQuake takes); the served model is asked with the equivalent KMA ML
(``seismic.mw_to_ml``) and answered through the domain's serving ``combine`` (so with the physics floor
in strong shaking, ``eq.serving.apply_physics_floor``); ``--no-floor`` shows the raw clipped prediction instead,
and the summary always gives both. Each scenario also runs once with OpenQuake's finite planar rupture (Wells &
Coppersmith 1994 size, vertical strike-slip, strike 0) to show what the point-source assumption costs.

    bash bench/openquake_setup.sh                  # once: OpenQuake in bench/.oq-venv
    .venv/bin/urban-safety data generate           # once: the embedded data set
    .venv/bin/python bench/openquake_peer.py [--cells 40] [--per-cell]

Prints tables; asserts nothing. OpenQuake keeps its job database in ~/oqdata (its default).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from features.domains import earthquake as eq
from features.domains.earthquake import seismic
from features.sources import Sources
from features.spatial import haversine_km
from urban_safety.settings import Settings

HERE = Path(__file__).resolve().parent
OQ_PYTHON = HERE / ".oq-venv" / "bin" / "python"
SCENARIOS = (  # name, Mw, epicentre lat, lon, depth km (issue 13)
    ("M5.5 west", 5.5, 37.30, 126.30, 10.0),
    ("M6.5 coast", 6.5, 37.45, 126.45, 10.0),
    ("M5.0 city", 5.0, 37.50, 126.70, 8.0),
)
STRONG_G = 0.3
NRML = "http://openquake.org/xmlns/nrml/0.5"


def pick_cells(src, stock: pd.DataFrame, count: int) -> np.ndarray:
    """Positions of ``count`` cells with buildings: half nearest the M6.5 epicentre, half spread over the rest."""
    cells = src.grid.cells
    has = np.flatnonzero(stock["n"].to_numpy() > 0)
    _, lat, lon, _ = SCENARIOS[1][1:]
    km = haversine_km(lat, lon, cells["lat"].to_numpy()[has], cells["lon"].to_numpy()[has])
    order = has[np.argsort(km, kind="stable")]
    near = order[: count // 2]
    rest = order[count // 2:]
    return np.concatenate([near, rest[np.linspace(0, len(rest) - 1, count - len(near)).astype(int)]])


def taxonomy(group: int) -> str:
    cls, level = seismic.FRAGILITY_GROUPS[group]
    return f"{cls}_{seismic.CODE_LEVELS[level]}"


def write_inputs(folder: Path, cells: pd.DataFrame, counts: np.ndarray) -> None:
    """Exposure, fragility and site model files (NRML 0.5 / CSV) shared by every scenario."""
    assets = []
    for i, cell in enumerate(cells.itertuples()):
        for g in np.flatnonzero(counts[i] > 0):
            n = int(counts[i, g])
            assets.append(f'<asset id="{cell.cell_id}:{g}" number="{n}" taxonomy="{taxonomy(g)}">'
                          f'<location lon="{cell.lon:.6f}" lat="{cell.lat:.6f}"/>'
                          f'<costs><cost type="structural" value="{n}"/></costs></asset>')
    (folder / "exposure.xml").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<nrml xmlns="{NRML}">\n'
        '<exposureModel id="incheon" category="buildings" taxonomySource="HAZUS">\n'
        '<description>buildings per cell and HAZUS fragility group</description>\n'
        '<conversions><costTypes><costType name="structural" type="aggregated" unit="buildings"/>'
        '</costTypes></conversions>\n<assets>\n' + "\n".join(assets) + "\n</assets>\n</exposureModel>\n</nrml>\n")
    beta = seismic.FRAGILITY_BETA
    functions = []
    for g in sorted({g for row in counts for g in np.flatnonzero(row > 0)}):
        cls, level = seismic.FRAGILITY_GROUPS[g]
        params = []
        for state, median in zip(seismic.DAMAGE_STATES, seismic.MEDIANS_G[cls][level], strict=True):
            # OpenQuake's logncdf takes the mean and standard deviation of the lognormal itself.
            mean = median * np.exp(beta**2 / 2)
            params.append(f'<params ls="{state}" mean="{mean:.10g}" stddev="{mean * np.sqrt(np.expm1(beta**2)):.10g}"/>')
        functions.append(f'<fragilityFunction id="{taxonomy(g)}" format="continuous" shape="logncdf">'
                         '<imls imt="PGA" noDamageLimit="1e-6" minIML="1e-6" maxIML="10"/>' + "".join(params)
                         + "</fragilityFunction>")
    (folder / "fragility.xml").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<nrml xmlns="{NRML}">\n'
        '<fragilityModel id="hazus-pga" assetCategory="buildings" lossCategory="structural">\n'
        f'<description>HAZUS equivalent-PGA fragility, beta {beta}</description>\n'
        f'<limitStates>{" ".join(seismic.DAMAGE_STATES)}</limitStates>\n' + "\n".join(functions)
        + "\n</fragilityModel>\n</nrml>\n")
    cells[["lon", "lat", "vs30_mps"]].rename(columns={"vs30_mps": "vs30"}).to_csv(
        folder / "site_model.csv", index=False, float_format="%.6f")


def write_job(folder: Path, name: str, mw: float, lat: float, lon: float, depth: float, finite: bool) -> Path:
    """job.ini for one scenario: a point-like rupture (a 10 m square at the hypocentre) or OpenQuake's
    finite planar one."""
    job = folder / f"{name.replace(' ', '_')}{'_finite' if finite else ''}.ini"
    if finite:
        rupture = (f"rupture_dict = {{'lon': {lon}, 'lat': {lat}, 'dep': {depth}, 'mag': {mw}, 'rake': 0.0, "
                   "'dip': 90.0, 'strike': 0.0, 'msr': 'WC1994', 'aspect_ratio': 2.0}")
    else:
        d = 0.005 / 111.2  # half of 10 m in degrees of latitude
        rup = folder / f"{job.stem}_rupture.xml"
        rup.write_text(
            f'<?xml version="1.0" encoding="UTF-8"?>\n<nrml xmlns="{NRML}">\n<singlePlaneRupture>\n'
            f'<magnitude>{mw}</magnitude><rake>0.0</rake><hypocenter lon="{lon}" lat="{lat}" depth="{depth}"/>\n'
            f'<planarSurface strike="0.0" dip="90.0">'
            f'<topLeft lon="{lon}" lat="{lat - d}" depth="{depth - 0.005}"/>'
            f'<topRight lon="{lon}" lat="{lat + d}" depth="{depth - 0.005}"/>'
            f'<bottomLeft lon="{lon}" lat="{lat - d}" depth="{depth + 0.005}"/>'
            f'<bottomRight lon="{lon}" lat="{lat + d}" depth="{depth + 0.005}"/>'
            '</planarSurface>\n</singlePlaneRupture>\n</nrml>\n')
        rupture = f"rupture_model_file = {rup.name}"
    job.write_text(f"""[general]
description = {name}
calculation_mode = scenario_damage
[rupture]
{rupture}
rupture_mesh_spacing = 0.5
[site_params]
site_model_file = site_model.csv
[exposure]
exposure_file = exposure.xml
[fragility]
structural_fragility_file = fragility.xml
[calculation]
gsim = BooreEtAl2014
truncation_level = 0
maximum_distance = 400
number_of_ground_motion_fields = 1
ses_seed = 42
""")
    return job


def run_openquake(job: Path) -> dict:
    out = job.with_suffix(".json")
    subprocess.run([str(OQ_PYTHON), str(HERE / "openquake_run.py"), str(job), str(out)], cwd=job.parent,
                   check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def openquake_cells(result: dict, cell_ids: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: OpenQuake's PGA (g) and moderate-or-worse share of the cell's buildings."""
    pos = {c: i for i, c in enumerate(cell_ids)}
    pga = np.zeros(len(cell_ids))
    damaged = np.zeros(len(cell_ids))
    for aid, site, dmg in zip(result["assets"]["id"], result["assets"]["site"], result["assets"]["damage"],
                              strict=True):
        i = pos[aid.rsplit(":", 1)[0]]
        pga[i] = result["sites"]["pga_g"][site]
        damaged[i] += sum(dmg[2:])  # moderate, extensive, complete
    return pga, damaged / counts.sum(axis=1)


def served_model(settings: Settings):
    """``(version, family, booster)`` of the earthquake champion, or None when the store has none."""
    try:
        from training.champion import current_champion, load_native
        from training.tracking import configure, registered_name

        client = configure(settings)
        version = current_champion(client, "earthquake")
        if version is None:
            return None
        family, booster = load_native(f"models:/{registered_name('earthquake')}/{version.version}")
        return str(version.version), family, booster
    except Exception as error:  # noqa: BLE001 - the benchmark runs without a store too
        print(f"(no served model: {error})")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument("--per-cell", action="store_true", help="print every cell, not only the summary")
    parser.add_argument("--no-floor", action="store_true",
                        help="model_* columns from the raw prediction, without the physics floor")
    args = parser.parse_args()
    if not OQ_PYTHON.exists():
        raise SystemExit("OpenQuake is not installed: run bash bench/openquake_setup.sh first")
    settings = Settings()
    src = Sources.from_settings(settings)
    now = eq.SERVING.now(src)
    all_ids = src.grid.cells["cell_id"].to_numpy()
    stock_all = eq.features.building_stock(src).as_of(all_ids, [now] * len(all_ids))
    pos = pick_cells(src, stock_all, args.cells)
    cells = src.grid.cells.iloc[pos].reset_index(drop=True)
    cells["vs30_mps"] = src.static.reindex(cells["cell_id"])["vs30_mps"].to_numpy()
    group_cols = [f"group_{g}" for g in range(len(seismic.FRAGILITY_GROUPS))]
    counts = stock_all.iloc[pos][group_cols].to_numpy()
    shares = counts / counts.sum(axis=1, keepdims=True)
    model = served_model(settings)
    print(f"{len(cells)} cells, {int(counts.sum()):,} buildings as of {now:%Y-%m-%d}; OpenQuake BooreEtAl2014, "
          f"HAZUS beta {seismic.FRAGILITY_BETA}; served model: "
          f"{'version ' + model[0] + ' (' + model[1] + ')' if model else 'none'}")
    subprocess.run([str(OQ_PYTHON), "-m", "openquake.commands", "engine", "--upgrade-db"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    summary = []
    with tempfile.TemporaryDirectory(prefix="oq-peer-") as tmp:
        folder = Path(tmp)
        write_inputs(folder, cells, counts)
        for name, mw, lat, lon, depth in SCENARIOS:
            epi, _ = seismic.distances_km(lat, lon, depth, cells["lat"].to_numpy(), cells["lon"].to_numpy())
            rjb = seismic.rjb_km(epi, depth)
            ln_pga = seismic.bssa14_ln_pga(mw, rjb, cells["vs30_mps"].to_numpy())
            sigma = seismic.bssa14_sigma(mw, rjb, cells["vs30_mps"].to_numpy())
            physics = seismic.fragility_share(ln_pga, shares)
            expected = seismic.fragility_share(ln_pga, shares, sigma)
            point = run_openquake(write_job(folder, name, mw, lat, lon, depth, finite=False))
            finite = run_openquake(write_job(folder, name, mw, lat, lon, depth, finite=True))
            oq_pga, oq_share = openquake_cells(point, cells["cell_id"].to_numpy(), counts)
            fin_pga, fin_share = openquake_cells(finite, cells["cell_id"].to_numpy(), counts)
            frame = pd.DataFrame({
                "cell": cells["cell_id"], "km": epi.round(1), "vs30": cells["vs30_mps"].round(0),
                "bldg": counts.sum(axis=1).astype(int), "pga_oq": oq_pga, "pga_phys": np.exp(ln_pga),
                "share_oq": oq_share, "share_phys": physics, "d_phys": physics - oq_share,
                "share_exp": expected, "share_oq_finite": fin_share})
            if model:
                version, family, booster = model
                from training.models import predict

                req = pd.DataFrame({"scenario_id": "peer", "cell_id": cells["cell_id"], "time": now,
                                    "magnitude": float(seismic.mw_to_ml(mw)), "epicentre_lat": lat,
                                    "epicentre_lon": lon, "depth_km": depth})
                rows = eq.build_rows(src, req)
                pred = predict(family, booster, rows[list(eq.FEATURES)])
                raw = np.clip(pred, 0, 1)
                served = eq.SERVING.combine(rows, pred)["value"].to_numpy()
                frame["share_model"] = raw if args.no_floor else served
                frame["d_model"] = frame["share_model"] - oq_share
                frame["d_raw"] = raw - oq_share
            if args.per_cell:
                print(f"\n{name}: Mw {mw} at {lat} N {lon} E, {depth:g} km (OpenQuake {point['seconds']:.1f} s)")
                print(frame.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
            strong = frame["pga_oq"] > STRONG_G
            row = {"scenario": name, "oq_s": point["seconds"],
                   "pga_mad_ln": np.abs(np.log(frame["pga_phys"] / frame["pga_oq"])).mean(),
                   "phys_mad": frame["d_phys"].abs().mean(), "phys_mean": frame["d_phys"].mean(),
                   "phys_max": frame["d_phys"].abs().max(),
                   "expected_mean": (frame["share_exp"] - oq_share).mean(),
                   "finite_vs_point": (fin_share - oq_share).mean(),
                   "finite_pga_ln": np.log(fin_pga / oq_pga).mean(), "cells>0.3g": int(strong.sum())}
            if model:
                row |= {"model_mad": frame["d_model"].abs().mean(), "model_mean": frame["d_model"].mean(),
                        "model_worst>0.3g": frame.loc[strong, "d_model"].min() if strong.any() else np.nan,
                        "raw_mad": frame["d_raw"].abs().mean(),
                        "raw_worst>0.3g": frame.loc[strong, "d_raw"].min() if strong.any() else np.nan}
            summary.append(row)
    print("\nDifferences against OpenQuake's median-field scenario_damage (point-like rupture), per scenario:")
    print("  pga_mad_ln: mean |ln PGA physics - ln PGA OpenQuake|; phys_*: moderate-or-worse share, physics")
    print("  (median field) minus OpenQuake; expected_mean: the features' expected share (BSSA14 scatter")
    print("  integrated) minus OpenQuake's median field; finite_*: OpenQuake's finite rupture minus its point one;")
    print("  model_*: the served answer (raw prediction with --no-floor) minus OpenQuake; model_worst>0.3g:")
    print("  most negative on cells above 0.3 g; raw_*: the same for the raw clipped prediction, no floor.")
    print(pd.DataFrame(summary).to_string(index=False, float_format=lambda x: f"{x:.4f}"))


if __name__ == "__main__":
    main()

"""Run one OpenQuake job and write its ground motion and damage as JSON (runs in bench/.oq-venv).

Usage: bench/.oq-venv/bin/python bench/openquake_run.py JOB_INI OUT_JSON

Kept apart from bench/openquake_peer.py because OpenQuake lives in its own environment (see
bench/openquake_setup.sh); this file imports nothing of the project. Output: ``{"seconds", "sites":
{"lon", "lat", "pga_g"}, "assets": {"id", "site", "number", "damage": [[no, slight, moderate, extensive,
complete], ...]}}``, damage as mean building counts over the scenario's ground-motion fields.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("OQ_DISTRIBUTE", "no")  # a few sites: one process is fastest and leaves the cores free

import numpy as np  # noqa: E402
from openquake.calculators import base  # noqa: E402
from openquake.commonlib import logs  # noqa: E402


def main(job_ini: str, out: str) -> None:
    start = time.perf_counter()
    with logs.init(job_ini, log_level="warn") as log:
        calc = base.calculators(log.get_oqparam(), log.calc_id)
        calc.run()
    ds = calc.datastore
    gmf = ds["gmf_data"]
    sid, pga = gmf["sid"][()], gmf["PGA"][()]
    sites = ds["sitecol"]
    mean_pga = [float(pga[sid == s].mean()) if (sid == s).any() else 0.0 for s in range(len(sites))]
    assets = ds["assetcol"].array
    # (assets, realisations[, loss types]) of records (no_damage, slight, ...): first realisation, structural.
    damage = ds["damages-rlzs"][()][:, 0]
    damage = np.array(damage.tolist(), dtype=float).reshape(len(damage), -1)
    result = {
        "seconds": time.perf_counter() - start,
        "sites": {"lon": sites.lons.tolist(), "lat": sites.lats.tolist(), "pga_g": mean_pga},
        "assets": {"id": [a.decode() for a in assets["id"]], "site": assets["site_id"].tolist(),
                   "number": assets["value-number"].tolist(),
                   "damage": damage.tolist()},
    }
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

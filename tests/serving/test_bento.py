"""`bentoml build` packages the service with its models and data snapshot; the Bento serves on its own,
with no MLflow store and no raw data behind it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import httpx

from tests.serving.conftest import ROOT, free_port, stop_server, wait_ready


def test_built_bento_serves_without_mlflow_or_raw_data(served, tmp_path):
    build = subprocess.run([sys.executable, "-m", "bentoml", "build", "--output", "tag"], cwd=ROOT,
                           capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    tag = build.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    assert tag.startswith("urban_safety_risk:")

    # A home of its own (a copy holding the Bento): a server starting in a BentoML home clears its metrics
    # files, which would wipe the session server's /metrics.
    home = shutil.copytree(os.environ["BENTOML_HOME"], tmp_path / "bentoml", ignore=shutil.ignore_patterns(
        "prometheus_multiproc_dir"))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/nothing-here.db",
           "URBAN_SAFETY_DATA_DIR": str(tmp_path / "no-data"), "BENTOML_HOME": str(home)}
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", tag, "--port", str(port), "--host", "127.0.0.1"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        resp = httpx.post(f"{url}/risk", json={"domain": "flood", "locations": [{"lat": 37.4777, "lon": 126.6249}]},
                          timeout=30)
        assert resp.status_code == 200, resp.text
        assert resp.json()["results"][0]["model_version"].startswith("urban-safety-flood v")
    finally:
        stop_server(proc)

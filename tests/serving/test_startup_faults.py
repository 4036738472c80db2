"""A champion missing, or its booster file corrupt, when the service starts: the problem is reported per
domain, the other domains load, and the service says it is not ready instead of crashing.

BentoML reads BENTOML_HOME when first used, so each check runs in its own process with a private home.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.serving.conftest import ROOT, free_port, stop_server

# Fill a BentoML home with one model per domain as `plan` says ("lightgbm", "xgboost", "missing", or
# "truncated-<family>": the booster file cut in half), optionally with the data snapshot, then load the
# models the way the service does and print what load_models and the engine report.
PREPARE = """
import json, shutil, sys, tempfile
from pathlib import Path
import bentoml, lightgbm as lgb, numpy as np, xgboost as xgb
from features.registry import domains
from serving import model_store
from features.store import file_sha256
from urban_safety.settings import Settings

settings_json, plan, snapshot = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "snapshot"
rng = np.random.default_rng(0)
for name, how in plan.items():
    if how == "missing":
        continue
    family = how.removeprefix("truncated-")
    features = list(domains()[name].features)
    X, y = rng.random((300, len(features))), rng.random(300)
    if family == "lightgbm":
        booster = lgb.train({"verbose": -1}, lgb.Dataset(X, y, feature_name=features), 20)
    else:
        booster = xgb.train({}, xgb.DMatrix(X, y, feature_names=features), 20)
    staged = Path(tempfile.mkdtemp()) / model_store.BOOSTER_FILE[family]
    booster.save_model(str(staged))
    meta = {"family": family, "features": features, "registered_model": f"urban-safety-{name}",
            "registry_version": "1", "run_id": "r" + name, "holdout_metrics": {},
            "booster_sha256": file_sha256(staged)}
    with bentoml.models.create(model_store.bento_name(name), labels={"domain": name}, metadata=meta) as model:
        shutil.copyfile(staged, Path(model.path) / model_store.BOOSTER_FILE[family])
    if how.startswith("truncated-"):  # the file in the store (create() wrote into a temporary folder)
        stored = bentoml.models.get(model.tag)
        path = Path(stored.path) / model_store.BOOSTER_FILE[family]
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
if snapshot:
    model_store.snapshot_sources(Settings.model_validate_json(settings_json))
models, problems = model_store.load_models()
out = {"loaded": sorted(models), "problems": problems}
if snapshot:
    from serving.engine import Engine
    out["info"] = Engine(model_store.load_context()[0], models, problems).models_info()
print("RESULT " + json.dumps(out, default=str))
"""


def prepare(home, settings, plan: dict[str, str], snapshot: bool) -> dict:
    env = {**os.environ, "BENTOML_HOME": str(home)}
    args = [sys.executable, "-c", PREPARE, settings.model_dump_json(), json.dumps(plan),
            "snapshot" if snapshot else "no"]
    # errors="replace": a crashing native library may print arbitrary bytes
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, errors="replace", timeout=300)
    assert done.returncode == 0, f"exit {done.returncode} (-6: aborted): {done.stderr[-3000:]}"
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


PLAN = {"flood": "missing", "traffic": "lightgbm", "earthquake": "truncated-xgboost", "fine_dust": "xgboost"}


@pytest.fixture(scope="module")
def faulty_home(small_tables, tmp_path_factory):
    """A BentoML home where flood has no model and earthquake's booster is cut in half."""
    home = tmp_path_factory.mktemp("bentoml-faults")
    return home, prepare(home, small_tables, PLAN, snapshot=True)


def test_a_missing_model_is_named_and_the_other_domains_load(faulty_home):
    _, out = faulty_home
    assert out["loaded"] == ["fine_dust", "traffic"]
    assert "no urban-safety-flood in the BentoML model store" in out["problems"]["flood"]


def test_a_corrupt_booster_is_reported_not_raised(faulty_home):
    _, out = faulty_home
    assert out["problems"]["earthquake"].startswith("urban-safety-earthquake could not be loaded: ValueError")
    assert "checksum" in out["problems"]["earthquake"]
    assert set(out["problems"]) == {"flood", "earthquake"}


def test_the_engine_is_not_ready_and_says_why(faulty_home):
    _, out = faulty_home
    info = out["info"]
    assert info["ready"] is False
    for domain in ("flood", "earthquake"):
        assert info["domains"][domain] == {"status": "unavailable", "reason": out["problems"][domain]}
    assert {info["domains"][d]["status"] for d in ("traffic", "fine_dust")} == {"serving"}


def test_a_truncated_lightgbm_booster_is_reported_not_fatal(small_tables, tmp_path):
    out = prepare(tmp_path / "bentoml", small_tables, {"fine_dust": "truncated-lightgbm"}, snapshot=False)
    # LightGBM would abort the process parsing a file cut mid-tree: the checksum stops it first.
    assert out["problems"]["fine_dust"].startswith("urban-safety-fine_dust could not be loaded")
    assert "checksum" in out["problems"]["fine_dust"]


def test_a_server_missing_a_model_answers_but_is_not_ready(faulty_home, tmp_path):
    home, out = faulty_home
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "serving.service:RiskService",
                                 "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, stdout=sink,
                                stderr=subprocess.STDOUT, env={**os.environ, "BENTOML_HOME": str(home)}, start_new_session=True)
    try:
        models = None
        deadline = time.monotonic() + 120
        while models is None:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                resp = httpx.get(f"{url}/models", timeout=2)
                models = resp.json() if resp.status_code == 200 else None
            except httpx.TransportError:
                time.sleep(0.3)
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 503
        assert models["ready"] is False
        assert models["domains"]["flood"] == {"status": "unavailable", "reason": out["problems"]["flood"]}
        assert models["domains"]["fine_dust"]["status"] == "serving"
        resp = httpx.post(f"{url}/risk", json={"domain": "flood", "locations": [{"lat": 37.4777, "lon": 126.6249}]},
                          timeout=30)
        assert resp.status_code == 503 and "not available" in resp.json()["error"]
        ok = httpx.post(f"{url}/risk", json={"domain": "fine_dust", "locations": [{"lat": 37.4777, "lon": 126.6249}]},
                        timeout=30)
        assert ok.status_code == 200, ok.text
    finally:
        stop_server(proc)

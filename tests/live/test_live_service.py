"""Live operation end to end: a real service and a real live cycle following one observation store.

A storm is replayed hour by hour through the ingest paths at accelerated time: the answers follow the rain
up and down, alerts open at exactly the cells the cycle's map puts at the alert level and clear when the rain
stops, each reaches a real webhook receiver once. A service killed in the middle of a batch loses nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pandas as pd
import pytest

from features.registry import LEVELS
from tests.serving.conftest import ROOT, free_port, stop_server, wait_ready

SECRET = "storm-test-secret"
ALERT_FROM = "경계"


class Receiver(BaseHTTPRequestHandler):
    """A duty system's webhook: verifies the signature, acts on each idempotency key once."""

    acted: dict[str, dict] = {}
    attempts: list[str] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        key = self.headers.get("Idempotency-Key", "")
        type(self).attempts.append(key)
        sig = self.headers.get("X-Urban-Safety-Signature", "")
        good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(sig, good):
            self.send_response(401)
            self.end_headers()
            return
        type(self).acted.setdefault(key, json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def live(small_tables, tiny_champions, tmp_path_factory):
    """A private copy of the small city's data and of the session's tiny champions (tests/live/conftest.py),
    a served process and a live cycle, all on one SQLite observation store; yields a dict of what the tests
    need."""
    base = tmp_path_factory.mktemp("live")
    data, root, home = base / "data", base / "project", base / "bentoml"
    shutil.copytree(small_tables.data, data, ignore=shutil.ignore_patterns("live.db*"))
    shutil.copytree(tiny_champions, root)
    settings = small_tables.model_copy(update={"data_dir": data, "root": root})
    env_keep = {k: os.environ.get(k) for k in ("BENTOML_HOME", "MLFLOW_TRACKING_URI")}
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    env = {**os.environ, "BENTOML_HOME": str(home), "URBAN_SAFETY_DATA_DIR": str(data),
           "URBAN_SAFETY_ROOT": str(root), "URBAN_SAFETY_GRID_M": str(settings.grid_m), "URBAN_SAFETY_YEARS": "1",
           "URBAN_SAFETY_START": str(settings.start), "URBAN_SAFETY_SEED": str(settings.seed),
           "URBAN_SAFETY_FOLLOW_S": "0.5", "URBAN_SAFETY_WORKERS": "2",
           "URBAN_SAFETY_WEBHOOKS": f"http://127.0.0.1:{receiver.server_port}/hook",
           "URBAN_SAFETY_WEBHOOK_SECRET": SECRET, "URBAN_SAFETY_WEBHOOK_BACKOFF_S": "0.1"}
    subprocess.run([sys.executable, "-m", "urban_safety.cli", "serve", "--prepare-only"], env=env, check=True,
                   cwd=ROOT, capture_output=True)
    logs = tmp_path_factory.mktemp("live-logs")
    procs = []

    def start_server():
        port = free_port()
        log = open(logs / f"server-{port}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "serving.service:RiskService",
                                 "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, Path(log.name))
        return url, proc

    url, server = start_server()
    inbox = base / "inbox"
    cycle_log = open(logs / "live.log", "w")  # noqa: SIM115
    loop = subprocess.Popen([sys.executable, "-m", "urban_safety.cli", "live", "--inbox", str(inbox),
                             "--interval", "3600", "--poll", "0.5"], env=env, cwd=ROOT, stdout=cycle_log,
                            stderr=subprocess.STDOUT)
    procs.append(loop)
    try:
        yield {"url": url, "server": server, "start_server": start_server, "inbox": inbox, "env": env,
               "settings": settings, "city": settings.city_config, "loop_log": Path(cycle_log.name)}
    finally:
        for proc in procs:
            if proc is loop:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
            else:
                stop_server(proc)
        receiver.shutdown()
        for k, v in env_keep.items():
            if v is not None:
                os.environ[k] = v


def _hour_of(live) -> pd.Timestamp:
    with httpx.Client(base_url=live["url"], timeout=60) as http:
        return pd.Timestamp(http.get("/domains").json()["domains"]["flood"]["default_at"])


def _post_hour(http, city, t: pd.Timestamp, rain: float, forecast: list[float]) -> int:
    """One hour of the storm as the feeds deliver it: the nowcast issued at t (API items, leads 1-6), every
    station's rain, the tide gauge's observation and its prediction for the next hours."""
    points = {(s.nx, s.ny) for s in city.weather_stations if s.nx is not None}
    base = t - pd.Timedelta(minutes=30)  # KMA issues at HH30 for the hours from HH+1
    items = [{"baseDate": f"{base:%Y%m%d}", "baseTime": f"{base:%H%M}", "category": "RN1", "nx": nx, "ny": ny,
              "fcstDate": f"{t + pd.Timedelta(hours=k - 1):%Y%m%d}", "fcstTime": f"{t + pd.Timedelta(hours=k - 1):%H%M}",
              "fcstValue": "강수없음" if not forecast[k - 1] else f"{forecast[k - 1]:.1f}mm"}
             for nx, ny in points for k in range(1, 7)]
    answers = [http.post("/observations", json={"source": "nowcast", "rows": items})]
    for kind in ("asos", "aws"):
        rows = [{"station_id": s.id, "time": f"{t:%Y-%m-%d %H:%M}", "rain_mm": rain, "temp_c": 24.0}
                for s in city.weather_stations if s.kind == kind]
        answers.append(http.post("/observations", json={"source": kind, "rows": rows}))
    tide = [{"station": city.tide.station, "time": f"{t + pd.Timedelta(hours=k):%Y-%m-%d %H:%M}",
             "tide_pred_cm": 600.0, **({"tide_cm": 610.0} if k == 0 else {})} for k in range(0, 7)]
    answers.append(http.post("/observations", json={"source": "tide", "rows": tide}))
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json()["refused"] == 0, answer.json()
    return max(a.json()["batch"] for a in answers)


def _wait(predicate, seconds: float = 60, what: str = "condition", log: Path | None = None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}" + (f"; its log ends:\n{log.read_text()[-3000:]}" if log else ""))


def test_storm_replay_follows_the_rain_and_alerts_at_the_right_cells(live):
    city, start = live["city"], _hour_of(live)
    storm = [0.0, 15.0, 45.0, 90.0, 40.0, 5.0, 0.0, 0.0]  # mm in each hour
    rank = {ko: i for i, (ko, _) in enumerate(LEVELS)}
    values, alert_cells = [], []
    with httpx.Client(base_url=live["url"], timeout=120) as http:
        for i, rain in enumerate(storm):
            t = start + pd.Timedelta(hours=i + 1)
            ahead = (storm[i + 1:] + [0.0] * 6)[:6]
            version = _post_hour(http, city, t, rain, ahead)  # the store's version with the whole hour in
            # Every worker takes the whole hour within seconds: ask until the store version includes the
            # hour's last batch (several asks in a row, so both workers are seen), then the default time is t.
            for _ in range(6):
                _wait(lambda v=version: http.get("/readyz").json()["store_version"] >= v, what=f"the hour {t} taken")
            time.sleep(1.5)  # three of the workers' 0.5 s looks at the store: the other worker has it too
            assert http.get("/domains").json()["domains"]["flood"]["default_at"] == t.isoformat()
            fmap = http.post("/risk_map", json={"domain": "flood"}).json()
            assert fmap["metadata"]["at"] == t.isoformat() and fmap["metadata"]["stale"] == []
            props = pd.DataFrame([f["properties"] for f in fmap["features"]])
            values.append(props["value"].astype(float).mean())
            alert_cells.append(set(props.loc[props["level"].map(rank).fillna(-1) >= rank[ALERT_FROM], "cell_id"]))
            # The live cycle maps the same hour; its open flood alert holds exactly the cells at the alert level.
            def cycle_done(t=t, version=version):
                cycles = http.get("/replay", params={"domain": "flood", "hours": 48}).json()
                return any(c["at"] == t.isoformat() and c["store_version"] >= version for c in cycles["steps"])
            _wait(cycle_done, 120, f"a live cycle at {t}", live["loop_log"])
            alerts = http.get("/alerts", params={"status": "open", "domain": "flood"}).json()["alerts"]
            opened = {c["cell_id"] for a in alerts if a.get("lead_hours") in (0, 3)
                      for c in http.get(f"/alerts/{a['id']}", params={"cell_limit": 5000}).json()["cells"]}
            if alert_cells[-1]:
                assert opened == alert_cells[-1]
            else:
                assert not opened
    peak = storm.index(max(storm))
    # The answers follow the rain up and down.
    assert values[peak] > values[0] * 2 and values[peak] > values[-1] * 2
    assert all(values[k] <= values[k + 1] for k in range(0, peak - 1))
    # Alerts opened in the storm and cleared after it; each event reached the receiver once (signed).
    assert any(alert_cells), "the storm put no cell at the alert level: the test storm is too weak"
    assert not alert_cells[-1]
    _wait(lambda: Receiver.acted, 60, "webhook deliveries")
    kinds = [e.get("event", e).get("kind") for e in Receiver.acted.values()]
    assert "opened" in kinds and "cleared" in kinds
    assert len(Receiver.acted) == len(set(Receiver.attempts))


def test_a_service_killed_mid_batch_loses_nothing(live):
    city, t = live["city"], _hour_of(live) + pd.Timedelta(days=30)
    rows = [{"station_id": s.id, "time": f"{t + pd.Timedelta(hours=h):%Y-%m-%d %H:%M}", "rain_mm": float(h % 9)}
            for h in range(2000) for s in city.weather_stations if s.kind == "aws"][:10_000]
    url, server = live["url"], live["server"]
    sent = threading.Thread(target=lambda: _swallow(lambda: httpx.post(f"{url}/observations", timeout=60,
                                                                      json={"source": "aws", "rows": rows})))
    sent.start()
    time.sleep(0.3)
    stop_server(server, hard=True)  # the whole server, workers included, mid-request
    sent.join()
    url, live["server"] = live["start_server"]()
    live["url"] = url
    again = httpx.post(f"{url}/observations", json={"source": "aws", "rows": rows}, timeout=120).json()
    assert again["accepted"] + again["duplicate"] == len(rows) and again["refused"] == 0
    from live.db import store_url
    from live.store import ObservationStore

    held = ObservationStore(store_url(live["settings"])).frame("aws")
    mine = held[held["time"] >= t]
    assert len(mine) == len(rows) and not mine.duplicated(["station_id", "time"]).any()


def _swallow(fn):
    with contextlib.suppress(httpx.HTTPError):
        fn()


def test_a_watcher_killed_mid_file_resumes_and_counts_each_row_once(live, tmp_path):
    city, t = live["city"], _hour_of(live) + pd.Timedelta(days=60)
    inbox = tmp_path / "inbox"
    (inbox / "aws").mkdir(parents=True)
    lines = ["지점,일시,강수량(mm)"] + [f"{s.id},{t + pd.Timedelta(hours=h):%Y-%m-%d %H:%M},{h % 5}.0"
                                      for h in range(3000) for s in city.weather_stations if s.kind == "aws"]
    drop = inbox / "aws" / "OBS_AWS_TIM_storm.csv"
    drop.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.utime(drop, (0, 0))
    cmd = [sys.executable, "-m", "urban_safety.cli", "ingest", "--watch", str(inbox)]
    watcher = subprocess.Popen(cmd, env=live["env"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(lambda: any((inbox / ".processing").glob("*")) if (inbox / ".processing").exists() else False, 120,
          "the watcher to claim the file")
    watcher.kill()
    watcher.wait()
    done = subprocess.run([*cmd, "--once"], env=live["env"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (inbox / "done" / "aws" / "OBS_AWS_TIM_storm.csv").exists()
    assert not any((inbox / ".processing").iterdir())
    from live.db import store_url
    from live.store import ObservationStore

    held = ObservationStore(store_url(live["settings"])).frame("aws")
    mine = held[held["time"] >= t]
    assert len(mine) == len(lines) - 1 and not mine.duplicated(["station_id", "time"]).any()


def test_read_your_writes_and_the_untidy_rows_a_feed_sends(live):
    """Once POST /observations has answered, the same worker's next answer includes the rows; a future row,
    a row off the hour and the API's whole JSON response are read as the time rules and the docs say."""
    city = live["city"]
    slot = (_hour_of(live) - pd.Timedelta(days=40)).floor("D") + pd.Timedelta(hours=3)
    station = next(s for s in city.weather_stations if s.kind == "asos" and not s.upwind)
    ask = {"domain": "traffic", "at": slot.isoformat(), "locations": [{"lat": station.lat, "lon": station.lon}]}
    with httpx.Client(base_url=live["url"], timeout=120) as http:  # one keep-alive connection: one worker
        before = http.post("/risk", json=ask).json()["results"][0]["details"]["rain_3h_mm"]
        rows = [{"station_id": s.id, "time": f"{slot - pd.Timedelta(hours=h):%Y-%m-%d %H:%M}", "rain_mm": 25.0}
                for s in city.weather_stations if s.kind == "asos" for h in (0, 1, 2)]
        posted = http.post("/observations", json={"source": "asos", "rows": rows})
        assert posted.status_code == 200 and posted.json()["accepted"] == len(rows), posted.text
        after = http.post("/risk", json=ask).json()["results"][0]["details"]["rain_3h_mm"]
        assert after == 75.0 != before
        untidy = http.post("/observations", json={"source": "asos", "rows": [
            {"station_id": station.id, "time": f"{slot:%Y-%m-%d} 02:30", "rain_mm": 0.0},
            {"station_id": station.id, "time": "2099-01-01 00:00", "rain_mm": 1.0}]}).json()
        assert untidy["accepted"] == 0 and [r["row"] for r in untidy["refusals"]] == [1, 2]
        assert "off the hour" in untidy["refusals"][0]["reason"] and "future" in untidy["refusals"][1]["reason"]
        assert http.post("/risk", json=ask).json()["results"][0]["details"]["rain_3h_mm"] == 75.0
        whole = {"response": {"header": {"resultCode": "00", "resultMsg": "NORMAL_SERVICE"},
                              "body": {"dataType": "JSON", "items": {"item": [
                                  {"stnId": str(station.id), "tm": f"{slot:%Y-%m-%d %H:%M}", "rn": "30.0"}]},
                                  "pageNo": 1, "numOfRows": 10, "totalCount": 1}}}
        answer = http.post("/observations", json={"source": "asos", "response": whole}).json()
        assert answer["accepted"] == 1 and answer["refused"] == 0, answer
        assert http.post("/risk", json=ask).json()["results"][0]["details"]["rain_3h_mm"] == 80.0
        for path in ("/grid", "/domains", "/alerts", "/dashboard"):
            head = http.head(path)
            assert head.status_code == 200 and head.content == b"", path


def test_a_quake_posted_to_the_service_opens_an_impact_alert_within_a_minute(live):
    """Pohang 2017's size and depth under the city, posted as a feed would: the live cycle's impact alert
    (PAGER colour, ranges, districts) is open and delivered within 60 s; KMA's revision updates it, and a
    station record far above the median raises the nearest cell and narrows its range."""
    from features.clock import now_kst
    from live.impact import COLOURS, IMPACT_LEAD

    t = pd.Timestamp(now_kst()).floor("s") - pd.Timedelta(seconds=20)
    event = f"KMA-{t:%Y%m%d%H%M%S}"
    quake = {"time": f"{t:%Y-%m-%d %H:%M:%S}", "magnitude": 5.5, "magnitude_type": "Mw", "lat": 37.45,
             "lon": 126.70, "depth_km": 7}
    with httpx.Client(base_url=live["url"], timeout=120) as http:
        def alert():
            alerts = http.get("/alerts", params={"status": "open", "domain": "earthquake"}).json()["alerts"]
            return next((a for a in alerts if a.get("subject") == event), None)

        def events(kind):
            found = alert()
            return found and [e for e in http.get(f"/alerts/{found['id']}").json()["events"] if e["kind"] == kind]

        posted = time.monotonic()
        answer = http.post("/observations", json={"source": "quakes", "rows": [quake]}).json()
        assert answer["accepted"] == 1, answer
        opened = _wait(alert, 60, "the impact alert", live["loop_log"])
        assert time.monotonic() - posted < 60
        impact = opened["impact"]
        assert opened["lead_hours"] == IMPACT_LEAD and impact["colour"] in COLOURS
        assert opened["level"] == LEVELS[COLOURS.index(impact["colour"])][0]
        for quantity in ("deaths", "loss", "damaged_buildings"):
            assert impact[quantity]["p05"] <= impact[quantity]["mean"] <= impact[quantity]["p95"], quantity
        assert impact["districts"] and impact["districts"][0]["loss_krw"] > 0
        _wait(lambda: any(p["alert"].get("subject") == event and p["event"]["kind"] == "opened"
                          for p in list(Receiver.acted.values())), 60, "the webhook of the impact alert")

        revised = {**quake, "time": f"{t + pd.Timedelta(seconds=1):%Y-%m-%d %H:%M:%S}", "magnitude": 5.6,
                   "magnitude_type": "ML", "lat": 37.46}
        assert http.post("/observations", json={"source": "quakes", "rows": [revised]}).json()["accepted"] == 1
        (update,) = _wait(lambda: events("updated") or events("escalated"), 60, "the revision", live["loop_log"])
        assert update["changes"]["magnitude"] == [5.5, 5.6]

        worst = http.get(f"/alerts/{opened['id']}", params={"cell_limit": 1}).json()["cells"][0]
        record = {"event_no": event, "station": "TEST1", "lat": worst["lat"], "lon": worst["lon"],
                  "pga": round(3 * worst["pga_g"], 4), "unit": "g"}
        assert http.post("/observations", json={"source": "quake_stations", "rows": [record]}).json()["accepted"] == 1
        _wait(lambda: any(e["changes"].get("stations") == [0, 1] for e in events("updated") + events("escalated")),
              60, "the update from the station record", live["loop_log"])
        cells = http.get(f"/alerts/{opened['id']}", params={"cell_limit": 5000}).json()["cells"]
        after = next(c for c in cells if c["cell_id"] == worst["cell_id"])
    assert after["pga_g"] > 2 * worst["pga_g"]
    assert after["pga_g_p95"] / after["pga_g_p05"] < 0.5 * worst["pga_g_p95"] / worst["pga_g_p05"]

"""Live operation figures on the project's data (run `./scripts/run.sh` or `urban-safety serve --prepare-only` first).

Prints, in one run, on a private copy of the observation store and of BentoML's model store:
- rows/s into the store through ``POST /observations`` (2 workers) and through the inbox, against the
  store's own append (``ObservationStore.append`` of the same frames, the floor every way in pays);
- the time from a rain row posted to a changed ``/risk`` answer at its station (p50/p99), a new hour's row
  and a correction of it, against the workers' polling interval (the floor);
- the live cycle's wall time per domain (every cell, every lead) after a new hour, against the 5 s target;
- the first-delivery latency of alert webhooks (``deliveries.first_attempt_at - queued_at``, wall clock: an
  event recorded -> its first POST to the receiver), p50 and max over the stated number of events, against
  the 5 s target: the events of a storm and its end through the live cycle (this process's deliverer) and
  ``--acks`` acknowledgements through ``POST /alerts/{id}/ack`` (the service workers' deliverers), to a local
  receiver that verifies each Standard Webhooks signature.

    .venv/bin/python bench/live_ops.py [--batches 20] [--rows 1000] [--trials 30] [--cycles 3] [--acks 50]
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import ROOT, free_port, start, stop  # noqa: E402
from urban_safety.settings import get_settings  # noqa: E402


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def rows_for(city, first: pd.Timestamp, n: int, kind: str = "aws") -> list[dict]:
    stations = [s.id for s in city.weather_stations if s.kind == kind]
    hours = -(-n // len(stations))
    return [{"station_id": sid, "time": f"{first + pd.Timedelta(hours=h):%Y-%m-%d %H:%M}", "rain_mm": float(h % 7)}
            for h in range(hours) for sid in stations][:n]


def receiver() -> tuple[ThreadingHTTPServer, str, list[tuple[float, str]]]:
    """A local webhook endpoint: verifies each delivery's signature (``standardwebhooks``), answers 200 and
    notes (arrival, webhook-id); (server, its secret, the arrivals)."""
    from standardwebhooks.webhooks import Webhook

    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    arrivals: list[tuple[float, str]] = []

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            at = time.time()
            body = self.rfile.read(int(self.headers["Content-Length"]))
            Webhook(secret).verify(body, dict(self.headers.items()))
            arrivals.append((at, self.headers["webhook-id"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, secret, arrivals


def storm_hour(store, city, t: pd.Timestamp, rain: float, ahead: list[float]) -> None:
    """One hour of a storm as the feeds deliver it, through the ingest path: every station's rain, the
    nowcast issued for t (leads 1-6, as KMA's API items), the tide gauge's reading and its prediction."""
    from live.ingest import ingest_rows

    points = {(s.nx, s.ny) for s in city.weather_stations if s.nx is not None}
    base = t - pd.Timedelta(minutes=30)  # KMA issues at HH30 for the hours from HH+1
    items = [{"baseDate": f"{base:%Y%m%d}", "baseTime": f"{base:%H%M}", "category": "RN1", "nx": nx, "ny": ny,
              "fcstDate": f"{t + pd.Timedelta(hours=k - 1):%Y%m%d}", "fcstTime": f"{t + pd.Timedelta(hours=k - 1):%H%M}",
              "fcstValue": "강수없음" if not ahead[k - 1] else f"{ahead[k - 1]:.1f}mm"}
             for nx, ny in points for k in range(1, 7)]
    batches = {"nowcast": items, **{kind: [{"station_id": s.id, "time": f"{t:%Y-%m-%d %H:%M}", "rain_mm": rain}
                                          for s in city.weather_stations if s.kind == kind] for kind in ("asos", "aws")}}
    if city.tide is not None:
        batches["tide"] = [{"station": city.tide.station, "time": f"{t + pd.Timedelta(hours=k):%Y-%m-%d %H:%M}",
                            "tide_pred_cm": 600.0, **({"tide_cm": 610.0} if k == 0 else {})} for k in range(7)]
    for source, rows in batches.items():
        result = ingest_rows(store, source, rows, city, "bench")
        assert not result.refused, (source, result.refused[:3])


def first_deliveries(db, after: int, seconds: float = 60) -> list[tuple[int, str, float, datetime]]:
    """(event id, kind, first-delivery delay in s, queued_at) of every event after ``after``, once every one
    of them had its first attempt (or ``seconds`` passed)."""
    import sqlalchemy as sa

    from live.alerts import ALERT_EVENTS
    from live.webhooks import DELIVERIES

    d, e = DELIVERIES.c, ALERT_EVENTS.c
    query = sa.select(d.event_id, e.kind, d.queued_at, d.first_attempt_at).join(
        ALERT_EVENTS, e.id == d.event_id).where(d.event_id > after).order_by(d.event_id)
    deadline = time.monotonic() + seconds
    while True:
        with db.connect() as conn:
            rows = conn.execute(query).fetchall()
        if all(r.first_attempt_at is not None for r in rows) or time.monotonic() > deadline:
            return [(r.event_id, r.kind, (r.first_attempt_at - r.queued_at).total_seconds(), r.queued_at)
                    for r in rows if r.first_attempt_at is not None]
        time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--acks", type=int, default=50, help="acknowledgements posted for the webhook latency")
    args = ap.parse_args()
    settings = get_settings()
    work = Path(tempfile.mkdtemp(prefix="live-bench-"))
    src_db = settings.data / "live.db"
    if not src_db.exists():
        sys.exit(f"no observation store at {src_db}: run ./scripts/run.sh (or urban-safety serve --prepare-only) first")
    shutil.copy(src_db, work / "live.db")
    home = Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml"))
    shutil.copytree(home, work / "bentoml")
    store_url = f"sqlite:///{work / 'live.db'}"
    hook, secret, arrivals = receiver()
    env = {**os.environ, "BENTOML_HOME": str(work / "bentoml"), "URBAN_SAFETY_STORE_URL": store_url,
           "URBAN_SAFETY_WORKERS": "2", "URBAN_SAFETY_FOLLOW_S": "0.2",
           "URBAN_SAFETY_WEBHOOKS": f"http://127.0.0.1:{hook.server_port}/hook", "URBAN_SAFETY_WEBHOOK_SECRET": secret,
           "URBAN_SAFETY_WEBHOOK_BACKOFF_S": "1"}
    subprocess.run([sys.executable, "-m", "urban_safety.cli", "serve", "--prepare-only"], env=env, cwd=ROOT,
                   check=True, capture_output=True)
    os.environ.update({k: env[k] for k in ("BENTOML_HOME", "URBAN_SAFETY_STORE_URL", "URBAN_SAFETY_WEBHOOKS",
                                           "URBAN_SAFETY_WEBHOOK_SECRET", "URBAN_SAFETY_WEBHOOK_BACKOFF_S")})

    from live.ingest import Inbox, read_batch
    from live.store import ObservationStore

    store, city = ObservationStore(store_url), settings.city_config
    newest = store.newest()
    far = max(newest.values()) + pd.Timedelta(days=400)  # ingest-rate rows, clear of the served hours

    # --- rows/s ------------------------------------------------------------------------------------
    batches = [rows_for(city, far + pd.Timedelta(days=30 * b), args.rows) for b in range(3 * args.batches)]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start([sys.executable, "-m", "bentoml", "serve", "serving.service:RiskService", "--port", str(port)],
                 url, "/readyz", env)
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            t0 = time.perf_counter()
            for rows in batches[:args.batches]:
                assert http.post("/observations", json={"source": "aws", "rows": rows}).json()["accepted"] == len(rows)
            api_rate = args.rows * args.batches / (time.perf_counter() - t0)

            inbox_dir = work / "inbox"
            (inbox_dir / "aws").mkdir(parents=True)
            for i, rows in enumerate(batches[args.batches:2 * args.batches]):
                f = inbox_dir / "aws" / f"OBS_AWS_TIM_{i:03d}.csv"
                f.write_text("지점,일시,강수량(mm)\n" + "".join(f"{r['station_id']},{r['time']},{r['rain_mm']}\n"
                                                         for r in rows), encoding="utf-8")
                os.utime(f, (0, 0))
            t0 = time.perf_counter()
            taken = Inbox(inbox_dir, store, city).run_once()
            inbox_rate = sum(r.accepted for _, r, _ in taken if r) / (time.perf_counter() - t0)

            frames = []
            for i, rows in enumerate(batches[2 * args.batches:]):
                f = work / f"direct_{i}.json"
                f.write_text(pd.DataFrame(rows).to_json(orient="records"), encoding="utf-8")
                frames.append(read_batch("aws", f, city).frame)
            t0 = time.perf_counter()
            for frame in frames:
                store.append("aws", frame, "bench")
            direct_rate = args.rows * args.batches / (time.perf_counter() - t0)

            # --- rain row -> changed /risk ---------------------------------------------------------------
            at = http.get("/domains").json()["domains"]["flood"]["default_at"]
            station = next(s for s in city.weather_stations if s.kind == "asos")
            ask = {"domain": "flood", "locations": [{"lat": station.lat, "lon": station.lon}], "at": at}

            def value():
                return http.post("/risk", json=ask).json()["results"][0]["details"]["rain_1h"]

            lags, colds = [], []
            for k in range(args.trials):
                rain = 5.0 + 7.0 * k % 120
                t0 = time.perf_counter()
                http.post("/observations", json={"source": station.kind, "rows": [
                    {"station_id": station.id, "time": at.replace("T", " ")[:16], "rain_mm": rain}]})
                while value() != rain:
                    time.sleep(0.01)
                lags.append(time.perf_counter() - t0)
                t0 = time.perf_counter()  # the same question once more, cached answers dropped by a new row
                http.post("/observations", json={"source": station.kind, "rows": [
                    {"station_id": station.id, "time": at.replace("T", " ")[:16], "rain_mm": rain + 0.5}]})
                while value() != rain + 0.5:
                    time.sleep(0.01)
                colds.append(time.perf_counter() - t0)
        print(f"\ningest ({args.batches} batches x {args.rows} rows of AWS rain)")
        print(f"  {'path':<34} {'rows/s':>10}")
        print(f"  {'POST /observations (2 workers)':<34} {api_rate:>10.0f}")
        print(f"  {'inbox (CSV files)':<34} {inbox_rate:>10.0f}")
        print(f"  {'ObservationStore.append (floor)':<34} {direct_rate:>10.0f}")
        print(f"\nrain row posted -> changed /risk answer at its station ({args.trials} trials)")
        print(f"  p50 {pct(lags, 50):.0f} ms, p99 {pct(lags, 99):.0f} ms (workers poll the store every 0.2 s)")
        print(f"  the same after a correction to the same hour: p50 {pct(colds, 50):.0f} ms, "
              f"p99 {pct(colds, 99):.0f} ms")
        cycle_section(args, work, city, url, arrivals)  # the service stays up: it takes the acknowledgements
    finally:
        stop(proc)
        hook.shutdown()
    shutil.rmtree(work, ignore_errors=True)


def cycle_section(args, work: Path, city, url: str, arrivals) -> None:
    """The live cycle's timings, then the webhooks' first-delivery latency (the service at ``url`` up)."""
    # --- the live cycle -----------------------------------------------------------------------------
    from live.alerts import last_event_id
    from live.cycle import LiveLoop
    from live.db import KST, database
    from live.ingest import read_batch
    from live.webhooks import idempotency_key, start_delivery
    from serving.engine import Engine
    from serving.model_store import load_context, load_models

    sources, cstore, version = load_context()
    models, problems = load_models()
    engine = Engine(sources, models, problems, store=cstore, version=version)
    db = database(cstore.url)
    loop = LiveLoop(engine, db)
    start_delivery(db)  # as `urban-safety live` does: webhooks on their own thread
    loop.step(force=True)  # the first cycle builds the per-source lookups
    per = {}
    hour = max(engine.times(name)[1] for name in engine.specs if name not in engine.unavailable)
    for c in range(args.cycles):
        hour = hour + pd.Timedelta(hours=1)
        rows = [{"station_id": s.id, "time": f"{hour:%Y-%m-%d %H:%M}", "rain_mm": 10.0 + c}
                for s in city.weather_stations if s.kind == "asos"]
        f = work / f"cycle_{c}.json"
        f.write_text(pd.DataFrame(rows).to_json(orient="records"), encoding="utf-8")
        cstore.append("asos", read_batch("asos", f, city).frame, "bench")
        report = loop.step()
        for k, v in report.timings.items():
            per.setdefault(k, []).append(v)
    cold = {}
    for _ in range(args.cycles):  # every map built afresh: what a new slot or day costs a domain
        for cache in (engine._maps, engine._spent, engine._city):
            cache.drop(lambda key: True)
        report = loop.step(force=True)
        for k, v in report.timings.items():
            cold.setdefault(k, []).append(v)
    print(f"\nlive cycle ({args.cycles} cycles each, {len(engine.grid.cells)} cells, flood at 3 leads), seconds")
    print(f"  {'step':<12} {'new hour of rain':>18} {'every map rebuilt':>18}")
    for k in per:
        print(f"  {k:<12} {statistics.median(per[k]):>11.2f} (max {max(per[k]):.2f}) "
              f"{statistics.median(cold[k]):>9.2f} (max {max(cold[k]):.2f})")
    total, worst = statistics.median(per["total"]), statistics.median(cold["total"])
    print(f"  target: new data -> every map refreshed under 5 s: {'met' if max(total, worst) < 5 else 'MISSED'} "
          f"({total:.2f} s after new rain, {worst:.2f} s with every map rebuilt)")

    # --- webhooks: event recorded -> first delivery attempt ------------------------------------------------
    first = last_event_id(db)
    storm = [15.0, 45.0, 90.0, 40.0, 5.0, 0.0, 0.0, 0.0]  # mm in each hour at every station
    for i, rain in enumerate(storm):
        hour = hour + pd.Timedelta(hours=1)
        storm_hour(cstore, city, hour, rain, (storm[i + 1:] + [0.0] * 6)[:6])
        loop.step()
        time.sleep(0.5)  # the feeds' pace, not a burst
    from_cycles = last_event_id(db) - first
    with httpx.Client(base_url=url, timeout=60) as http:
        ids = [a["id"] for a in http.get("/alerts", params={"status": "all", "limit": 20}).json()["alerts"]]
        for k in range(args.acks if ids else 0):
            answer = http.post(f"/alerts/{ids[k % len(ids)]}/ack", json={
                "by": "bench", "action": ("ack", "dismiss")[k % 2], "note": f"bench {k}"})
            assert answer.status_code == 200, answer.text
            time.sleep(0.1)
    delays = first_deliveries(db, first)
    arrived = {}
    for at, hook_id in arrivals:
        arrived.setdefault(hook_id, at)
    hook_url = os.environ["URBAN_SAFETY_WEBHOOKS"]
    # The receiver's view: the first attempt's arrival after the event was queued (first_attempt_at is the
    # start of the delivery round that claimed the row, so it reads a little earlier than the POST).
    seen = {e: arrived[k] - q.replace(tzinfo=KST).timestamp() for e, _, _, q in delays
            if (k := idempotency_key(e, hook_url)) in arrived}
    n = len(delays)
    print(f"\nwebhooks: alert event recorded -> first delivery attempt ({n} events: {from_cycles} from the live "
          f"cycle over a {len(storm)}-hour storm and its end, {n - from_cycles} acknowledgements through "
          f"POST /alerts/{{id}}/ack)")
    if not n:
        print("  no event was recorded: nothing to measure")
        return
    acks = ("acknowledged", "dismissed")
    for label, part in (("live cycle", [r for r in delays if r[1] not in acks]),
                        ("acknowledgements", [r for r in delays if r[1] in acks]), ("all", delays)):
        if part:
            rec, got = [r[2] for r in part], [seen[r[0]] for r in part if r[0] in seen]
            print(f"  {label:<17} {len(part):>4} events: recorded (first_attempt_at - queued_at) p50 "
                  f"{pct(rec, 50):.0f} ms, max {max(rec) * 1000:.0f} ms; at the receiver (arrival - queued_at) "
                  + (f"p50 {pct(got, 50):.0f} ms, max {max(got) * 1000:.0f} ms" if got else "none arrived"))
    worst = max([d for _, _, d, _ in delays] + list(seen.values()))
    print(f"  target: first delivery within 5 s of the event: {'met' if worst < 5 and len(seen) == n else 'MISSED'} "
          f"(max {worst:.2f} s over {n} events; {n - len(seen)} never reached the receiver)")


if __name__ == "__main__":
    main()

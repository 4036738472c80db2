"""Benchmark: whole-city maps at 100 m (Incheon: 55,230 cells), GeoJSON (the baseline) against the compact
form, from the engine to the dashboard's first frame.

Per domain, on the engine in-process (one long-lived Sources, as in the service; median of ``--repeat``
cold builds, caches emptied each time):

- ``predict``: the city's features and predictions (shared by both forms);
- ``geojson`` / ``compact``: writing the answer's bytes from them; ``build`` columns are predict + write,
  the whole cold ``POST /risk_map`` inside the server;
- bytes of each answer, plain and gzip'd at the service's level (serving/service.py ``GZIP_LEVEL``), and
  the time gzip takes (Starlette's GZipMiddleware does that on a worker thread);
- with Chromium (``/usr/bin/chromium``): the dashboard's first draw, page load to the map on screen, with
  this dashboard (GET /grid once, compact maps, one raster) and the previous one (GeoJSON, a path per
  cell; from git, commit ``--baseline-commit``), both against the same answers served from this engine;
  and the median time of one frame while panning.

Models: the project's MLflow champions, trained on the 500 m grid. The feature columns and their
definitions are the same at 100 m (the builders work per cell of whatever grid the data has), so the
boosters run unchanged; per-area inputs (road length, building counts, past accidents per cell) are
smaller on 100 m cells, so the *risk* on that grid is not meaningful, but the work and the bytes are
those of a 100 m map. Training at 100 m (25 x the rows) is the separate, out-of-core job of DESIGN.md
section 7. Prints a table, asserts nothing.

    URBAN_SAFETY_GRID_M=100 URBAN_SAFETY_DATA_DIR=/tmp/d100 .venv/bin/urban-safety data generate --years 1
    URBAN_SAFETY_GRID_M=100 URBAN_SAFETY_DATA_DIR=/tmp/d100 URBAN_SAFETY_YEARS=1 \\
        .venv/bin/python -m bench.map_scale [--repeat 3] [--domain flood] [--no-browser]
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from bench.harness import ROOT, free_port
from features.registry import domains
from features.sources import Sources
from serving.engine import Engine, LoadedModel
from urban_safety.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
BASELINE_COMMIT = "2b9cd42"  # the dashboard before the compact path: GeoJSON, a canvas path per cell


def load_champions(settings: Settings) -> dict[str, LoadedModel]:
    """Every domain's champion from the project's MLflow registry, as the service would load it."""
    from training.champion import current_champion, load_native
    from training.tracking import configure, registered_name

    client, out = configure(settings), {}
    for name in domains():
        champion = current_champion(client, name)
        if champion is None:
            continue
        family, booster = load_native(f"models:/{registered_name(name)}/{champion.version}")
        out[name] = LoadedModel(family, booster, {"registered_model": registered_name(name),
                                                  "registry_version": str(champion.version)})
    return out


def timed(fn, repeat: int, before=None) -> tuple[float, object]:
    """Median seconds of ``repeat`` calls (``before`` runs untimed ahead of each) and the last result."""
    times, out = [], None
    for _ in range(repeat):
        if before:
            before()
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def example(engine: Engine, domain: str) -> dict:
    conds = engine.domains_info()["domains"][domain]["conditions"]
    return {c["name"]: c["example"] for c in conds if c["required"]}


def bench_engine(engine: Engine, names: list[str], repeat: int, level: int) -> dict[str, dict]:
    out = {}
    for name in names:
        spec, model = engine.specs[name], engine.models[name]
        conds = engine.conditions(spec, example(engine, name))
        when = engine.at(spec, None)
        engine._map_table(spec, model, when, conds)  # the per-Sources lookups, built once per domain
        t_predict, table = timed(lambda spec=spec, model=model, when=when, conds=conds:
                                 engine._map_table(spec, model, when, conds), repeat)
        t_geo, geo = timed(lambda table=table: engine._risk_map(table), repeat)
        t_compact, compact = timed(lambda table=table: engine._compact_map(table), repeat)
        t_gz_geo, gz_geo = timed(lambda geo=geo: gzip.compress(geo, level), repeat)
        t_gz_compact, gz_compact = timed(lambda compact=compact: gzip.compress(compact, level), repeat)
        assert json.loads(compact)["metadata"] == json.loads(geo)["metadata"]
        out[name] = {"predict": t_predict, "geojson": t_geo, "compact": t_compact, "bytes_geojson": len(geo),
                     "bytes_compact": len(compact), "gz_geojson": len(gz_geo), "gz_compact": len(gz_compact),
                     "gzip_s_geojson": t_gz_geo, "gzip_s_compact": t_gz_compact}
    return out


class Site(BaseHTTPRequestHandler):
    """The dashboard's page and the API routes its first draw needs, answered from the engine (others 404:
    the alerts, replay and freshness panels then say they are unavailable, which does not touch the map)."""

    engine: Engine
    static: dict[str, bytes]

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, body: bytes, media: str = "application/json", status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?")[0]
        if path == "/dashboard":
            return self._send(self.static["dashboard.html"], "text/html")
        if path.startswith("/static/") and path[8:] in self.static:
            return self._send(self.static[path[8:]], "text/javascript" if path.endswith(".js") else "text/css")
        if path == "/domains":
            return self._send(json.dumps(self.engine.domains_info()).encode())
        if path == "/models":
            return self._send(json.dumps(self.engine.models_info()).encode())
        if path == "/grid":
            return self._send(self.engine.grid_info())
        self._send(b'{"error": "path: not found", "detail": []}', status=404)

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/risk_map":
            return self._send(b'{"error": "path: not found", "detail": []}', status=404)
        self._send(self.engine.risk_map(body["domain"], None, body.get("conditions"), body.get("format", "geojson")))


def bench_browser(engine: Engine, names: list[str], commit: str) -> dict[str, dict]:
    """Page load to the first map drawn (the first domain; then each domain picked), per dashboard."""
    from playwright.sync_api import sync_playwright

    static = {f.name: f.read_bytes() for f in (ROOT / "serving" / "static").iterdir()}
    old = subprocess.run(["git", "show", f"{commit}:serving/static/dashboard.js"], cwd=ROOT, capture_output=True,
                         check=True).stdout
    port = free_port()
    handler = type("Handler", (Site,), {"engine": engine, "static": static})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    drawn = ("d => { const m = document.querySelector('#map');"
             " return m.dataset.domain === d && m.dataset.cells !== '0'; }")
    out: dict[str, dict] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
            for label, script in (("compact", static["dashboard.js"]), ("geojson", old)):
                handler.static = {**static, "dashboard.js": script}
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                start = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/dashboard")
                page.wait_for_selector("#domain option", state="attached", timeout=600_000)
                first = page.input_value("#domain")
                page.wait_for_function(drawn, arg=first, timeout=600_000)
                out.setdefault(first, {})[f"load_{label}"] = time.perf_counter() - start
                for name in names:
                    if name == first:
                        continue
                    start = time.perf_counter()
                    page.select_option("#domain", name)
                    page.wait_for_function(drawn, arg=name, timeout=600_000)
                    out.setdefault(name, {})[f"switch_{label}"] = time.perf_counter() - start
                if label == "compact":  # one frame of a pan: the raster moved, outlines and labels redrawn
                    out["_pan_ms"] = page.evaluate("""() => { const t = [];
                        for (let k = 0; k < 30; k++) { const s = performance.now(); state.xf.tx += 3; render();
                          t.push(performance.now() - s); }
                        t.sort((a, b) => a - b); return t[15]; }""")
                    out["_paint_ms"] = float(page.get_attribute("#map", "data-draw-ms"))
                page.context.close()
            browser.close()
    finally:
        server.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--domain", default="all")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--baseline-commit", default=BASELINE_COMMIT)
    args = parser.parse_args()
    from serving.service import GZIP_LEVEL

    settings = Settings()
    start = time.perf_counter()
    sources = Sources.from_settings(settings)
    sources.loaded(sorted({s for spec in domains().values() for s in spec.sources}))
    models = load_champions(settings)
    engine = Engine(sources, models)
    names = [n for n in engine.specs if args.domain in ("all", n) and n in engine.models]
    grid = engine.grid_info()
    print(f"data: {settings.raw_dir} ({len(engine.grid.cells):,} cells of {engine.grid.size_m} m), loaded in "
          f"{time.perf_counter() - start:.1f} s; models: the 500 m champions; median of {args.repeat} cold builds; "
          f"gzip level {GZIP_LEVEL}")
    print(f"GET /grid (once per client): {len(grid) / 1e6:.2f} MB, gzip {len(gzip.compress(grid, GZIP_LEVEL)) / 1e6:.2f} MB")

    result = bench_engine(engine, names, args.repeat, GZIP_LEVEL)
    for name in names:  # the browser's draws then time transfer, parsing and drawing, not the engine
        for fmt in ("geojson", "compact"):
            engine.risk_map(name, None, example(engine, name), fmt)
    browser = bench_browser(engine, names, args.baseline_commit) if CHROMIUM.exists() and not args.no_browser else {}

    mb = lambda n: f"{n / 1e6:.2f}"  # noqa: E731
    pair = "geojson compact"
    print(f"\n{'':<11} {'':>8} " + " ".join(f"{h:^15}" for h in ("write (s)", "build (s)", "MB", "MB gzip", "gzip (s)",
                                                                 "first draw (s)")))
    print(f"{'domain':<11} {'predict':>8} " + " ".join([pair] * 6))
    for name, r in result.items():
        b = browser.get(name, {})
        draw = [b.get(f"load_{k}", b.get(f"switch_{k}")) for k in ("geojson", "compact")]
        print(f"{name:<11} {r['predict']:>8.2f} {r['geojson']:>7.2f} {r['compact']:>7.2f} "
              f"{r['predict'] + r['geojson']:>7.2f} {r['predict'] + r['compact']:>7.2f} "
              f"{mb(r['bytes_geojson']):>7} {mb(r['bytes_compact']):>7} {mb(r['gz_geojson']):>7} {mb(r['gz_compact']):>7} "
              f"{r['gzip_s_geojson']:>7.2f} {r['gzip_s_compact']:>7.2f} "
              + " ".join(f"{d:>7.2f}" if d is not None else f"{'n/a':>7}" for d in draw))
    if browser:
        print(f"\nfirst draw: page load to the first map on screen for the first domain (GET /domains, /models, "
              f"and /grid for the compact dashboard), then each domain picked; the answers built beforehand, "
              f"sent uncompressed over loopback."
              f"\ncompact dashboard: painting the raster and the first frame {browser['_paint_ms']:.0f} ms; "
              f"one frame of a pan {browser['_pan_ms']:.1f} ms (median of 30)")


if __name__ == "__main__":
    main()

"""The /dashboard page in a real browser (Debian's Chromium driven by Playwright) against the real server.

Screenshots of every domain land in artifacts/dashboard/<domain>.png under the repository root.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the dashboard test needs a real browser",
                allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "dashboard"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 60_000

# The dashboard's ready scenario for each domain (its label in the #scenario select).
SCENARIOS = {"flood": "60 mm/h at high tide", "earthquake": "M5.5 under the west coast",
             "traffic": "Friday evening rain", "fine_dust": "Yellow-dust day"}


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def api(served):
    return {"catalogue": httpx.get(f"{served}/domains", timeout=30).json(),
            "models": httpx.get(f"{served}/models", timeout=30).json()["domains"]}


@pytest.fixture
def page(browser, served):
    """A fresh page on /dashboard, its first map drawn; fails the test on any uncaught script error."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    script_errors: list[str] = []
    pg.on("pageerror", lambda exc: script_errors.append(str(exc)))
    pg.sent = []  # (method, path, body) of every request the page made
    pg.on("request", lambda r: pg.sent.append((r.method, r.url.split("?")[0].removeprefix(served), r.post_data)))
    pg.goto(f"{served}/dashboard")
    pg.wait_for_selector("#domain option", state="attached", timeout=WAIT_MS)  # the catalogue has arrived
    wait_drawn(pg, pg.input_value("#domain"))
    yield pg
    context.close()
    assert not script_errors, script_errors


def wait_drawn(pg, domain: str) -> None:
    pg.wait_for_function("d => { const m = document.querySelector('#map');"
                         " return m.dataset.domain === d && m.dataset.cells !== '0'; }", arg=domain, timeout=WAIT_MS)


def cells_drawn(pg) -> int:
    return int(pg.get_attribute("#map", "data-cells"))


def click_cell(pg, cell_id: str) -> None:
    """A real mouse click on the cell's centre, wherever the page drew it."""
    where = pg.evaluate("id => window.dashboard.cellCentre(id)", cell_id)
    assert where is not None, f"cell {cell_id} is not on the map"
    pg.click("#map", position=where)
    pg.wait_for_selector(f"#details[data-cell='{cell_id}'] .score", timeout=WAIT_MS)


def risk_map_request(domain: str):
    return lambda r: r.url.endswith("/risk_map") and json.loads(r.post_data or "{}").get("domain") == domain


def test_page_draws_every_cell_and_redraws_per_domain(page, api):
    catalogue, models = api["catalogue"], api["models"]
    first = page.input_value("#domain")
    assert set(page.eval_on_selector_all("#domain option", "os => os.map(o => o.value)")) == set(catalogue["domains"])
    assert cells_drawn(page) == catalogue["cells"]
    assert page.text_content("#model-version") == models[first]["model_version"]
    assert page.locator("#legend li").count() == 5  # the four levels and "no data" (a cell answered unknown)
    assert "no data" in page.locator("#legend li").last.text_content()
    assert page.locator("#summary tbody tr").count() >= 1
    assert page.locator("#error").is_hidden()

    SHOTS.mkdir(parents=True, exist_ok=True)
    order = [d for d in catalogue["domains"] if d != first] + [first]
    for domain in order:
        with page.expect_request(risk_map_request(domain), timeout=WAIT_MS):
            page.select_option("#domain", domain)
        wait_drawn(page, domain)
        assert cells_drawn(page) == catalogue["cells"]
        assert page.text_content("#model-version") == models[domain]["model_version"]
        # The conditions form follows the domain's schema, units shown.
        names = [c["name"] for c in catalogue["domains"][domain]["conditions"]]
        assert page.eval_on_selector_all("#fields [name]", "es => es.map(e => e.name)") == names

        # The ready scenario posts its values (those the domain knows), then the worst cell gets clicked.
        if domain in SCENARIOS:
            with page.expect_request(risk_map_request(domain), timeout=WAIT_MS) as req:
                page.select_option("#scenario", label=SCENARIOS[domain])
            sent = json.loads(req.value.post_data)["conditions"]
            assert sent and set(sent) <= set(names), sent
            wait_drawn(page, domain)
        worst = page.evaluate("() => [...document.querySelectorAll('#summary .cell-link')]"
                              ".sort((a, b) => b.value - a.value)[0].title")
        click_cell(page, worst)
        path = SHOTS / f"{domain}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"dashboard screenshot: {path}")

    # The grid came once; every live map was asked for in the compact form.
    assert [m for m, path, _ in page.sent if path == "/grid"] == ["GET"]
    maps = [json.loads(body) for _, path, body in page.sent if path == "/risk_map"]
    assert len(maps) >= len(order) and all(m["format"] == "compact" for m in maps)


def test_the_map_zooms_and_pans_and_cells_stay_clickable(page):
    box = page.locator("#map").bounding_box()
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*centre)
    page.mouse.wheel(0, -600)  # zoom in around the pointer
    page.mouse.down()
    page.mouse.move(centre[0] - 120, centre[1] - 80, steps=5)  # a drag pans; it is no click
    page.mouse.up()
    page.wait_for_timeout(100)
    assert page.get_attribute("#details", "data-cell") is None
    shown = page.evaluate("() => { const r = document.querySelector('#map').getBoundingClientRect(); return r; }")
    cell = page.evaluate("([w, h]) => { for (const b of document.querySelectorAll('#summary .cell-link')) {"
                         " const c = window.dashboard.cellCentre(b.title);"
                         " if (c && c.x > 5 && c.y > 5 && c.x < w - 5 && c.y < h - 5) return b.title; } return null; }",
                         [shown["width"], shown["height"]])
    if cell is None:
        pytest.skip("no listed cell on screen after zooming")
    click_cell(page, cell)
    page.dblclick("#map", position={"x": 5, "y": 5})  # back to the whole city


def test_clicking_a_cell_shows_what_the_api_says(page, api, served):
    domain = page.input_value("#domain")
    cell = page.get_attribute("#summary tbody .cell-link", "title")
    with page.expect_request(lambda r: r.url.endswith("/risk"), timeout=WAIT_MS) as req:
        click_cell(page, cell)
    body = json.loads(req.value.post_data)
    assert body["domain"] == domain and body["locations"] == [{"cell_id": cell}]
    truth = httpx.post(f"{served}/risk", json=body, timeout=60).json()["results"][0]
    assert page.text_content("#details .score .big") == f"{truth['score']:.1f}"
    assert page.text_content("#details .chip") == f"{truth['level']} {truth['level_en']}"
    text = page.text_content("#details")
    assert cell in text and truth["unit"] in text
    assert page.locator("#details .factors tr").count() == len(truth["top_factors"])


def test_a_bad_value_shows_the_servers_message(page, api, served):
    flood = api["catalogue"]["domains"].get("flood")
    if flood is None or "rain_1h" not in [c["name"] for c in flood["conditions"]]:
        pytest.skip("no flood rain_1h condition to get wrong")
    page.select_option("#domain", "flood")
    wait_drawn(page, "flood")
    page.fill("#c-rain_1h", "-5")
    page.click("#draw")
    page.wait_for_selector("#error:not([hidden])", timeout=WAIT_MS)
    shown = page.text_content("#error")
    server = httpx.post(f"{served}/risk_map", json={"domain": "flood", "conditions": {"rain_1h": -5}}, timeout=60)
    assert server.status_code == 400
    assert "conditions.rain_1h" in shown and shown == server.json()["error"]
    assert cells_drawn(page) == api["catalogue"]["cells"]  # the last good map stays on screen

    page.fill("#c-rain_1h", "")  # fixing the value clears the box
    page.click("#draw")
    page.wait_for_selector("#error", state="hidden", timeout=WAIT_MS)


def test_flood_lead_time_is_chosen_from_its_choices(page):
    page.select_option("#domain", "flood")
    wait_drawn(page, "flood")
    assert page.eval_on_selector_all("#c-lead_hours option", "os => os.map(o => o.value)") == ["", "1", "3", "6"]
    with page.expect_request(risk_map_request("flood"), timeout=WAIT_MS) as req:
        page.select_option("#c-lead_hours", "6")
        page.click("#draw")
    assert json.loads(req.value.post_data)["conditions"]["lead_hours"] == 6  # a number, as the API wants
    wait_drawn(page, "flood")
    assert page.locator("#error").is_hidden()


def test_traffic_hotspots_are_ranked_listed_and_shown_on_the_map(page, api):
    start = pd.Timestamp(api["catalogue"]["domains"]["traffic"]["default_at"]).normalize() + pd.Timedelta(days=1)
    assert page.input_value("#hs-from") == f"{start:%Y-%m-%d}"  # next year by default
    page.fill("#hs-to", f"{start + pd.Timedelta(days=90):%Y-%m-%d}")
    page.fill("#hs-top", "5")
    page.click("#hs-run")
    page.wait_for_selector("#hotspots tbody tr", timeout=WAIT_MS)
    assert page.locator("#hotspots tbody tr").count() == 5
    assert page.locator("#hotspots tbody tr").first.locator("td").first.text_content() == "1"
    assert "forecast as of" in page.text_content("#hs-status")
    first = page.locator("#hotspots tbody tr .cell-link").first
    cell = first.text_content()
    first.click()
    page.wait_for_function(f"document.querySelector('#details').dataset.cell === {json.dumps(cell)}", timeout=WAIT_MS)
    assert page.input_value("#domain") == "traffic" and page.locator("#error").is_hidden()


def test_wall_display_controls(page):
    assert page.eval_on_selector_all("#refresh option", "os => os.map(o => o.value)") == ["0", "60", "300"]
    assert page.locator("#at").get_attribute("type") == "datetime-local"


# --- live operation: alerts, data freshness, replay ---------------------------------------------------------

@pytest.fixture(scope="module")
def live_db(served, small_tables):
    from live.db import database

    return database(f"sqlite:///{small_tables.data / 'live.db'}")


def test_alerts_panel_follows_the_stream_and_acknowledges(page, served, live_db):
    from live.alerts import evaluate, get_alert
    from tests.serving.test_alerts_api import city_levels, risk_map

    fc = risk_map(served, "flood")
    page.wait_for_function("() => document.querySelector('#alerts-status').textContent === 'live'", timeout=WAIT_MS)
    [opened] = evaluate(live_db, 101, [city_levels(fc, "flood", 3, raise_worst=2)], datetime(2024, 8, 1, 9, 2))
    item = f"#alerts li[data-alert-id='{opened.alert_id}']"
    page.wait_for_selector(f"{item}[data-event='opened']", timeout=WAIT_MS)
    text = page.text_content(item)
    assert all(part in text for part in ("경계", "+3 h", "2 cells", "test storm", opened.alert["data_time"].replace("T", " ")))

    evaluate(live_db, 102, [city_levels(fc, "flood", 3, raise_worst=3, level=3)], datetime(2024, 8, 1, 10, 2))
    page.wait_for_selector(f"{item}[data-event='escalated']", timeout=WAIT_MS)
    assert "심각" in page.text_content(item) and "3 cells" in page.text_content(item)

    page.once("dialog", lambda dialog: dialog.accept("김당직"))
    with page.expect_response(lambda r: r.url.endswith(f"/alerts/{opened.alert_id}/ack"), timeout=WAIT_MS) as answer:
        page.click(f"{item} button.ack")
    assert answer.value.status == 200
    page.wait_for_selector(f"{item} .handled", timeout=WAIT_MS)
    assert "acknowledged by 김당직" in page.text_content(f"{item} .handled")
    assert get_alert(live_db, opened.alert_id)["acknowledged"]["by"] == "김당직"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "alerts.png"), full_page=True)

    page.once("dialog", lambda dialog: dialog.dismiss())  # a cancelled prompt sends nothing
    page.click(f"{item} button.dismiss")
    assert get_alert(live_db, opened.alert_id)["acknowledged"]["action"] == "ack"

    evaluate(live_db, 103, [city_levels(fc, "flood", 3)], datetime(2024, 8, 1, 11, 2))  # the storm passes
    page.wait_for_selector(item, state="detached", timeout=WAIT_MS)


def test_data_freshness_line(page, served):
    readyz = httpx.get(f"{served}/readyz", timeout=30).json()
    assert page.locator("#freshness").is_hidden() == ("observations" not in readyz)
    page.evaluate("b => window.dashboard.showFreshness(b)", {"observations": {
        "asos": {"newest": "2024-08-01T09:00:00", "age_s": 600, "stale": False},
        "airkorea": {"newest": "2024-08-01T03:00:00", "age_s": 6 * 3600, "stale": True}}})
    assert page.text_content("#freshness") == "Data: asos 10 min old · airkorea 6 h old (stale)"
    assert page.locator("#freshness .stale").count() == 1
    page.evaluate("() => window.dashboard.showFreshness({ready: true})")
    assert page.locator("#freshness").is_hidden()


def test_replay_draws_stored_maps_and_returns_to_live(page, served, live_db):
    from tests.serving.test_alerts_api import risk_map, store_cycle

    fc = risk_map(served, "flood")
    stormy = copy.deepcopy(fc)  # a map unlike any live one: every cell 심각
    for f in stormy["features"]:
        f["properties"].update(status="scored", score=99.0, level="심각", level_en="serious", cause="test storm")
    newest = datetime(2030, 1, 1, 12)  # after every other stored cycle: the replay window is its own
    cycles = [store_cycle(live_db, stormy if h == 1 else fc, "flood", 3, newest - timedelta(hours=h)) for h in (2, 1, 0)]

    page.reload()  # the replay steps are read when the domain is chosen
    page.wait_for_selector("#domain option", state="attached", timeout=WAIT_MS)
    wait_drawn(page, page.input_value("#domain"))
    if page.input_value("#domain") != "flood":
        page.select_option("#domain", "flood")
        wait_drawn(page, "flood")
    page.wait_for_function("() => document.querySelector('#replay-step').max === '2'", timeout=WAIT_MS)
    assert "2030-01-01 12:00:00 · cycle" in page.text_content("#replay-at")

    with page.expect_request(lambda r: f"/replay/{cycles[1]}/flood" in r.url, timeout=WAIT_MS):
        page.eval_on_selector("#replay-step", "e => { e.value = '1'; e.dispatchEvent(new Event('input'));"
                                              " e.dispatchEvent(new Event('change')); }")
    page.wait_for_selector(f"#map[data-replay='{cycles[1]}']:not([data-cells='0'])", timeout=WAIT_MS)
    serious = page.eval_on_selector_all("#summary tbody tr", "rs => rs.reduce((n, r) => n + Number(r.children[4].textContent), 0)")
    assert serious == len(fc["features"]) and cells_drawn(page) == len(fc["features"])
    assert f"cycle {cycles[1]}" in page.text_content("#status")
    assert page.text_content("#map-at") == "2030-01-01 11:00:00"
    click_cell(page, fc["features"][0]["properties"]["cell_id"])  # the stored answer, not a live one
    assert "stored map of cycle" in page.text_content("#details") and "test storm" in page.text_content("#details")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "replay.png"), full_page=True)

    with page.expect_request(risk_map_request("flood"), timeout=WAIT_MS):
        page.click("#replay-live")
    page.wait_for_function("() => { const m = document.querySelector('#map');"
                           " return !m.dataset.replay && m.dataset.cells !== '0'; }", timeout=WAIT_MS)
    assert page.locator("#replay-live").is_disabled()

"""The engine in-process (real feature builders on the small data set, small boosters on random data):
a /risk question answered for the cells asked about, or for the whole city at once and looked up, gives
byte-identical answers; the whole city is built only once the time spent on a question has reached its cost."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import xgboost as xgb

from features.registry import domains
from features.sources import Sources
from serving.engine import Engine, LoadedModel
from serving.errors import ApiError

DOMAINS = sorted(name for name, spec in domains().items() if spec.serving is not None)


@pytest.fixture(scope="module")
def parts(small_tables):
    rng = np.random.default_rng(0)
    models = {}
    for name in DOMAINS:
        features = list(domains()[name].features)
        data = xgb.DMatrix(rng.random((200, len(features))), rng.random(200), feature_names=features)
        models[name] = LoadedModel("xgboost", xgb.train({"max_depth": 3}, data, 10),
                                   {"registered_model": f"urban-safety-{name}", "registry_version": "1"})
    return Sources.from_settings(small_tables), models


def example(engine: Engine, domain: str) -> dict:
    conds = engine.domains_info()["domains"][domain]["conditions"]
    return {c["name"]: c["example"] for c in conds if c["required"]}


@pytest.mark.parametrize("domain", DOMAINS)
def test_cells_asked_about_and_the_whole_city_give_the_same_answers(parts, domain):
    by_cell, city = Engine(*parts, city_cost_guess_s=math.inf), Engine(*parts, city_cost_guess_s=0.0)
    cells = by_cell.grid.cells["cell_id"].tolist()
    asks = [[{"cell_id": cells[0]}], [{"cell_id": c} for c in cells[::7]], [{"cell_id": cells[-1]}] * 3]
    for locations in asks:
        first = by_cell.risk(domain, locations, None, example(by_cell, domain))
        assert city.risk(domain, locations, None, example(city, domain)) == first
    assert len(by_cell._city) == 0 and len(city._city) == 1
    results = json.loads(first)["results"]
    assert [r["cell_id"] for r in results] == [cells[-1]] * 3


def test_the_whole_city_is_built_once_a_question_has_cost_as_much(parts):
    engine = Engine(*parts, city_cost_guess_s=0.05)
    cells = engine.grid.cells["cell_id"].tolist()
    asked = 0
    while len(engine._city) == 0:
        engine.risk("flood", [{"cell_id": cells[asked % len(cells)]}], None, example(engine, "flood"))
        asked += 1
        assert asked < 1_000, "never built the whole city"
    assert asked > 1  # the first ask built only its own cell
    other_hour = engine.domains_info()["domains"]["flood"]["default_at"][:11] + "00:00:00"
    engine.risk("flood", [{"cell_id": cells[0]}], other_hour, example(engine, "flood"))
    assert len(engine._city) == 1  # a new question starts with its own cells again


@pytest.fixture(scope="module")
def flood_engine(parts):
    """The engine with a flood booster that keeps the domain's monotone constraints (as training does)."""
    sources, models = parts
    spec = domains()["flood"]
    rng = np.random.default_rng(1)
    X = rng.random((2000, len(spec.features)))
    lead = spec.features.index("lead_hours")
    X[:, lead] = rng.choice([1, 3, 6], len(X))
    y = (rng.random(len(X)) < X[:, lead] / 8).astype(float)
    data = xgb.DMatrix(X, y, feature_names=list(spec.features))
    constraints = "(" + ",".join(map(str, spec.monotone_vector())) + ")"
    booster = xgb.train({"max_depth": 3, "objective": "binary:logistic", "monotone_constraints": constraints}, data, 20)
    flood = LoadedModel("xgboost", booster, {"registered_model": "urban-safety-flood", "registry_version": "1"})
    return Engine(sources, {**models, "flood": flood})


def test_a_flood_lead_time_other_than_1_3_or_6_is_refused_naming_the_field(flood_engine):
    cell = flood_engine.grid.cells["cell_id"].iloc[0]
    for lead in (2, 12, 3.0, "3"):
        with pytest.raises(ApiError) as refused:
            flood_engine.risk("flood", [{"cell_id": cell}], None, {"lead_hours": lead})
        assert refused.value.status == 400 and refused.value.loc == ["conditions", "lead_hours"]
        if isinstance(lead, int):
            assert "1, 3 or 6" in refused.value.msg
    schema = {c["name"]: c for c in flood_engine.domains_info()["domains"]["flood"]["conditions"]}
    assert schema["lead_hours"]["choices"] == [1, 3, 6] and schema["lead_hours"]["type"] == "int"
    assert flood_engine.domains_info()["domains"]["flood"]["horizon_hours"] == 6


def test_flood_risk_never_falls_as_the_lead_grows_and_the_answer_states_it(flood_engine):
    maps = {lead: json.loads(flood_engine.risk_map("flood", None, {"lead_hours": lead})) for lead in (1, 3, 6)}
    values = {lead: np.array([f["properties"]["value"] if f["properties"]["value"] is not None else np.nan
                              for f in geo["features"]]) for lead, geo in maps.items()}
    known = ~np.isnan(values[1]) & ~np.isnan(values[3]) & ~np.isnan(values[6])
    assert known.sum() > 10
    assert (values[3][known] >= values[1][known] - 1e-9).all() and (values[6][known] >= values[3][known] - 1e-9).all()
    assert (values[6][known] > values[1][known]).any()  # the lead matters
    cells = [{"cell_id": c} for c in flood_engine.grid.cells["cell_id"].iloc[:5]]
    for lead in (1, 3, 6, None):
        results = json.loads(flood_engine.risk("flood", cells, None, {} if lead is None else {"lead_hours": lead}))
        assert {r["details"]["lead_hours"] for r in results["results"]} == {lead or 3}


def assert_same_map(geo: dict, compact: dict, grid: dict) -> None:
    """The compact map says of every cell (in the grid's order) what the GeoJSON map says of it."""
    assert compact["format"] == "compact" and compact["metadata"] == geo["metadata"]
    assert compact["metadata"]["grid"] == {"id": grid["id"], "version": grid["version"]}
    n = grid["cells"]
    assert [f["properties"]["cell_id"] for f in geo["features"]] == grid["cell_id"] and len(grid["cell_id"]) == n
    for key in ("score", "level", "value", "unknown", "cause", "reason"):
        assert len(compact[key]) == n, key
    levels = compact["levels"]
    for i, f in enumerate(geo["features"]):
        p, code = f["properties"], compact["level"][i]
        assert p["score"] == compact["score"][i] and p["value"] == compact["value"][i], p["cell_id"]
        assert (p["status"] == "unknown") == bool(compact["unknown"][i]) == (code == -1)
        assert [p["level"], p["level_en"]] == (levels[code] if code >= 0 else [None, None])
        assert p["cause"] == (compact["causes"][compact["cause"][i]] if compact["cause"][i] >= 0 else None)
        assert p.get("reason") == (compact["reasons"][compact["reason"][i]] if compact["reason"][i] >= 0 else None)
        assert grid["districts"][grid["district"][i]] == p["district"]


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_compact_map_equals_the_geojson_map_cell_for_cell(parts, domain):
    engine = Engine(*parts)
    grid = json.loads(engine.grid_info())
    conds = example(engine, domain)
    compact = json.loads(engine.risk_map(domain, None, conds, "compact"))
    assert_same_map(json.loads(engine.risk_map(domain, None, conds, "geojson")), compact, grid)
    assert len(engine._tables) == 1  # one prediction of the city for both formats
    # The grid's rings are the GeoJSON's polygons.
    geo = json.loads(engine.risk_map(domain, None, conds))
    proj, size = grid["projection"], grid["size_m"]
    for i in (0, len(grid["cell_id"]) // 2, -1):
        ring = geo["features"][i]["geometry"]["coordinates"][0]
        west = proj["lon_min"] + grid["col"][i] * size / proj["m_per_deg_lon"]
        south = proj["lat_min"] + grid["row"][i] * size / proj["m_per_deg_lat"]
        assert ring[0] == pytest.approx([west, south], abs=1e-6)


def test_the_compact_map_carries_unknown_cells_and_their_reasons(parts):
    from tests.serving.test_missing_inputs import _hour, _without_rain

    sources, models = parts
    hour = _hour(sources)
    kept = sources["asos"]["station_id"].iloc[0]  # rain held at one station only: cells beyond reach are unknown
    stations = set(sources["asos"]["station_id"]) | set(sources["aws"]["station_id"])
    engine = Engine(_without_rain(sources, hour, sorted(stations - {kept})), models)
    geo = json.loads(engine.risk_map("flood", hour.to_pydatetime(), None))
    compact = json.loads(engine.risk_map("flood", hour.to_pydatetime(), None, "compact"))
    assert 0 < compact["metadata"]["unknown"] < compact["metadata"]["cells"]
    assert sum(compact["unknown"]) == compact["metadata"]["unknown"] and compact["reasons"]
    assert_same_map(geo, compact, json.loads(engine.grid_info()))


def test_an_unknown_map_format_is_refused_naming_the_field(parts):
    with pytest.raises(ApiError) as refused:
        Engine(*parts).risk_map("flood", None, None, "topojson")
    assert refused.value.status == 400 and refused.value.loc == ["format"] and "geojson, compact" in refused.value.msg


def test_the_grid_version_follows_the_geometry(parts, small_tables):
    grid = json.loads(Engine(*parts).grid_info())
    assert grid["id"].endswith(f"-{small_tables.grid_m}") and len(grid["version"]) == 16
    assert json.loads(Engine(*parts).grid_info())["version"] == grid["version"]  # stable across engines


def test_held_maps_are_bounded_in_bytes():
    from serving.engine import LruCache

    cache = LruCache(100, max_bytes=10)
    for k in range(5):
        cache.put(k, b"xxxx")
    assert len(cache) == 2 and cache.nbytes == 8 and cache.get(4) == b"xxxx" and cache.get(2) is None
    cache.put(4, b"x")  # replacing an entry counts its new size only
    assert cache.nbytes == 5
    assert cache.drop(lambda key: key == 4) == 1 and cache.nbytes == 4
    cache.put("big", b"y" * 50)  # one answer larger than the budget is still held, alone
    assert len(cache) == 1 and cache.get("big")

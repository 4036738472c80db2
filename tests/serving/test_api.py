"""Every route of a real server, for every domain, through BentoML's client and raw HTTP; bad inputs are 4xx
with the field named."""

from __future__ import annotations

import json

import bentoml
import httpx
import pandas as pd
import pytest
from bentoml.exceptions import BentoMLException

from features.build import table_path
from features.registry import LEVELS, domains
from features.store import read_table

DOMAINS = sorted(domains())
INCHEON_ASOS = {"lat": 37.4777, "lon": 126.6249}


def example_conditions(catalogue, domain) -> dict:
    return {c["name"]: c["example"] for c in catalogue["domains"][domain]["conditions"] if c["required"]}


def assert_error(resp: httpx.Response, status: int, field: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body["error"], str) and isinstance(body["detail"], list)
    assert body["error"].startswith(field) or field in body["error"], body
    assert "Traceback" not in resp.text and "/work/" not in resp.text
    return body


def test_health_readiness_and_metrics(http):
    assert http.get("/healthz").status_code == 200
    assert http.get("/readyz").status_code == 200
    http.post("/risk", json={"domain": "flood", "locations": [INCHEON_ASOS]})
    metrics = http.get("/metrics")
    assert metrics.status_code == 200 and "bentoml_service_request_total" in metrics.text


def test_models_lists_the_serving_version_of_every_domain(http):
    body = http.get("/models").json()
    assert body["ready"] is True
    for domain in DOMAINS:
        info = body["domains"][domain]
        assert info["status"] == "serving" and info["registry_version"] == "1" and info["run_id"]
        assert info["trained_at"] and any(k.startswith("holdout_") for k in info["holdout_metrics"])


def test_domains_describe_conditions_units_ranges_and_levels(catalogue):
    assert set(catalogue["domains"]) == set(DOMAINS)
    for info in catalogue["domains"].values():
        assert [lv["level"] for lv in info["levels"]] == [ko for ko, _ in LEVELS]
        for cond in info["conditions"]:
            assert cond["type"] in ("float", "int", "bool", "date", "str") and "example" in cond
            assert isinstance(cond["unit"], str) and (cond["unit"] or cond["type"] in ("bool", "date", "str"))
            assert cond["type"] != "str" or cond["choices"]  # a text condition is one of its choices


@pytest.mark.parametrize("domain", DOMAINS)
def test_each_domain_offers_ready_scenarios_the_api_accepts(http, catalogue, domain):
    scenarios = catalogue["domains"][domain]["scenarios"]
    assert scenarios and all(s["label"] and s["conditions"] for s in scenarios)
    for s in scenarios:
        resp = http.post("/risk_map", json={"domain": domain, "conditions": s["conditions"]})
        assert resp.status_code == 200, (s["label"], resp.text)


@pytest.mark.parametrize("domain", DOMAINS)
def test_risk_for_points_and_cells_with_the_sync_client(served, catalogue, domain):
    client = bentoml.SyncHTTPClient(served)
    try:
        first = client.risk(domain=domain, locations=[INCHEON_ASOS], conditions=example_conditions(catalogue, domain))
        cell = first["results"][0]["cell_id"]
        again = client.risk(domain=domain, locations=[{"cell_id": cell}],
                            conditions=example_conditions(catalogue, domain))
    finally:
        client.close()
    result = first["results"][0]
    assert 0 <= result["score"] <= 100 and result["level"] in [ko for ko, _ in LEVELS]
    assert result["level_en"] == dict(LEVELS)[result["level"]]
    assert result["value"] is not None and result["unit"] and result["district"]
    assert 1 <= len(result["top_factors"]) <= 5 and result["model_version"].endswith("v1")
    assert again["results"][0]["score"] == result["score"]


@pytest.mark.parametrize("domain", DOMAINS)
def test_a_repeated_question_answered_city_wide_gives_the_same_answers(http, catalogue, domain):
    """The first ask builds only the cells asked about; a repeat builds the whole city once and looks cells
    up after: every way must give the same answer, and the same score, level and value as /risk_map."""
    at = (pd.Timestamp(catalogue["domains"][domain]["default_at"]) - pd.Timedelta(hours=5)).isoformat()
    ask = {"domain": domain, "at": at, "conditions": example_conditions(catalogue, domain)}
    cells = [f["properties"] for f in http.post("/risk_map", json=ask).json()["features"]]
    a, b, c = cells[1], cells[len(cells) // 2], cells[-1]

    def results(*props):
        resp = http.post("/risk", json={**ask, "locations": [{"cell_id": p["cell_id"]} for p in props]})
        assert resp.status_code == 200, resp.text
        return [{k: v for k, v in r.items() if k != "query"} for r in resp.json()["results"]]

    first = results(a, b)  # only a and b built
    city = results(c)  # asked again: the whole city built
    looked_up = results(b, a, a)
    assert looked_up == [first[1], first[0], first[0]]
    for props, r in zip((a, b, c), first + city, strict=True):
        assert r["cell_id"] == props["cell_id"]
        assert (r["score"], r["level"], r["value"]) == (props["score"], props["level"], props["value"])


@pytest.mark.parametrize("domain", DOMAINS)
def test_risk_map_is_geojson_of_every_cell(http, catalogue, domain):
    resp = http.post("/risk_map", json={"domain": domain, "conditions": example_conditions(catalogue, domain)})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["type"] == "FeatureCollection" and len(body["features"]) == catalogue["cells"]
    feature = body["features"][0]
    assert feature["geometry"]["type"] == "Polygon" and len(feature["geometry"]["coordinates"][0]) == 5
    assert {"cell_id", "score", "level", "value"} <= feature["properties"].keys()


@pytest.mark.parametrize("domain", DOMAINS)
def test_predict_returns_one_output_per_record(http, small_tables, catalogue, domain):
    features = catalogue["domains"][domain]["features"]
    table = read_table(table_path(small_tables.features_dir, domain)).head(50)
    records = json.loads(table[features].astype(float).to_json(orient="records"))  # NaN -> null
    resp = http.post("/predict", json={"domain": domain, "records": records})
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["predictions"]) == 50


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"domain": "tsunami", "locations": [INCHEON_ASOS]}, 400, "domain"),
    ({"domain": "flood"}, 400, "locations"),
    ({"domain": "flood", "locations": []}, 400, "locations"),
    ({"domain": "flood", "locations": [{"lat": 95, "lon": 126.6}]}, 400, "locations[0].lat"),
    ({"domain": "flood", "locations": [{"lat": 37.3, "lon": 126.2}]}, 400, "locations[0]"),
    ({"domain": "flood", "locations": [{"cell_id": "ICN-9-9-9"}]}, 404, "locations[0].cell_id"),
    ({"domain": "flood", "locations": [INCHEON_ASOS] * 501}, 413, "locations"),
    ({"domain": "flood", "locations": [INCHEON_ASOS], "conditions": {"rain_1h": -5}}, 400, "conditions.rain_1h"),
    ({"domain": "flood", "locations": [INCHEON_ASOS], "conditions": {"snowfall": 3}}, 400, "conditions.snowfall"),
    ({"domain": "earthquake", "locations": [INCHEON_ASOS], "conditions": {}}, 400, "conditions.magnitude"),
    ({"domain": "flood", "locations": [INCHEON_ASOS], "at": "2031-01-01T00:00:00"}, 400, "at"),
])
def test_bad_risk_requests_are_4xx_naming_the_field(http, body, status, field):
    assert_error(http.post("/risk", json=body), status, field)


def test_bad_predict_requests_are_4xx_naming_the_field(http, catalogue):
    features = catalogue["domains"]["flood"]["features"]
    row = dict.fromkeys(features, 1.0)
    assert_error(http.post("/predict", json={"domain": "flood", "records": [{**row, "extra": 1.0}]}), 400, "records[0]")
    short = {k: v for k, v in row.items() if k != features[0]}
    body = assert_error(http.post("/predict", json={"domain": "flood", "records": [row, short]}), 400, "records[1]")
    assert features[0] in body["error"]
    assert_error(http.post("/predict", json={"domain": "flood", "records": [row] * 10_001}), 413, "records")
    assert_error(http.post("/predict", json={"domain": "flood", "records": [{**row, features[0]: "x"}]}), 400,
                 "records")


def test_malformed_json_is_a_400(http):
    resp = http.post("/risk", content=b"{not json", headers={"Content-Type": "application/json"})
    assert 400 <= resp.status_code < 500


def test_sync_client_reports_errors_as_exceptions(served):
    client = bentoml.SyncHTTPClient(served)
    try:
        with pytest.raises(BentoMLException):
            client.risk(domain="flood", locations=[{"lat": 37.3, "lon": 126.2}])
    finally:
        client.close()


def test_monitoring_compares_what_was_answered_with_training(http):
    for _ in range(2):  # a city map records a sample of its rows
        assert http.post("/risk_map", json={"domain": "traffic"}).status_code == 200
    deadline = pd.Timestamp.now() + pd.Timedelta(seconds=30)
    while True:  # the workers write their samples about every second
        body = http.get("/monitoring", params={"domain": "traffic", "hours": 1}).json()
        if body["domains"]["traffic"]["rows"] > 0 or pd.Timestamp.now() > deadline:
            break
    traffic = body["domains"]["traffic"]
    assert traffic["rows"] > 0 and traffic["status"] in ("ok", "shift", "insufficient")
    assert {f["feature"] for f in traffic["features"]} == set(domains()["traffic"].features)
    everyone = http.get("/monitoring").json()["domains"]
    assert set(everyone) == {name for name, spec in domains().items() if spec.serving is not None}
    assert_error(http.get("/monitoring", params={"domain": "rain"}), 400, "domain")
    assert_error(http.get("/monitoring", params={"days": 3}), 400, "days")

"""POST /scenario and the earthquake consequences in POST /risk details, against the served process."""

from __future__ import annotations

import pytest

from tests.serving.test_contract import assert_error

WEST_COAST = {"magnitude": 5.5, "epicentre_lat": 37.45, "epicentre_lon": 126.45, "depth_km": 10}
STATES = ("slight", "moderate", "extensive", "complete")
SEVERITIES = ("severity_1", "severity_2", "severity_3", "severity_4")


def _scenario(http, **body) -> dict:
    resp = http.post("/scenario", json={"conditions": WEST_COAST, **body})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_scenario_totals_for_the_city_and_its_districts(http, catalogue):
    body = _scenario(http)
    assert body["population"] == "night" and body["conditions"] == WEST_COAST
    assert set(body["units"]) == {"buildings", "damage_states", "loss_krw", "casualties", "injuries", "deaths",
                                  "displaced", "population", "ranges"}
    city, districts = body["city"], body["districts"]
    assert city["buildings"] > 0 and city["loss_krw"] > 0 and city["casualties"]["severity_1"] > 0
    assert sum(city["damage_states"].values()) <= city["buildings"]
    assert city["moderate_or_worse"] == pytest.approx(sum(city["damage_states"][s] for s in STATES[1:]), abs=0.01)
    assert {d["district"] for d in districts} <= {"제물포구", "영종구", "미추홀구", "연수구", "남동구", "부평구", "계양구",
                                                  "서해구", "검단구"}
    assert sum(d["buildings"] for d in districts) == city["buildings"]
    assert sum(d["loss_krw"] for d in districts) == pytest.approx(city["loss_krw"], rel=1e-6, abs=len(districts))
    for s in SEVERITIES:
        assert sum(d["casualties"][s] for d in districts) == pytest.approx(city["casualties"][s], abs=0.01)


def test_scenario_grows_with_magnitude_and_follows_the_population(http):
    small, large = _scenario(http), _scenario(http, conditions={**WEST_COAST, "magnitude": 6.5})
    assert large["city"]["loss_krw"] > small["city"]["loss_krw"]
    for s in SEVERITIES:
        assert large["city"]["casualties"][s] >= small["city"]["casualties"][s]
    day = _scenario(http, population="day")
    assert day["city"]["population"] != small["city"]["population"]
    assert day["city"]["casualties"] != small["city"]["casualties"]
    assert day["city"]["loss_krw"] == small["city"]["loss_krw"]  # people move, buildings do not


def test_scenario_sums_the_cells_of_risk_details(http):
    """The city totals are the sum of every cell's /risk details (one physics path)."""
    geo = http.post("/risk_map", json={"domain": "earthquake", "conditions": WEST_COAST}).json()
    cells = [f["properties"]["cell_id"] for f in geo["features"]]
    resp = http.post("/risk", json={"domain": "earthquake", "conditions": {**WEST_COAST, "population": "day"},
                                    "locations": [{"cell_id": c} for c in cells[:500]]})
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    total_loss = 0
    for r in results:
        d = r["details"]
        assert d["population"] == "day"
        assert sum(d["damage_states"].values()) <= d["buildings"] + 1e-6
        if d["buildings"] == 0:
            assert d["loss_krw"] == 0 and all(v == 0 for v in d["casualties"].values())
        assert sum(d["damage_states"][s] for s in STATES[1:]) == pytest.approx(d["fragility_share"] * d["buildings"],
                                                                               abs=0.01 + 1e-3 * d["buildings"])
        total_loss += d["loss_krw"]
    if len(cells) <= 500:
        city = _scenario(http, population="day")["city"]
        assert total_loss == pytest.approx(city["loss_krw"], rel=1e-6, abs=len(cells))


def test_risk_population_defaults_to_night_and_refuses_others(http):
    geo = http.post("/risk_map", json={"domain": "earthquake", "conditions": WEST_COAST}).json()
    cell = geo["features"][0]["properties"]["cell_id"]
    resp = http.post("/risk", json={"domain": "earthquake", "conditions": WEST_COAST,
                                    "locations": [{"cell_id": cell}]})
    assert resp.status_code == 200 and resp.json()["results"][0]["details"]["population"] == "night"
    bad = http.post("/risk", json={"domain": "earthquake", "conditions": {**WEST_COAST, "population": "noon"},
                                   "locations": [{"cell_id": cell}]})
    assert_error(bad, 400, "conditions.population")


@pytest.mark.parametrize("body, field, kind", [
    ({"conditions": WEST_COAST, "colour": "red"}, "colour", "extra_forbidden"),
    ({}, "conditions", "missing"),
    ({"conditions": {**WEST_COAST, "magnitude": 9.5}}, "conditions.magnitude", None),
    ({"conditions": {**WEST_COAST, "magnitude": "5.5"}}, "conditions.magnitude", None),
    ({"conditions": {k: v for k, v in WEST_COAST.items() if k != "epicentre_lat"}}, "conditions.epicentre_lat",
     "missing"),
    ({"conditions": {**WEST_COAST, "depht_km": 5}}, "conditions.depht_km", "extra_forbidden"),
    ({"conditions": WEST_COAST, "population": "noon"}, "population", None),
    ({"conditions": WEST_COAST, "at": "yesterday"}, "at", None),
    ({"conditions": WEST_COAST, "at": "2099-01-01T00:00:00"}, "at", None),
    ({"conditions": {**WEST_COAST, "magnitude_type": "Ms"}}, "conditions.magnitude_type", None),
    ({"conditions": {**WEST_COAST, "depth_km": 150}}, "conditions.depth_km", None),
    ({"conditions": {**WEST_COAST, "magnitude": 2.0, "magnitude_type": "Mw"}}, "conditions.magnitude", None),
    # Beyond BSSA14's 300 km from every cell of the city: off Jeju, about 450 km from Incheon.
    ({"conditions": {**WEST_COAST, "epicentre_lat": 33.2, "epicentre_lon": 125.0}}, "conditions.epicentre_lat",
     "out_of_range"),
])
def test_scenario_refusals(http, body, field, kind):
    assert_error(http.post("/scenario", json=body), 400, field, kind)


def test_scenario_is_documented(http):
    spec = http.get("/docs.json").json()
    assert "/scenario" in spec["paths"]
    schema = spec["paths"]["/scenario"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"conditions", "population", "at"}


def test_magnitude_type_is_named_and_converted(http, catalogue):
    """An Mw scenario is the ML scenario of the converted magnitude, and the answer names both."""
    from features.domains.earthquake import seismic

    mw = _scenario(http, conditions={**WEST_COAST, "magnitude": 5.5, "magnitude_type": "Mw"})
    ml = _scenario(http, conditions={**WEST_COAST, "magnitude": round(float(seismic.mw_to_ml(5.5)), 6)})
    assert mw["magnitude"]["type"] == "Mw" and mw["magnitude"]["mw"] == 5.5
    assert ml["magnitude"]["type"] == "ML" and ml["magnitude"]["ml"] == mw["magnitude"]["ml"]
    assert mw["city"]["loss_krw"] == pytest.approx(ml["city"]["loss_krw"], rel=1e-4)
    assert mw["city"]["loss_krw"] > _scenario(http)["city"]["loss_krw"]  # Mw 5.5 is bigger than ML 5.5


def test_scenario_totals_carry_ranges(http, catalogue):
    """Every total has a 5-95% range from the sampled ground-motion fields: p05 <= p95, a range wider than
    a point where anything is damaged, and the district ranges do not sum to the city's (quantiles do not
    add up; the means do)."""
    body = _scenario(http)
    city, districts = body["city"], body["districts"]
    for q in ("loss_krw", "injuries", "deaths", "displaced", *STATES):
        r = city["ranges"][q]
        assert 0 <= r["p05"] <= r["p95"], q
    assert city["ranges"]["loss_krw"]["p95"] > city["ranges"]["loss_krw"]["p05"]
    summed_p95 = sum(d["ranges"]["loss_krw"]["p95"] for d in districts)
    assert summed_p95 > city["ranges"]["loss_krw"]["p95"]
    assert sum(d["loss_krw"] for d in districts) == pytest.approx(city["loss_krw"], abs=len(districts))

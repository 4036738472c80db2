"""POST /hotspots against the served process (one year of small data, 2020-09-01 .. 2021-09-01): next year's
forecast, the documented limits within the deadline, files, groups, and refusals in the API's shape."""

from __future__ import annotations

import csv
import io

import pytest

from tests.serving.test_contract import assert_error

NEXT_YEAR = {"from": "2021-09-01", "to": "2022-09-01"}


def test_next_year_is_forecast_from_the_record_and_says_how(http):
    resp = http.post("/hotspots", json={"period": NEXT_YEAR, "top_n": 5, "by": "count"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["period"] == NEXT_YEAR and body["as_of"] == "2021-09-01" and body["by"] == "count"
    # one year of record: no complete year to back-test on, and the model needs two years: EB, said so
    assert body["method"] == "eb" and "back-test" in body["method_reason"]
    assert body["observed_through"] is None and 0.99 < body["exposure_years"] <= 1.0
    cells = body["cells"]
    assert [c["rank"] for c in cells] == [1, 2, 3, 4, 5]
    counts = [c["expected"]["accidents"] for c in cells]
    assert counts == sorted(counts, reverse=True) and counts[0] > 0
    for c in cells:
        assert c["observed"] is None and set(c["tiers"]) == {"expected"}
        assert set(c["tiers"]["expected"].values()) <= {"low", "medium", "high"}
        eb = c["empirical_bayes"]
        assert 0 < eb["weight"] < 1 and eb["eb_per_year"] == pytest.approx(
            eb["weight"] * eb["spf_per_year"] + (1 - eb["weight"]) * eb["observed"] / eb["years"], rel=1e-3)
        assert c["dominant"]["accidents"] > 0 and c["dominant"]["accident_type"]["value"]


def test_the_documented_limits_are_answered(http):
    resp = http.post("/hotspots", json={"period": NEXT_YEAR, "top_n": 1000}, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.json()["seconds"] < 10


def test_a_cells_tier_does_not_depend_on_how_many_are_listed(http):
    few = http.post("/hotspots", json={"period": NEXT_YEAR, "top_n": 1}).json()
    many = {c["cell_id"]: c for c in http.post("/hotspots", json={"period": NEXT_YEAR, "top_n": 60}).json()["cells"]}
    assert few["tier_breakpoints"] == http.post("/hotspots", json={"period": NEXT_YEAR, "top_n": 60}).json()["tier_breakpoints"]
    top = few["cells"][0]
    assert top["tiers"] == many[top["cell_id"]]["tiers"] and top["tiers"]["expected"]["frequency"] == "high"


def test_districts_sum_their_cells_and_files_carry_the_list(http):
    cells = http.post("/hotspots", json={"period": NEXT_YEAR, "top_n": 1000, "by": "count"}).json()["cells"]
    districts = http.post("/hotspots", json={"period": NEXT_YEAR, "top_n": 1000, "group": "district"}).json()["units"]
    total = sum(c["expected"]["accidents"] for c in cells)
    assert sum(d["expected"]["accidents"] for d in districts) == pytest.approx(total, rel=1e-3)
    assert all(d["cells"] >= 1 and d["top_cell"] for d in districts)
    resp = http.post("/hotspots", json={"period": NEXT_YEAR, "top_n": 3, "format": "csv"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text.lstrip("\ufeff"))))
    assert [r["rank"] for r in rows] == ["1", "2", "3"] and rows[0]["cell_id"]
    geo = http.post("/hotspots", json={"period": NEXT_YEAR, "top_n": 3, "format": "geojson", "group": "dong"}).json()
    assert len(geo["features"]) == 3 and geo["metadata"]["group"] == "dong"
    assert geo["features"][0]["geometry"]["type"] == "MultiPolygon"


@pytest.mark.parametrize("body, field, kind", [
    ({"period": NEXT_YEAR, "colour": "red"}, "colour", "extra_forbidden"),
    ({"period": {"from": "2021-13-01", "to": "2021-06-08"}}, "period.from", None),
    ({"period": NEXT_YEAR, "top_n": 0}, "top_n", None),
    ({"period": NEXT_YEAR, "top_n": 1001}, "top_n", None),
    ({"period": NEXT_YEAR, "by": "deaths"}, "by", None),
    ({"period": NEXT_YEAR, "method": "magic"}, "method", None),
    ({"period": {"from": "2021-06-08", "to": "2021-06-01"}}, "period.to", None),
    ({"period": {"from": "2021-06-01", "to": "2021-07-01"}}, "period.from", None),  # less than a year before it
    ({"period": {"from": "2021-09-01", "to": "2022-09-03"}}, "period", None),  # 367 days
    ({"period": NEXT_YEAR, "as_of": "2021-09-02"}, "as_of", None),  # after the period's start
    ({"period": {"from": 1630454400, "to": "2022-09-01"}}, "period.from", "date_type"),  # not a Unix time
    ({"period": NEXT_YEAR, "as_of": 5}, "as_of", "date_type"),
    ({"period": NEXT_YEAR, "as_of": "2021-01-01"}, "as_of", None),  # less than a year of record before it
    ({"period": {"from": "2025-01-01", "to": "2025-02-01"}}, "period.from", None),  # too far ahead
])
def test_hotspots_refusals(http, body, field, kind):
    resp = http.post("/hotspots", json=body)
    assert_error(resp, 400, field, kind)
    if field == "as_of" and kind is None:
        assert "allowed" in resp.json()["error"]

"""POST /hotspots against the served process: a short period's ranked list, and refusals in the API's shape."""

from __future__ import annotations

import pytest

from tests.serving.test_contract import assert_error

PERIOD = {"from": "2021-06-01", "to": "2021-06-08"}


def test_hotspots_lists_the_top_cells_ranked(http):
    resp = http.post("/hotspots", json={"period": PERIOD, "top_n": 5, "by": "count"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["period"] == PERIOD and body["by"] == "count" and body["slots"] == 7 * 8
    cells = body["cells"]
    assert [c["rank"] for c in cells] == [1, 2, 3, 4, 5]
    counts = [c["expected"]["accidents"] for c in cells]
    assert counts == sorted(counts, reverse=True)
    for c in cells:
        assert set(c["tiers"]["expected"]) == {"frequency", "severity", "scale"}
        assert set(c["tiers"]["expected"].values()) <= {"low", "medium", "high"}
        assert c["top_factors"] and c["observed"]["accidents"] >= 0
    assert set(body["tier_breakpoints"]) == {f"{k}_{a}" for k in ("expected", "observed")
                                             for a in ("frequency", "severity", "scale")}


@pytest.mark.parametrize("body, field, kind", [
    ({"period": PERIOD, "colour": "red"}, "colour", "extra_forbidden"),
    ({"period": {"from": "2021-13-01", "to": "2021-06-08"}}, "period.from", None),
    ({"period": PERIOD, "top_n": 0}, "top_n", None),
    ({"period": PERIOD, "top_n": 1001}, "top_n", None),
    ({"period": PERIOD, "by": "deaths"}, "by", None),
    ({"period": {"from": "2021-06-08", "to": "2021-06-01"}}, "period.to", None),
    ({"period": {"from": "2019-01-01", "to": "2019-02-01"}}, "period.from", None),
    ({"period": {"from": "2020-09-01", "to": "2021-09-03"}}, "period", "too_long"),
])
def test_hotspots_refusals(http, body, field, kind):
    assert_error(http.post("/hotspots", json=body), 400, field, kind)

"""Where a cell is, in today's names: the served `/risk` answers each point's 구 and 법정동, `/grid` every cell's,
and `/places` draws and finds them (a real server on the small Incheon data set)."""

from __future__ import annotations

import pytest

# Points of Incheon and the 구 and 법정동 they lie in today. Since 2026-07-01 중구 and 동구 are 제물포구 and 영종구,
# and 서구 is 서해구 (28275) and 검단구 (28290) (행정안전부 법정동코드, old 28260107 서구 심곡동 -> 28275105
# 서해구 심곡동); 남구 became 미추홀구 in 2018.
PLACES = [
    ((37.4563, 126.7052), "남동구", "구월동", "2820010100"),
    ((37.4636, 126.6505), "미추홀구", "숭의동", "2817710100"),
    ((37.3925, 126.6444), "연수구", "송도동", "2818510600"),
    ((37.4486, 126.4512), "영종구", "운서동", "2815510300"),  # Incheon International Airport
    ((37.4739, 126.6432), "제물포구", "송림동", "2812510700"),
    ((37.4738, 126.6216), "제물포구", "관동1가", "2812511600"),
    ((37.5456, 126.6760), "서해구", "심곡동", "2827510500"),
    ((37.5935, 126.6740), "검단구", "당하동", "2829010400"),
    ((37.5070, 126.7219), "부평구", "부평동", "2823710100"),
    ((37.5375, 126.7376), "계양구", "계산동", "2824510200"),
]


def test_risk_names_each_points_district_and_dong_as_they_are_today(http):
    locations = [{"lat": lat, "lon": lon} for (lat, lon), *_ in PLACES]
    body = http.post("/risk", json={"domain": "flood", "locations": locations}).json()
    for result, (_, district, dong, dong_code) in zip(body["results"], PLACES, strict=True):
        assert result["place"] == {"district": district, "district_code": dong_code[:5], "dong": dong,
                                   "dong_code": dong_code}, result["query"]
        # the cell's own (its centre's) 구 is given too, by its current code
        assert isinstance(result["district_code"], str) and len(result["dong_code"]) == 10


def test_a_cell_asked_by_id_answers_with_its_centres_place(http):
    grid = http.get("/grid").json()
    i = len(grid["cell_id"]) // 2
    result = http.post("/risk", json={"domain": "flood", "locations": [{"cell_id": grid["cell_id"][i]}]}
                       ).json()["results"][0]
    assert result["place"]["district"] == grid["districts"][grid["district"][i]]
    assert result["place"]["dong_code"] == grid["dong_codes"][grid["dong"][i]]
    assert result["dong"] == grid["dongs"][grid["dong"][i]]


def test_grid_gives_every_cell_its_current_district_and_dong(http):
    grid = http.get("/grid").json()
    assert set(grid["districts"]) == {"제물포구", "영종구", "미추홀구", "연수구", "남동구", "부평구", "계양구", "서해구",
                                      "검단구"}
    assert dict(zip(grid["districts"], grid["district_codes"], strict=True))["영종구"] == "28155"
    assert len(grid["dong"]) == len(grid["cell_id"]) == grid["cells"]
    assert all(code[:5] in grid["district_codes"] for code in grid["dong_codes"])
    assert "중구" not in grid["districts"] and "남구" not in grid["districts"]


def test_places_draws_the_districts_and_dongs_and_finds_one_by_name(http):
    first = http.get("/places")
    body = first.json()
    assert "국토지리정보원" in body["attribution"]
    districts = {f["properties"]["name"]: f for f in body["districts"]["features"]}
    assert len(districts) == 9 and districts["영종구"]["properties"]["code"] == "28155"
    assert districts["영종구"]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    dongs = body["dongs"]["features"]
    assert len(dongs) > 100 and all(len(f["properties"]["code"]) == 10 for f in dongs)
    assert len(first.content) < 2_000_000  # simplified for drawing
    assert http.get("/places", headers={"If-None-Match": first.headers["etag"]}).status_code == 304

    found = http.get("/places", params={"q": "심곡"}).json()["matches"]
    assert [(m["name"], m["district"], m["code"]) for m in found] == [("심곡동", "서해구", "2827510500")]
    lon, lat = found[0]["centre"]
    assert 126.6 < lon < 126.75 and 37.5 < lat < 37.6
    # a former name finds what it became
    former = {m["name"] for m in http.get("/places", params={"q": "중구"}).json()["matches"]}
    assert {"제물포구", "영종구"} <= former


@pytest.mark.parametrize("q", ["", " ", "가" * 41])
def test_a_bad_place_query_is_a_400_naming_q(http, q):
    resp = http.get("/places", params={"q": q})
    assert resp.status_code == 400 and resp.json()["error"].startswith("q")

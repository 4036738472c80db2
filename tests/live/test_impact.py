"""Impact alerts of live quakes on Pohang at its real size: one alert per event with PAGER's colours, its
ranges and districts; revisions and strong-motion records update it; quakes that cannot matter open
nothing; bad events and records are refused with their row and field, nothing half-written."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from features.domains.earthquake import consequences as cq
from live import impact
from live.alerts import get_alert, list_alerts
from live.db import database
from live.ingest import ingest_rows
from live.store import ObservationStore

# Pohang 2017 as USGS gives it (Mw 5.5): the city's calibration event (features/domains/earthquake/record.py).
POHANG = {"time": "2017-11-15 14:29:31", "magnitude": 5.5, "magnitude_type": "Mw", "lat": 36.12, "lon": 129.36,
          "depth_km": 7, "location": "경북 포항시 북구 북쪽 9km 지역"}
EVENT = "KMA-20171115142931"
NOW = datetime(2017, 11, 15, 14, 31)


@pytest.fixture(autouse=True)
def clock():
    """The process's clock a minute and a half after the quake (the store's time rules read it)."""
    from features.clock import Clock, set_clock

    set_clock(Clock.from_env({}).at(NOW))
    yield
    set_clock(None)


@pytest.fixture
def pohang(quake_cities):
    return quake_cities("pohang")


class Live:
    """A store and its alerts, and the cycle's impact step run on each batch as the live loop runs it."""

    def __init__(self, src, url: str):
        self.src, self.store, self.db = src, ObservationStore(url), database(url)

    def post(self, source: str, rows: list[dict], now: datetime = NOW):
        before = self.store.version()
        result = ingest_rows(self.store, source, rows, self.src.city)
        _, changes = self.store.changes(before)
        return result, impact.follow(self.db, self.src, self.store, changes, now)

    def alerts(self) -> list[dict]:
        return [a for a in list_alerts(self.db, "all") if a["lead_hours"] == impact.IMPACT_LEAD]


@pytest.fixture
def live(pohang, tmp_path):
    return Live(pohang, f"sqlite:///{tmp_path / 'live.db'}")


def test_pohang_2017_opens_one_yellow_alert_with_its_ranges_and_districts(live):
    _, events = live.post("quakes", [POHANG])
    assert [e.kind for e in events] == ["opened"]
    (alert,) = live.alerts()
    a = alert["impact"]
    # PAGER on the record's scale: loss of about 550억원 (US$ 39 M at 1,400) is yellow; the median of the
    # deaths is below 1 (green): the alert is yellow, 주의, as PAGER's was.
    assert (alert["level"], a["colour"], a["loss"]["colour"], a["deaths"]["colour"]) == ("주의", "yellow", "yellow", "green")
    assert alert["subject"] == EVENT and alert["cause"].startswith("earthquake ML 5.8") and "PAGER yellow" in alert["cause"]
    for quantity in (a["deaths"], a["loss"], a["injuries"], a["displaced"], a["damaged_buildings"]):
        assert 0 <= quantity["p05"] < quantity["mean"] < quantity["p95"], quantity
    assert 180e8 <= a["loss"]["mean"] <= 1650e8 and a["deaths"]["mean"] < 5  # the record's bands
    assert a["loss"]["usd"]["mean"] == pytest.approx(a["loss"]["mean"] / 1400, abs=1)
    assert sum(a["loss"]["probabilities"].values()) == pytest.approx(1, abs=0.01)
    assert a["districts"][0]["district"] == "북구" and a["population"] == "day"  # 14:29: people at work
    cells = get_alert(live.db, alert["id"], cell_limit=5000)["cells"]
    assert len(cells) == alert["cell_count"] > 0
    assert all(c["pga_g_p05"] < c["pga_g"] < c["pga_g_p95"] and c["level"] != "관심" for c in cells)


def test_a_revision_updates_the_alert_of_the_same_quake(live):
    live.post("quakes", [POHANG])
    # KMA's information a minute later: its own origin time one second on, ML 5.4, 9 km deep.
    _, events = live.post("quakes", [{"time": "2017-11-15 14:29:32", "magnitude": 5.4, "lat": 36.11, "lon": 129.37,
                                      "depth_km": 9}])
    assert [e.kind for e in events] == ["updated"]
    assert events[0].changes["magnitude"] == [5.5, 5.4] and "deaths" in events[0].changes
    (alert,) = live.alerts()
    assert alert["status"] == "open" and alert["impact"]["event"]["magnitude_type"] == "ML"
    assert len(live.store.frame("quakes")) == 1  # one event, revised


def _cell_near(src, lat, lon) -> int:
    cells = src.grid.cells
    return int(np.argmin((cells["lat"] - lat) ** 2 + (cells["lon"] - lon) ** 2))


def test_a_record_far_above_the_median_raises_nearby_cells_and_narrows_their_range(pohang, live):
    conditions = impact.conditions_of({**POHANG, "magnitude": cq.seismic.as_ml(5.5, "Mw"), "magnitude_type": "ML"})
    prior = cq.cell_consequences(pohang, conditions)
    near = _cell_near(pohang, 36.04, 129.37)
    far = _cell_near(pohang, 36.30, 129.50)
    lat, lon = pohang.grid.cells.iloc[near][["lat", "lon"]]
    record = 3 * prior["pga_g"].iloc[near]
    records = pd.DataFrame({"lat": [lat], "lon": [lon], "pga_g": [record]})
    post = cq.cell_consequences(pohang, conditions, records=records)

    def width(frame, i):
        return np.log(frame["pga_g_p95"].iloc[i] / frame["pga_g_p05"].iloc[i])

    assert post["pga_g"].iloc[near] == pytest.approx(record, rel=0.1)  # moved to the record
    assert width(post, near) < 0.3 * width(prior, near)  # and sure of it
    # Farther away the record says less: the cell moves less (the event term only) and stays uncertain.
    assert np.log(post["pga_g"].iloc[far] / prior["pga_g"].iloc[far]) < 0.5 * np.log(3)
    assert width(post, far) > 0.8 * width(prior, far)
    assert post["loss_krw"].sum() > prior["loss_krw"].sum()

    live.post("quakes", [POHANG])
    _, events = live.post("quake_stations", [{"event_no": EVENT, "station": "PHA2", "lat": lat, "lon": lon,
                                              "pga": record * 980.665, "unit": "gal"}])
    assert [e.kind for e in events] in (["updated"], ["escalated"])
    assert events[0].changes["stations"] == [0, 1]
    (alert,) = live.alerts()
    cell = next(c for c in get_alert(live.db, alert["id"], cell_limit=5000)["cells"]
                if c["cell_id"] == pohang.grid.cells["cell_id"].iloc[near])
    assert cell["pga_g"] == pytest.approx(post["pga_g"].iloc[near], rel=1e-3)


def test_a_higher_record_never_lowers_the_shaking(pohang):
    conditions = impact.conditions_of({**POHANG, "magnitude": 5.8, "magnitude_type": "ML"})
    i = _cell_near(pohang, 36.05, 129.37)
    lat, lon = pohang.grid.cells.iloc[i][["lat", "lon"]]
    fields = [cq.cell_consequences(pohang, conditions, records=pd.DataFrame(
        {"lat": [lat, 36.2], "lon": [lon, 129.3], "pga_g": [pga, 0.1]}))["pga_g"].to_numpy()
        for pga in (0.05, 0.2, 0.8)]
    assert np.all(np.diff(np.stack(fields), axis=0) >= -1e-12)


def test_quakes_that_cannot_matter_open_nothing_and_a_revision_to_one_clears_its_alert(live):
    small = {**POHANG, "time": "2017-11-15 14:20:00", "magnitude": 2.5, "magnitude_type": "ML"}
    far = {**POHANG, "time": "2017-11-15 14:21:00", "magnitude": 5.0, "magnitude_type": "ML", "lat": 33.2,
           "lon": 126.2}  # off Jeju, about 400 km
    light = {**POHANG, "time": "2017-11-15 14:22:00", "magnitude": 3.2, "magnitude_type": "ML", "lat": 35.6,
             "lon": 129.4, "depth_km": 12}  # 60 km south: felt, not strongly
    old = {**POHANG, "time": "2017-11-13 14:29:31"}  # two days before: back-filled history, not news
    for quake in (small, far, light, old):
        _, events = live.post("quakes", [quake])
        assert events == []
    assert live.alerts() == []
    reasons = [impact.assess(live.src, {**q, "event_no": "x"})["reason"] for q in (small, far, light)]
    assert "below ML 3" in reasons[0] and "300 km" in reasons[1] and "below MMI V" in reasons[2]

    live.post("quakes", [POHANG])
    _, events = live.post("quakes", [{**POHANG, "time": "2017-11-15 14:29:32", "magnitude": 2.9,
                                      "magnitude_type": "ML"}])  # the magnitude revised far down
    assert [e.kind for e in events] == ["cleared"] and "below ML 3" in events[0].changes["reason"]


def test_an_alert_clears_a_day_after_its_quake(live):
    live.post("quakes", [POHANG])
    assert impact._age_out(live.db, datetime(2017, 11, 16, 14, 0)) == []
    (event,) = impact._age_out(live.db, datetime(2017, 11, 16, 14, 30))
    assert event.kind == "cleared" and live.alerts()[0]["status"] == "cleared"


def test_pager_colours_and_the_configured_exchange_rate(monkeypatch):
    assert [impact.colour(d, impact.DEATH_BOUNDS) for d in (0, 0.99, 1, 99.9, 100, 999, 1000)] == [0, 0, 1, 1, 2, 2, 3]
    monkeypatch.delenv(impact.KRW_ENV, raising=False)
    assert impact.krw_per_usd() == impact.DEFAULT_KRW_PER_USD
    monkeypatch.setenv(impact.KRW_ENV, "1000")
    bounds = tuple(b * impact.krw_per_usd() for b in impact.LOSS_BOUNDS_USD)
    assert [impact.colour(v, bounds) for v in (9.9e8, 1e9, 1e11, 1e12)] == [0, 1, 2, 3]
    monkeypatch.setenv(impact.KRW_ENV, "-5")
    with pytest.raises(ValueError, match=impact.KRW_ENV):
        impact.krw_per_usd()


def test_bad_events_and_records_are_refused_with_row_and_field_and_nothing_else_moves(live):
    good = {**POHANG}
    result, _ = live.post("quakes", [
        good,
        {**POHANG, "time": "2017-11-15 14:40:00", "magnitude": ""},  # no magnitude
        {**POHANG, "time": "", "magnitude": 4.0},  # no time
        {**POHANG, "time": "2017-11-15 14:41:00", "lat": ""},  # no epicentre
        {**POHANG, "time": "2017-11-15 15:29:31"},  # an hour after the clock
    ])
    refused = {r["row"]: r["field"] for r in result.refused}
    assert result.accepted == 1 and refused == {2: "magnitude", 3: "time", 4: "lat", 5: "time"}
    assert list(live.store.frame("quakes")["event_no"]) == [EVENT]

    result, _ = live.post("quake_stations", [
        {"event_no": EVENT, "station": "PHA2", "lat": 36.04, "lon": 129.37, "pga": 0.3, "unit": "g"},
        {"event_no": EVENT, "station": "A", "lat": 36.04, "lon": 129.37, "pga": "n/a", "unit": "g"},
        {"event_no": EVENT, "station": "B", "lat": 36.04, "lon": 129.37, "pga": 0.3, "unit": ""},
        {"event_no": EVENT, "station": "C", "lat": 37.56, "lon": 126.97, "pga": 0.3, "unit": "g"},  # Seoul
        {"event_no": "KMA-20990101000000", "station": "D", "lat": 36.04, "lon": 129.37, "pga": 0.3, "unit": "%g"},
    ])
    reasons = {r["row"]: (r["field"], r["reason"]) for r in result.refused}
    assert result.accepted == 1 and sorted(reasons) == [2, 3, 4, 5]
    assert reasons[2][0] == "pga" and reasons[3][0] == "unit" and "g, gal, %g" in reasons[3][1]
    assert reasons[4][0] == "lat" and "seismic region" in reasons[4][1]
    assert reasons[5][0] == "event_no" and "no quake" in reasons[5][1]
    assert list(live.store.frame("quake_stations")["station"]) == ["PHA2"]


def test_new_observations_keep_the_building_stock_and_a_new_register_rebuilds_it(pohang):
    """The live service swaps in a new Sources for every batch it takes: what reads none of the replaced
    frames (the building stock, the cells' arrays) is carried over, so a quake arriving after an hour of
    rain does not pay for rebuilding them; a new register is never answered from the old stock."""
    stock, arrays = cq.building_stock(pohang), cq.ts.cell_arrays(pohang)
    after_rain = pohang.replaced({"quakes": pohang["quakes"].head(3)})
    assert cq.building_stock(after_rain) is stock and cq.ts.cell_arrays(after_rain) is arrays
    smaller = pohang.replaced({"buildings": pohang["buildings"].head(100)})
    assert len(cq.building_stock(smaller)) <= 100 and cq.ts.cell_arrays(smaller) is arrays

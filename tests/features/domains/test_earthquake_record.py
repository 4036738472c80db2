"""The earthquake consequences against Korea's record: Pohang 2017 (the calibration event) and Gyeongju
2016 (out of sample) fall inside the bands of their tallies, on their built-in cities at full size."""

from __future__ import annotations

import pytest

from features.city import load_city
from features.domains.earthquake import consequences as cq
from features.domains.earthquake import record


@pytest.fixture(scope="module", params=list(record.EVENTS))
def event_and_result(request, quake_cities):
    event = record.EVENTS[request.param]
    return event, record.run(event, quake_cities(event.city))


def test_totals_fall_inside_the_records_bands(event_and_result):
    event, result = event_and_result
    inside = record.inside(event, result)
    assert all(inside.values()), {q: (round(result[q][0], 1), event.bands[q]) for q in record.QUANTITIES}


def test_every_total_has_a_range_around_its_typical_value(event_and_result):
    _, result = event_and_result
    for q, (mean, p05, p95) in result.items():
        assert 0 <= p05 < p95, q
        assert p05 <= mean, q  # the mean of a right-skewed total is above its 5th percentile


def test_the_events_are_the_cities_ready_scenarios():
    for event in record.EVENTS.values():
        ready = load_city(event.city).scenarios["earthquake"][0].conditions
        assert ready == event.conditions


def test_factors_lie_in_their_declared_ranges():
    for name, (lo, hi) in cq.CALIBRATION_RANGES.items():
        assert lo <= getattr(cq, name) <= hi, name

"""The engine of a city that runs some domains only: the others answer 503 with the reason."""

from __future__ import annotations

import pandas as pd
import pytest

from features.sources import Sources
from serving.engine import Engine
from serving.errors import ApiError


def test_domains_the_city_does_not_run_answer_503_with_the_reason(small_data):
    city = small_data.city_config.model_copy(update={"domains": ["fine_dust"]})
    engine = Engine(Sources(small_data.raw_dir, city), models={}, problems={"fine_dust": "no champion yet"})
    availability = engine.availability()
    assert availability["fine_dust"] == "no champion yet"
    for domain in ("flood", "traffic", "earthquake"):
        assert "does not run" in availability[domain]
        with pytest.raises(ApiError) as info:
            engine.risk(domain, [{"cell_id": engine.grid.cells["cell_id"][0]}], None, None)
        assert info.value.status == 503 and domain in info.value.msg
    assert not engine.ready  # fine dust could serve but has no model
    assert engine.domains_info()["domains"]["flood"]["available"] is False


def test_times_are_those_of_the_domains_the_city_serves_and_an_error_for_the_others(small_data):
    city = small_data.city_config.model_copy(update={"domains": ["fine_dust"]})
    engine = Engine(Sources(small_data.raw_dir, city), models={})
    first, now = engine.times("fine_dust")
    assert isinstance(first, pd.Timestamp) and isinstance(now, pd.Timestamp) and first <= now
    info = engine.domains_info()["domains"]["fine_dust"]
    assert (info["earliest_at"], info["default_at"]) == (first.isoformat(), now.isoformat())
    with pytest.raises(ApiError) as unserved:
        engine.times("flood")
    assert unserved.value.status == 503 and "does not run" in unserved.value.msg
    with pytest.raises(ApiError) as unknown:
        engine.times("volcano")
    assert unknown.value.status == 400 and unknown.value.loc == ["domain"]

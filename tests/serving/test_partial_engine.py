"""The engine of a city that runs some domains only: the others answer 503 with the reason."""

from __future__ import annotations

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

"""The aggregation registry on tests/vectors/aggregations.json (the JVM router and the invoice SQL
run the same file: jobs/jvm RouteEventsTest, tests/integration/test_vectors_sql.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tallyflow.core import aggregations
from tallyflow.core.catalog import Charge, Meter
from tallyflow.core.events import parse_time
from tallyflow.core.periods import month_bounds, plain

DOC = json.loads((Path(__file__).parents[1] / "vectors" / "aggregations.json").read_text())
METERS = DOC["meters"]


def meter(m: dict) -> Meter:
    return Meter(
        m["id"], m["event_type"], m["aggregation"], m.get("value"), tuple(m.get("group_by", ())), m.get("unit", "")
    )


def test_every_aggregation_has_a_vector():
    assert {m["aggregation"] for m in METERS} == set(aggregations.NAMES)


@pytest.mark.parametrize("m", METERS, ids=[m["id"] for m in METERS])
def test_registry_rule_rows_and_period(m):
    mt = meter(m)
    assert aggregations.of(mt).per_event == m["per_event"]
    of_type = [e for e in DOC["events"] if e["event_type"] == mt.event_type]
    rows = [aggregations.row_quantity(mt, e) for e in of_type]
    assert [None if r is None else plain(r) for r in rows] == [None if r is None else plain(r) for r in m["rows"]]
    events = [{**e, "event_time": parse_time(e["event_time"])} for e in DOC["events"]]
    start, end = month_bounds(DOC["period"])
    in_period = [e for e in events if start <= e["event_time"] < end]
    # A time_weighted meter reads the levels before the period too (the last one carries in).
    quantity = (
        aggregations.period_quantity(mt, Charge(mt.id, "per_unit"), events, start, end)
        if mt.aggregation == "time_weighted"
        else aggregations.period_quantity(mt, Charge(mt.id, "per_unit"), in_period)
    )
    assert plain(quantity) == m["period"]

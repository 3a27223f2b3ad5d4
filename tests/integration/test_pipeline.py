"""End to end on the real stack: produce -> run --bounded -> invoice, with exact totals.

The expected amounts below are worked out by hand from the events in this file (not by the
project's pricing code), so the test is an independent check of the whole pipeline.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal as D

import pytest
import yaml

pytestmark = pytest.mark.integration

CATALOG = {
    "meters": [
        {"id": "api_calls", "event_type": "api_call", "aggregation": "count"},
        {"id": "tokens", "event_type": "llm_call", "aggregation": "sum", "value": "tokens", "group_by": ["model"]},
    ],
    "plans": [
        {
            "id": "basic",
            "version": 1,
            "effective_from": "2026-01-01T00:00:00Z",
            "currency": "USD",
            "base_fee": "10.00",
            "charges": [
                {"meter": "api_calls", "model": "per_unit", "unit_price": "0.05"},
                {"meter": "tokens", "filter": {"model": "a"}, "model": "per_unit", "unit_price": "0.001"},
            ],
        },
        {
            "id": "yen",
            "version": 1,
            "effective_from": "2026-01-01T00:00:00Z",
            "currency": "JPY",
            "base_fee": "100",
            "charges": [{"meter": "api_calls", "model": "per_unit", "unit_price": "1.5"}],
        },
    ],
    "subscriptions": [
        {"customer": "c1", "plan": "basic", "start": "2026-01-01T00:00:00Z"},
        {"customer": "c2", "plan": "yen", "start": "2026-01-01T00:00:00Z"},
    ],
}


def ev(
    event_id: str, customer: str, event_type: str, t: str, values: dict | None = None, dims: dict | None = None
) -> dict:
    return {
        "event_id": event_id,
        "customer_id": customer,
        "event_type": event_type,
        "event_time": t,
        "values": values or {},
        "dimensions": dims or {},
    }


def october_events() -> list[dict]:
    """Send order: mostly by time, with out-of-order arrivals and duplicates resent later."""
    c1_calls = [ev(f"c1-call-{i}", "c1", "api_call", f"2026-10-{10 + i:02d}T08:00:00Z") for i in range(7)]
    tokens = [
        ev("c1-tok-1", "c1", "llm_call", "2026-10-05T10:00:00Z", {"tokens": "1000.5"}, {"model": "a"}),
        ev("c1-tok-2", "c1", "llm_call", "2026-10-06T10:00:00Z", {"tokens": "2000"}, {"model": "a"}),
        ev("c1-tok-3", "c1", "llm_call", "2026-10-07T10:00:00Z", {"tokens": "0.000000000001"}, {"model": "a"}),
        ev("c1-tok-4", "c1", "llm_call", "2026-10-07T11:00:00Z", {"tokens": "5000"}, {"model": "b"}),
    ]
    boundary = [
        ev("c1-last-ms", "c1", "api_call", "2026-10-31T23:59:59.999Z"),  # October
        ev("c1-first-ms", "c1", "api_call", "2026-11-01T00:00:00.000Z"),  # November
        ev("c1-offset", "c1", "api_call", "2026-10-31T20:30:00-04:00"),  # 2026-11-01T00:30Z: November
    ]
    c2 = [ev(f"c2-call-{i}", "c2", "api_call", f"2026-10-0{i + 1}T12:00:00+09:00") for i in range(3)]
    unbilled = [ev("c3-call-1", "c3", "api_call", "2026-10-15T00:00:00Z")]  # no subscription
    ordered = tokens + c2 + c1_calls + unbilled + boundary
    early = ev("c1-call-early", "c1", "api_call", "2026-10-02T00:00:00Z")  # arrives a month late
    return [
        *ordered[:5],
        dict(ordered[4]),  # duplicate resent at once
        *ordered[5:],
        early,
        dict(c1_calls[2]),  # duplicates resent much later
        dict(tokens[0]),
        dict(c2[0]),
    ]


def write_jsonl(path, events: list[dict]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


@pytest.fixture
def catalog_file(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(CATALOG))
    return path


def test_produce_run_invoice_exact_totals(tallyflow, tmp_path, catalog_file):
    events = tmp_path / "events.jsonl"
    write_jsonl(events, october_events())
    out = tallyflow("produce", "--file", str(events), "--format", "json")
    assert json.loads(out.stdout) == {"sent": 23, "rejected": 0, "failed": 0}

    tallyflow("run", "--catalog", str(catalog_file), "--bounded")

    counts = tallyflow.sql("SELECT count() AS n, uniqExact(customer_id, event_id) AS u FROM events FINAL")[0]
    assert counts == {"n": 19, "u": 19}  # 23 sent - 4 duplicates

    invoices = {i["customer"]: i for i in tallyflow.json("invoice", "--period", "2026-10")}
    assert set(invoices) == {"c1", "c2"}  # c3 has no subscription: stored, not billed

    c1 = invoices["c1"]
    lines = {(line["type"], line["meter"], line["filter"]): line for line in c1["lines"]}
    assert c1["currency"] == "USD"
    assert lines[("base_fee", None, None)]["amount"] == "10.00"
    calls = lines[("usage", "api_calls", None)]
    # 7 calls on Oct 10-16, the last millisecond of October, and the one that arrived a month late.
    assert (calls["quantity"], calls["amount"]) == ("9", "0.45")
    tok = lines[("usage", "tokens", "model=a")]
    assert tok["quantity"] == "3000.500000000001"
    assert D(tok["amount_exact"]) == D("3.000500000000001")
    assert tok["amount"] == "3.00"
    assert c1["total"] == "13.45"

    c2 = invoices["c2"]
    assert c2["currency"] == "JPY"
    # 3 calls x 1.5 = 4.5, rounded half-up to whole yen: 5; base fee 100.
    assert [(x["type"], x["amount"]) for x in c2["lines"]] == [("base_fee", "100"), ("usage", "5")]
    assert c2["total"] == "105"

    november = {i["customer"]: i for i in tallyflow.json("invoice", "--period", "2026-11", "--customer", "c1")}
    assert [x["quantity"] for x in november["c1"]["lines"] if x["meter"] == "api_calls"] == ["2"]


def test_shuffled_input_gives_identical_invoices(tallyflow, tmp_path, catalog_file):
    events = october_events()
    random.Random(3).shuffle(events)
    path = tmp_path / "shuffled.jsonl"
    write_jsonl(path, events)
    tallyflow("produce", "--file", str(path))
    tallyflow("run", "--catalog", str(catalog_file), "--bounded")
    invoices = {i["customer"]: i["total"] for i in tallyflow.json("invoice", "--period", "2026-10")}
    assert invoices == {"c1": "13.45", "c2": "105"}
    # Every accepted event is in exactly one place: its hourly window, an adjustment, or the late output.
    placed = tallyflow.sql("""
        SELECT (SELECT count() FROM events FINAL) AS accepted,
               (SELECT sum(event_count) FROM usage_windows FINAL WHERE meter_id = 'api_calls')
             + (SELECT sum(event_count) FROM usage_adjustments FINAL WHERE meter_id = 'api_calls')
             + (SELECT count() FROM late_events FINAL WHERE event_type = 'api_call') AS calls_placed,
               (SELECT count() FROM events FINAL WHERE event_type = 'api_call') AS calls""")[0]
    assert placed["accepted"] == 19
    assert placed["calls_placed"] == placed["calls"] == 15

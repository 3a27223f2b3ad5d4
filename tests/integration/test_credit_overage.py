"""The credit overage of a plan segment is one invoice line: every uncovered credit summed, then
rounded once (docs/catalog.md, Credits), with the per-meter split in its breakdown. Run on the
invoice SQL against ledger rows written as the job writes them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from tallyflow.billing import invoice
from tallyflow.core import catalog
from tallyflow.land import catalog_store

pytestmark = pytest.mark.integration

CATALOG = catalog.parse(
    {
        "meters": [
            {"id": "calls", "event_type": "call", "aggregation": "count"},
            {"id": "gb", "event_type": "transfer", "aggregation": "sum", "value": "gb"},
        ],
        "plans": [
            {
                "id": "prepaid-overage",
                "version": 1,
                "effective_from": "2026-01-01T00:00:00Z",
                "currency": "USD",
                "credits": {"rates": {"calls": "1", "gb": "3"}, "credit_price": "0.01", "overage_multiplier": "1.2"},
            }
        ],
        "subscriptions": [{"customer": "ov1", "plan": "prepaid-overage", "start": "2026-01-01T00:00:00Z"}],
    },
    "overage",
)
COLUMNS = [
    "customer_id",
    "seq",
    "kind",
    "grant_id",
    "meter_id",
    "event_time",
    "quantity",
    "credits",
    "plan_id",
    "version",
    "emitted_at",
    "kafka_partition",
    "kafka_offset",
]


def test_uncovered_credits_are_summed_then_rounded_once(clickhouse_client):
    client = clickhouse_client
    catalog_store.apply(client, CATALOG, "overage")
    t = datetime(2026, 8, 10, 12)
    # The measured month of the issue: 820.939 uncovered credits at 0.01 x 1.2 = 9.851268 -> 9.85.
    # Per meter, 6.895596 -> 6.90 and 2.955672 -> 2.96 would have billed 9.86.
    rows = [
        ["ov1", 1, "draw", "g", "calls", t, Decimal(1000), Decimal(1000)],
        ["ov1", 2, "uncovered", "", "calls", t, Decimal("574.633"), Decimal("574.633")],
        ["ov1", 3, "uncovered", "", "gb", t, Decimal("82.102"), Decimal("246.306")],
    ]
    client.insert(
        "credit_ledger", [[*r, "prepaid-overage", 1, t, 0, n] for n, r in enumerate(rows)], column_names=COLUMNS
    )
    (inv,) = invoice.compute(client, "2026-08", customer="ov1")
    doc = inv.as_dict()
    (line,) = [x for x in doc["lines"] if x["type"] == "credits"]
    assert (line["quantity"], line["billable"], line["amount_exact"], line["amount"]) == (
        "1820.939",
        "820.939",
        "9.851268",
        "9.85",
    )
    assert doc["total"] == "9.85"
    assert [(b["meter"], b["part"], b["units"], b["credits"], b["amount"]) for b in line["breakdown"]] == [
        ("calls", "covered", "1000", "1000", "0"),
        ("calls", "uncovered", "574.633", "574.633", "6.895596"),
        ("gb", "covered", "0", "0", "0"),
        ("gb", "uncovered", "82.102", "246.306", "2.955672"),
    ]

"""Finalized invoices are immutable; usage that reaches a finalized period later is billed as a
correction on the next invoice, naming the original period, exactly once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tallyflow.billing import invoice
from tallyflow.core import catalog
from tallyflow.land import catalog_store
from tests.vector_cases import EVENT_COLUMNS

pytestmark = pytest.mark.integration

CATALOG = catalog.parse(
    {
        "meters": [{"id": "calls", "event_type": "call", "aggregation": "count"}],
        "plans": [
            {
                "id": "p",
                "version": 1,
                "effective_from": "2026-01-01T00:00:00Z",
                "currency": "USD",
                "base_fee": "10.00",
                "minimum_commitment": "20.00",
                "charges": [{"meter": "calls", "model": "per_unit", "unit_price": "1"}],
            }
        ],
        "subscriptions": [{"customer": "c1", "plan": "p", "start": "2026-01-01T00:00:00Z"}],
    }
)
COLUMNS = EVENT_COLUMNS


@pytest.fixture
def client(clickhouse_client):
    c = clickhouse_client
    for table in ("events", "invoices_finalized", "invoice_lines_finalized"):
        c.command(f"TRUNCATE TABLE {table}")
    catalog_store.apply(c, CATALOG, "test")
    return c


def calls(client, n: int, day: str, first: int) -> None:
    t = datetime.fromisoformat(day).replace(tzinfo=UTC)
    client.insert(
        "events",
        [["c1", f"e{first + i}", "call", t, {}, {}, 1002, 0, 0, first + i] for i in range(n)],
        column_names=COLUMNS,
    )


def lines(inv) -> list[tuple]:
    return [
        (x["type"], x["meter"], x.get("corrects", {}).get("period"), x["quantity"], x["amount"]) for x in inv["lines"]
    ]


def test_finalize_then_correct_late_usage(client):
    calls(client, 5, "2026-09-10", 0)
    (sept,) = [i.as_dict() for i in invoice.finalize(client, "2026-09")]
    assert sept["status"] == "finalized" and sept["total"] == "20.00"
    assert lines(sept) == [
        ("base_fee", None, None, "1", "10.00"),
        ("usage", "calls", None, "5", "5.00"),
        ("minimum_commitment", None, None, "1", "5.00"),
    ]

    calls(client, 30, "2026-09-20", 100)  # arrives after September was finalized
    assert [i.as_dict() for i in invoice.compute(client, "2026-09")] == [sept]  # the same invoice, unchanged
    assert [i.as_dict() for i in invoice.finalize(client, "2026-09")] == [sept]

    (oct_,) = [i.as_dict() for i in invoice.compute(client, "2026-10")]
    assert lines(oct_) == [
        ("base_fee", None, None, "1", "10.00"),
        ("usage", "calls", None, "0", "0.00"),
        ("minimum_commitment", None, None, "1", "10.00"),
        ("correction", None, "2026-09", "-1", "-5.00"),  # the September true-up line is no longer owed
        ("correction", "calls", "2026-09", "30", "30.00"),
    ]
    assert oct_["total"] == "45.00"
    (oct_final,) = [i.as_dict() for i in invoice.finalize(client, "2026-10", now=datetime(2026, 11, 2, tzinfo=UTC))]
    assert lines(oct_final) == lines(oct_)

    (nov,) = [i.as_dict() for i in invoice.compute(client, "2026-11")]
    assert not [x for x in nov["lines"] if x["type"] == "correction"]  # corrected once, not again

    calls(client, 1, "2026-09-30", 500)
    (nov,) = [i.as_dict() for i in invoice.compute(client, "2026-11")]
    assert [x for x in lines(nov) if x[0] == "correction"] == [("correction", "calls", "2026-09", "1", "1.00")]


def test_an_open_period_cannot_be_finalized(client):
    from tallyflow.errors import UserError

    with pytest.raises(UserError, match="has not ended"):
        invoice.finalize(client, "2026-11", now=datetime(2026, 11, 21, tzinfo=UTC))


def test_a_new_catalog_is_not_mistaken_for_late_usage(client):
    """Corrections recompute a finalized period with the catalog it was priced with."""
    calls(client, 5, "2026-09-10", 0)
    invoice.finalize(client, "2026-09")
    repriced = catalog.parse(
        {
            "meters": [{"id": "calls", "event_type": "call", "aggregation": "count"}],
            "plans": [
                {
                    "id": "p",
                    "version": 1,
                    "effective_from": "2026-01-01T00:00:00Z",
                    "currency": "USD",
                    "base_fee": "10.00",
                    "charges": [{"meter": "calls", "model": "per_unit", "unit_price": "3"}],
                }
            ],
            "subscriptions": [{"customer": "c1", "plan": "p", "start": "2026-01-01T00:00:00Z"}],
        }
    )
    catalog_store.apply(client, repriced, "repriced")  # now two catalogs have been applied
    calls(client, 2, "2026-10-03", 100)
    (oct_,) = [i.as_dict() for i in invoice.compute(client, "2026-10")]
    assert lines(oct_) == [("base_fee", None, None, "1", "10.00"), ("usage", "calls", None, "2", "6.00")]
    assert oct_["total"] == "16.00"

"""The invoice vectors through the invoice SQL, on ClickHouse (embedded chdb, or a server when
TALLYFLOW_CLICKHOUSE_URL names one)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tallyflow import catalog_store, invoice, pricing
from tallyflow.events import parse_time
from tallyflow.generator import month_bounds
from tests.vector_cases import load, load_versions, norm

pytestmark = pytest.mark.integration
PERIOD, CATALOG, CASES = load()
EVENT_COLUMNS = ["customer_id", "event_id", "event_type", "event_time", "values", "dimensions", "schema_id",
                 "on_time", "kafka_partition", "kafka_offset"]


@pytest.fixture(scope="module")
def invoices(clickhouse_client) -> dict:
    client = clickhouse_client
    for table in ("events", "invoices_finalized", "invoice_lines_finalized"):
        client.command(f"TRUNCATE TABLE {table}")
    catalog_store.apply(client, CATALOG, "tests/vectors/invoices.json")
    events = [ev for case in CASES for ev in case.events]
    rows = [[e["customer_id"], e["event_id"], e["event_type"], e["event_time"],
             {k: Decimal(v) for k, v in e["values"].items()}, e["dimensions"], 1002, 1, 0, n]
            for n, e in enumerate(events)]
    client.insert("events", rows, column_names=EVENT_COLUMNS)
    return {i.customer: i for i in invoice.compute(client, PERIOD)}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_invoice_sql(case, invoices):
    inv = invoices[case.customer]
    got = [(x.type, x.meter, x.filter, norm(x.quantity), norm(x.amount_exact),
            str(invoice.round_display(x.amount, x.minor_units))) for x in inv.lines]
    assert got == case.expected_lines
    assert str(invoice.round_display(inv.total, inv.minor_units)) == case.expected_total


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_breakdown_matches_python_rater(case, invoices):
    """Each usage line's tier breakdown is the one pricing.py gives for the same quantity."""
    (sub,) = [s for s in CATALOG.subscriptions if s.customer == case.customer]
    for line in (x for x in invoices[case.customer].lines if x.type == "usage"):
        plan = next(p for p in CATALOG.plan_versions(sub.plan) if p.version == line.version)
        charge = next(c for c in plan.charges
                      if c.meter == line.meter and ",".join(f"{k}={v}" for k, v in c.filter) == line.filter)
        rows = pricing.price(charge, line.quantity).breakdown
        assert sum((b.amount for b in line.breakdown), Decimal(0)) == line.amount_exact
        assert [(int(b.index) - 1, norm(b.units), norm(b.amount)) for b in line.breakdown] == \
               [(r.index, norm(r.units), norm(r.amount)) for r in rows]


VERSION_CASES = load_versions()


@pytest.mark.parametrize("case", VERSION_CASES, ids=[c.name for c in VERSION_CASES])
def test_version_in_force_sql(case, clickhouse_client):
    """The SQL home of the version rule (sql/ddl/001_version_in_force.sql) on the shared vectors."""
    versions = case.catalog.plan_versions("p")
    start, _ = month_bounds(case.period)
    got = clickhouse_client.query(
        "SELECT tf_version_in_force({v:Array(UInt32)}, {e:Array(DateTime64(3, 'UTC'))}, {a:Array(String)},"
        " {ps:DateTime64(3, 'UTC')}, {at:DateTime64(3, 'UTC')})",
        parameters={"v": [p.version for p in versions], "e": [p.effective_from.replace(tzinfo=None) for p in versions],
                    "a": [p.apply for p in versions], "ps": start.replace(tzinfo=None),
                    "at": parse_time(case.at).replace(tzinfo=None)}).result_rows[0][0]
    assert got == case.expected

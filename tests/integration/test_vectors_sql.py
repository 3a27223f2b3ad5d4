"""The invoice vectors through the invoice SQL, on ClickHouse (embedded chdb, or a server when
TALLYFLOW_CLICKHOUSE_URL names one)."""

from __future__ import annotations

import gc
import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from tallyflow.billing import invoice
from tallyflow.core import catalog, pricing
from tallyflow.core.events import parse_time
from tallyflow.core.periods import month_bounds
from tallyflow.land import catalog_store, clickhouse
from tests.vector_cases import load, load_versions, norm

pytestmark = pytest.mark.integration
PERIOD, CATALOG, CASES = load()
EVENT_COLUMNS = [
    "customer_id",
    "event_id",
    "event_type",
    "event_time",
    "values",
    "dimensions",
    "schema_id",
    "on_time",
    "kafka_partition",
    "kafka_offset",
]


@pytest.fixture(scope="module")
def invoices(clickhouse_client) -> dict:
    client = clickhouse_client
    for table in ("events", "invoices_finalized", "invoice_lines_finalized"):
        client.command(f"TRUNCATE TABLE {table}")
    catalog_store.apply(client, CATALOG, "tests/vectors/invoices.json")
    events = [ev for case in CASES for ev in case.events]
    rows = [
        [
            e["customer_id"],
            e["event_id"],
            e["event_type"],
            e["event_time"],
            {k: Decimal(v) for k, v in e["values"].items()},
            e["dimensions"],
            1002,
            1,
            0,
            n,
        ]
        for n, e in enumerate(events)
    ]
    client.insert("events", rows, column_names=EVENT_COLUMNS)
    return {i.customer: i for i in invoice.compute(client, PERIOD)}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_invoice_sql(case, invoices):
    inv = invoices[case.customer]
    got = [
        (
            x.type,
            x.meter,
            x.filter,
            norm(x.quantity),
            norm(x.amount_exact),
            str(invoice.round_display(x.amount, x.minor_units)),
        )
        for x in inv.lines
    ]
    assert got == case.expected_lines
    assert str(invoice.round_display(inv.total, inv.minor_units)) == case.expected_total


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_breakdown_matches_python_rater(case, invoices):
    """Each usage line's tier breakdown is the one pricing.py gives for the same quantity."""
    (sub,) = [s for s in CATALOG.subscriptions if s.customer == case.customer]
    for line in (x for x in invoices[case.customer].lines if x.type == "usage"):
        plan = next(p for p in CATALOG.plan_versions(sub.plan) if p.version == line.version)
        charge = next(
            c
            for c in plan.charges
            if c.meter == line.meter and ",".join(f"{k}={v}" for k, v in c.filter) == line.filter
        )
        rows = pricing.price(charge, line.quantity).breakdown
        assert sum((b.amount for b in line.breakdown), Decimal(0)) == line.amount_exact
        assert [(int(b.number) - 1, norm(b.units), norm(b.amount)) for b in line.breakdown] == [
            (r.index, norm(r.units), norm(r.amount)) for r in rows
        ]


VERSION_CASES = load_versions()


@pytest.mark.parametrize("case", VERSION_CASES, ids=[c.name for c in VERSION_CASES])
def test_version_in_force_sql(case, clickhouse_client):
    """The SQL home of the version rule (sql/ddl/001_version_in_force.sql) on the shared vectors."""
    versions = case.catalog.plan_versions("p")
    start, _ = month_bounds(case.period)
    got = clickhouse_client.query(
        "SELECT tf_version_in_force({v:Array(UInt32)}, {e:Array(DateTime64(3, 'UTC'))}, {a:Array(String)},"
        " {ps:DateTime64(3, 'UTC')}, {at:DateTime64(3, 'UTC')})",
        parameters={
            "v": [p.version for p in versions],
            "e": [p.effective_from.replace(tzinfo=None) for p in versions],
            "a": [p.apply for p in versions],
            "ps": start.replace(tzinfo=None),
            "at": parse_time(case.at).replace(tzinfo=None),
        },
    ).result_rows[0][0]
    assert got == case.expected


AGGREGATIONS = json.loads((Path(__file__).parents[1] / "vectors" / "aggregations.json").read_text())


@pytest.mark.parametrize("aggregations", ["all", "foldable"])
def test_aggregations_sql(clickhouse_client, aggregations):
    """The invoice SQL's period quantity of each aggregation on tests/vectors/aggregations.json.
    With a latest or quantile charge on their type, the events are aggregated one by one; with
    only count, sum, max and unique_count charges, they are folded per dimensions first (events of
    one user share a row), and the quantities must not change."""
    doc, client = AGGREGATIONS, clickhouse_client
    customer = doc["customer"]
    meters = [
        {k: m[k] for k in ("id", "event_type", "aggregation", "value") if k in m}
        for m in doc["meters"]
        if aggregations == "all" or m["aggregation"] in ("count", "sum", "max", "unique_count")
    ]
    cat = catalog.parse(
        {
            "meters": meters,
            "plans": [
                {
                    "id": "agg",
                    "version": 1,
                    "effective_from": "2026-01-01T00:00:00Z",
                    "currency": "USD",
                    "charges": [{"meter": m["id"], "model": "per_unit", "unit_price": "1"} for m in meters],
                }
            ],
            "subscriptions": [{"customer": customer, "plan": "agg", "start": "2026-01-01T00:00:00Z"}],
        },
        "aggregations",
    )
    catalog_store.apply(client, cat, "tests/vectors/aggregations.json")
    client.command("DELETE FROM events WHERE customer_id = {c:String}", parameters={"c": customer})
    client.insert(
        "events",
        [
            [
                customer,
                e["event_id"],
                e["event_type"],
                parse_time(e["event_time"]),
                {k: Decimal(v) for k, v in e["values"].items()},
                e["dimensions"],
                1002,
                1,
                0,
                n,
            ]
            for n, e in enumerate(doc["events"])
        ],
        column_names=EVENT_COLUMNS,
        # The same block again after the DELETE above: a token of its own, or the table's
        # insert deduplication drops it.
        settings={"insert_deduplication_token": uuid.uuid4().hex},
    )
    (inv,) = invoice.compute(client, doc["period"], customer=customer)
    got = {line.meter: norm(line.quantity) for line in inv.lines if line.type == "usage"}
    assert got == {m["id"]: m["period"] for m in doc["meters"] if m["id"] in got}
    assert set(got) == {m["id"] for m in meters}


def test_tuples_are_the_query_rows_and_the_collector_runs_again(invoices, clickhouse_client):
    start, end = month_bounds(PERIOD)
    params = {"period_start": start.replace(tzinfo=None), "period_end": end.replace(tzinfo=None)}
    params |= {"customer": "", "digest": ""}
    as_dicts = clickhouse.query(clickhouse_client, "invoice/invoice_lines", params)
    as_tuples = clickhouse.query(clickhouse_client, "invoice/invoice_lines", params, tuples=True)
    assert len(as_tuples) == len(as_dicts) > 0  # the same store (later tests may have changed it)
    assert [r._asdict() for r in as_tuples] == as_dicts
    assert gc.isenabled()  # invoice.compute paused it only while it assembled

"""The invoice vectors through the invoice SQL, on ClickHouse (embedded chdb, or a server when
TALLYFLOW_CLICKHOUSE_URL names one)."""

from __future__ import annotations

import gc
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tallyflow.billing import invoice, invoice_model
from tallyflow.core import aggregations, catalog, pricing
from tallyflow.core.events import parse_time
from tallyflow.core.model import Charge, Meter
from tallyflow.core.periods import month_bounds
from tallyflow.land import catalog_store, clickhouse
from tests.vector_cases import EVENT_COLUMNS, load, load_versions, norm, store_events

PERIOD, CATALOG, CASES = load()


@pytest.fixture(scope="module")
def invoices(clickhouse_client) -> dict:
    client = clickhouse_client
    for table in ("events", "invoices_finalized", "invoice_lines_finalized"):
        client.command(f"TRUNCATE TABLE {table}")
    catalog_store.apply(client, CATALOG, "tests/vectors/invoices.json")
    store_events(client, [ev for case in CASES for ev in case.events])
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
            str(invoice_model.round_display(x.amount, x.minor_units)),
        )
        for x in inv.lines
    ]
    assert got == case.expected_lines
    assert str(invoice_model.round_display(inv.total, inv.minor_units)) == case.expected_total


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


NO_FILTER = Charge(meter="", model="per_unit")
AGGREGATIONS = json.loads((Path(__file__).parents[1] / "vectors" / "aggregations.json").read_text())


def _store_aggregation_vectors(client, meters: list[dict]) -> None:
    """The vectors' events in `events` (lateness on_time) and a catalog pricing `meters` at 1 each."""
    doc = AGGREGATIONS
    customer = doc["customer"]
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
                "on_time",
                0,
                n,
            ]
            for n, e in enumerate(doc["events"])
        ],
        column_names=[*EVENT_COLUMNS[:8], "lateness", *EVENT_COLUMNS[8:]],
        # The same block again after the DELETE above: a token of its own, or the table's
        # insert deduplication drops it.
        settings={"insert_deduplication_token": uuid.uuid4().hex},
    )


def _vector_meters(only: tuple[str, ...] = aggregations.NAMES) -> list[dict]:
    keys = ("id", "event_type", "aggregation", "value", "group_by", "unit")
    return [{k: m[k] for k in keys if k in m} for m in AGGREGATIONS["meters"] if m["aggregation"] in only]


@pytest.mark.parametrize("which", ["all", "foldable"])
def test_aggregations_sql(clickhouse_client, which):
    """The invoice SQL's period quantity of each aggregation on tests/vectors/aggregations.json.
    With a latest or quantile charge on their type, the events are aggregated one by one; with
    only count, sum, max and unique_count charges, they are folded per dimensions first (events of
    one user share a row), and the quantities must not change."""
    doc = AGGREGATIONS
    meters = _vector_meters() if which == "all" else _vector_meters(("count", "sum", "max", "unique_count"))
    _store_aggregation_vectors(clickhouse_client, meters)
    (inv,) = invoice.compute(clickhouse_client, doc["period"], customer=doc["customer"])
    got = {line.meter: norm(line.quantity) for line in inv.lines if line.type == "usage"}
    assert got == {m["id"]: m["period"] for m in doc["meters"] if m["id"] in got}
    assert set(got) == {m["id"] for m in meters}


def test_daily_usage_sql_applies_each_period_rule_to_each_day(clickhouse_client):
    """sql/serve/daily_usage.sql on the vectors: each day's quantity is the Python rule
    (aggregations.period_quantity) over that day's events, for every aggregation, with latest's
    tie on event time broken by the larger event id (e19 and e24 on 2026-11-22)."""
    doc, meters = AGGREGATIONS, _vector_meters()
    _store_aggregation_vectors(clickhouse_client, meters)
    rows = clickhouse.query(
        clickhouse_client,
        "serve/daily_usage",
        {
            "customer": doc["customer"],
            "from_day": "2026-11-01",
            "to_day": "2026-11-30",
            **aggregations.sql_parameters(),
        },
    )
    got = {(str(r["day"]), r["meter_id"]): norm(r["quantity"]) for r in rows}
    cat_meters = {
        m["id"]: Meter(
            m["id"], m["event_type"], m["aggregation"], m.get("value"), tuple(m.get("group_by", ())), m.get("unit", "")
        )
        for m in meters
    }
    every = [{**e, "event_time": parse_time(e["event_time"])} for e in doc["events"]]
    expected = {}
    for n in range(30):
        start = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=n)
        day, end = start.date().isoformat(), start + timedelta(days=1)
        events = [e for e in every if start <= e["event_time"] < end]
        for m in cat_meters.values():
            reported = any(
                aggregations.row_quantity(m, e) is not None for e in events if e["event_type"] == m.event_type
            )
            if m.aggregation == "time_weighted":  # a level holds on days without events too
                q = aggregations.period_quantity(m, NO_FILTER, every, start, end)
                if reported or q:
                    expected[(day, m.id)] = norm(q)
            elif reported:
                expected[(day, m.id)] = norm(aggregations.period_quantity(m, NO_FILTER, events))
    assert got == expected
    assert got[("2026-11-22", "l")] == "3"  # e24, not e19


def test_reconcile_metering_sql_counts_what_the_router_emits(clickhouse_client):
    """sql/reconcile/metering.sql on the vectors: each meter's events and quantity are the count
    and sum of the rows the router emits (`rows`, null for none)."""
    doc, meters = AGGREGATIONS, _vector_meters()
    _store_aggregation_vectors(clickhouse_client, meters)
    start, end = month_bounds(doc["period"])
    rows = clickhouse.query(
        clickhouse_client,
        "reconcile/metering",
        {
            "period_start": start.replace(tzinfo=None),
            "period_end": end.replace(tzinfo=None),
            **aggregations.sql_parameters(),
        },
    )
    got = {
        r["meter_id"]: (r["events_count"], norm(r["events_quantity"]))
        for r in rows
        if r["customer_id"] == doc["customer"] and r["lateness"] == "on_time"
    }
    expected = {}
    for m in doc["meters"]:
        of_type = [e for e in doc["events"] if e["event_type"] == m["event_type"]]
        rows = [r for e, r in zip(of_type, m["rows"], strict=True) if start <= parse_time(e["event_time"]) < end]
        expected[m["id"]] = (
            sum(1 for x in rows if x is not None),
            norm(sum((Decimal(x) for x in rows if x is not None), Decimal(0))),
        )
    assert got == expected


def test_tuples_are_the_query_rows_and_the_collector_runs_again(invoices, clickhouse_client):
    params = invoice.line_parameters(PERIOD)
    as_dicts = clickhouse.query(clickhouse_client, "invoice/invoice_lines", params)
    as_tuples = clickhouse.query(clickhouse_client, "invoice/invoice_lines", params, tuples=True)
    assert len(as_tuples) == len(as_dicts) > 0  # the same store (later tests may have changed it)
    assert [r._asdict() for r in as_tuples] == as_dicts
    assert gc.isenabled()  # invoice.compute paused it only while it assembled

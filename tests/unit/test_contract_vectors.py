"""The contract vectors (tests/vectors/contracts.json: anchors and period lengths, overrides,
coupons, taxes, a time_weighted meter) through the Python reference (core/plans.py and
core/totals.py) and through the invoice SQL on ClickHouse (sql/invoice/invoice_lines.sql, then
billing/invoice.py): both must give every invoice line and sum worked out by hand."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tallyflow.billing import invoice
from tallyflow.core import catalog, plans, pricing, totals
from tallyflow.core.events import parse_time
from tallyflow.core.periods import Selection, at_instant, iso_utc, parse_period
from tallyflow.land import catalog_store
from tests.vector_cases import store_events

DOC = json.loads((Path(__file__).parents[1] / "vectors" / "contracts.json").read_text())
CATALOG = catalog.parse(DOC["catalog"], "contracts")
EVENTS = [{**e, "event_time": parse_time(e["event_time"])} for e in DOC["events"]]
CASES = DOC["cases"]
ZERO = Decimal(0)


def _selection(case: dict) -> Selection:
    return parse_period(case["period"]) if "period" in case else at_instant(parse_time(case["at"]))


def _expected(case: dict) -> list[dict]:
    return [{**inv, "lines": [tuple(line) for line in inv["lines"]]} for inv in case["invoices"]]


def _money(d: Decimal) -> str:
    return str(d.quantize(Decimal("0.01")))


def reference(case: dict) -> list[dict]:
    """The invoices of the case's customer and period from the Python reference."""
    chosen = _selection(case)
    out = []
    for sub in (s for s in CATALOG.subscriptions if s.customer == case["customer"]):
        length = CATALOG.billing_period(sub.plan)
        for period in chosen.periods(length, sub.billing_anchor):
            if not (sub.start < period.end and (sub.end is None or sub.end > period.start)):
                continue
            lines = plans.invoice_lines(CATALOG, sub, period, EVENTS)
            minor = CATALOG.plan_versions(sub.plan)[0].minor_units
            rows = [(x.type, x.meter, "", _money(x.amount), x.override) for x in lines]
            adjust = totals.adjustments(CATALOG, sub, period, ((x.meter, x.amount) for x in lines), minor)
            rows += [(a.type, "", a.ref, _money(a.amount), False) for a in adjust]
            subtotal = sum((x.amount for x in lines), ZERO)
            discount = -sum((a.amount for a in adjust if a.type == "discount"), ZERO)
            tax = sum((a.amount for a in adjust if a.type == "tax"), ZERO)
            out.append(
                {
                    **period.as_dict(),
                    "lines": rows,
                    "subtotal": _money(subtotal),
                    "discount_total": _money(discount),
                    "tax_total": _money(pricing.round_money(tax, minor)),
                    "total": _money(subtotal - discount + tax),
                }
            )
    return out


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_python_reference(case):
    assert reference(case) == _expected(case), case["why"]


@pytest.fixture(scope="module")
def store(clickhouse_client):
    client = clickhouse_client
    for table in ("events", "invoices_finalized", "invoice_lines_finalized"):
        client.command(f"TRUNCATE TABLE {table}")
    catalog_store.apply(client, CATALOG, "tests/vectors/contracts.json")
    store_events(client, EVENTS)
    return client


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_invoice_sql(case, store):
    got = []
    for inv in invoice.compute(store, _selection(case), customer=case["customer"]):
        d = inv.as_dict()
        got.append(
            {
                "period": d["period"],
                "period_start": d["period_start"],
                "period_end": d["period_end"],
                "lines": [
                    (x["type"], x["meter"] or "", x.get("coupon") or x.get("tax") or "", x["amount"], x["override"])
                    for x in d["lines"]
                ],
                **{k: d[k] for k in ("subtotal", "discount_total", "tax_total", "total")},
            }
        )
        assert all(x["period_start"] == d["period_start"] for x in d["lines"])  # every line names its period
    assert got == _expected(case), case["why"]


def test_every_line_of_an_override_says_so_and_quote_uses_the_overrides():
    from tallyflow.billing import quote

    listed = quote.quote(CATALOG, "m", "api", "1100", at=parse_time("2026-02-10T00:00:00Z"))
    own = quote.quote(CATALOG, None, "api", "1100", at=parse_time("2026-02-10T00:00:00Z"), customer="cal")
    assert (listed["amount"], listed["override"]) == ("10.00", False)  # (1100 - 100) x 0.01
    assert (own["amount"], own["override"], own["customer"]) == ("5.00", True, "cal")  # x 0.005
    assert iso_utc(parse_time("2026-02-10T00:00:00Z")) == "2026-02-10T00:00:00.000Z"

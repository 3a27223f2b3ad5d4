"""One version rule: plans.version_in_force, `tallyflow quote` and the invoice agree on
tests/vectors/versions.json and on every invoice vector (the SQL side: tests/integration/test_vectors_sql.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tallyflow.billing import quote
from tallyflow.core import plans
from tallyflow.core.events import parse_time
from tallyflow.core.periods import Period, month_bounds
from tests.vector_cases import load, load_versions

VERSION_CASES = load_versions()
PERIOD, CATALOG, CASES = load()


@pytest.mark.parametrize("case", VERSION_CASES, ids=[c.name for c in VERSION_CASES])
def test_version_in_force(case):
    start, _ = month_bounds(case.period)
    got = plans.version_in_force(case.catalog.plan_versions("p"), start, parse_time(case.at))
    assert got.version == case.expected


@pytest.mark.parametrize("case", VERSION_CASES, ids=[c.name for c in VERSION_CASES])
def test_quote_prices_with_the_version_in_force(case):
    q = quote.quote(case.catalog, "p", "api", "10", at=parse_time(case.at))
    assert (q["version"], q["amount_exact"]) == (case.expected, str(10 * case.expected))


def test_quote_mid_month_next_period_uses_the_invoice_version():
    """The reproduction from the issue: v2 from 2026-06-15 with apply: next_period prices June at v1."""
    (case,) = [c for c in VERSION_CASES if c.name == "next_period mid-month waits for the next period"]
    q = quote.quote(case.catalog, "p", "api", "10", at=parse_time("2026-06-20T00:00:00Z"))
    assert (q["version"], q["amount"]) == (1, "10.00")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_quote_agrees_with_the_invoice_line(case):
    """Each usage line of each invoice vector: quoting its quantity anywhere inside its segment
    gives the line's plan version and exact amount."""
    (sub,) = [s for s in CATALOG.subscriptions if s.customer == case.customer]
    start, end = month_bounds(PERIOD)
    segments = plans.segments(CATALOG.plan_versions(sub.plan), sub, start, end)
    for line in plans.invoice_lines(CATALOG, sub, Period(start, end, PERIOD), case.events):
        if line.type != "usage":
            continue
        seg = next(s for s in segments if s.start == line.segment_start)
        filters = dict(kv.split("=", 1) for kv in line.filter.split(",")) if line.filter else {}
        for at in (seg.start, seg.start + (seg.end - seg.start) / 2, seg.end - timedelta(milliseconds=1)):
            q = quote.quote(CATALOG, sub.plan, line.meter, str(line.quantity), at=at, filters=filters)
            assert (q["version"], q["amount_exact"]) == (seg.plan.version, quote._plain(line.amount_exact)), at

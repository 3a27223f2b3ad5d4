"""The invoice vectors through the Python rater (plans.py + pricing.py)."""

from __future__ import annotations

import pytest

from tallyflow.core import plans, pricing
from tallyflow.core.periods import Period, month_bounds
from tests.vector_cases import load, norm

PERIOD, CATALOG, CASES = load()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_python_rater(case):
    start, end = month_bounds(PERIOD)
    (sub,) = [s for s in CATALOG.subscriptions if s.customer == case.customer]
    lines = plans.invoice_lines(CATALOG, sub, Period(start, end, PERIOD), case.events)
    minor = CATALOG.plan_versions(sub.plan)[0].minor_units
    got = [
        (x.type, x.meter, x.filter, norm(x.quantity), norm(x.amount_exact), str(pricing.round_money(x.amount, minor)))
        for x in lines
    ]
    assert got == case.expected_lines
    assert str(pricing.round_money(sum(x.amount for x in lines), minor)) == case.expected_total

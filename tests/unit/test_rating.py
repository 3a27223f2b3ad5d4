"""Which windows reach the rating operator: the JVM filter (rated_meters) drops only windows the
rater would rate to nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tallyflow.core import catalog
from tallyflow.core.rating import Rater, rated_meters
from tallyflow.tools.generator import DEMO_CATALOG


def test_the_windows_filtered_out_would_rate_to_nothing():
    demo = catalog.load(str(DEMO_CATALOG))
    pairs = rated_meters(demo)
    rater = Rater(demo)
    rated = 0
    for customer in demo.customers:
        for meter in demo.meters:
            for day in range(0, 330, 11):  # across the year's plan versions and months
                start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day, hours=day % 24)
                group = '{"model": "m-large"}' if meter.group_by else "{}"
                records = rater.rate(
                    {}, customer, meter.id, group, start, start + timedelta(hours=1), Decimal(5), Decimal(5)
                )
                assert not records or (customer, meter.id) in pairs, (customer, meter.id, start)
                rated += bool(records)
    assert rated and len(pairs) < len(demo.customers) * len(demo.meters)  # the filter does drop some


def test_plan_at_is_the_same_with_its_month_cache():
    demo = catalog.load(str(DEMO_CATALOG))
    cached = Rater(demo)
    for customer in demo.customers:
        for hours in range(0, 24 * 365, 97):
            t = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=hours)
            assert cached.plan_at(customer, t) == Rater(demo).plan_at(customer, t), (customer, t)


def test_positions_restart_at_the_customers_own_period_start():
    """cust_004 is billed from the 15th: a window on 14 October ends its period (Sep 15 - Oct 15),
    one on 15 October starts the next at position 0; the calendar month changes nothing."""
    demo = catalog.load(str(DEMO_CATALOG))
    rater, positions = Rater(demo), {}
    hour = timedelta(hours=1)

    def rate(t: datetime):
        (record,) = rater.rate(positions, "cust_004", "api_calls", "{}", t, t + hour, Decimal(10), Decimal(10))
        return record.period, record.position, record.amount

    assert rate(datetime(2026, 9, 30, 12, tzinfo=UTC)) == ("2026-09-15", "10", "0.02")
    assert rate(datetime(2026, 10, 14, 23, tzinfo=UTC)) == ("2026-09-15", "20", "0.02")  # across the month
    assert rate(datetime(2026, 10, 15, tzinfo=UTC)) == ("2026-10-15", "10", "0.02")  # its own period starts
    # Positions of periods long past are let go of, so one key's state stays small.
    rate(datetime(2027, 12, 1, tzinfo=UTC))
    assert all(key.split("|")[1] >= "2026-11" for key in positions)

"""Plan versions and invoice-level rules (docs/catalog.md): which version is in force, the
segments a period splits into, proration, minimum commitment, and the reference invoice in
Python (discounts and taxes then follow, core/totals.py). The invoice SQL
(sql/invoice/invoice_lines.sql, sql/ddl/001_version_in_force.sql) implements the same;
tests/vectors/ holds both to identical answers. Charge pricing itself is pricing.py, meter
aggregation aggregations.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal, localcontext

from tallyflow.core import aggregations, pricing
from tallyflow.core.catalog import Catalog, Plan, Subscription
from tallyflow.core.periods import Period

ZERO = Decimal(0)
SHARE_SCALE = Decimal(1).scaleb(-24)  # the SQL's Decimal256 scale for shares and prorated fees
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Segment:
    start: datetime
    end: datetime
    plan: Plan


@dataclass(frozen=True)
class Line:
    type: str  # base_fee | usage | minimum_commitment
    segment_start: datetime
    meter: str = ""
    filter: str = ""
    model: str = ""
    quantity: Decimal = ZERO
    amount_exact: Decimal = ZERO
    amount: Decimal = ZERO
    override: bool = False  # priced with the subscription's overrides


def version_in_force(versions: list[Plan], period_start: datetime, at: datetime) -> Plan:
    """The highest version effective at the period start, or an `immediately` one effective by `at`.
    A plan whose first version starts inside the period uses that first version."""
    candidates = [
        v for v in versions if v.effective_from <= period_start or (v.apply == "immediately" and v.effective_from <= at)
    ]
    if not candidates:
        return min(versions, key=lambda v: v.version)
    return max(candidates, key=lambda v: v.version)


def segments(versions: list[Plan], sub: Subscription, period_start: datetime, period_end: datetime) -> list[Segment]:
    start = max(sub.start, period_start)
    end = min(sub.end or period_end, period_end)
    if start >= end:
        return []
    cuts = sorted(
        {start} | {v.effective_from for v in versions if v.apply == "immediately" and start < v.effective_from < end}
    )
    out = []
    for i, cut in enumerate(cuts):
        seg_end = cuts[i + 1] if i + 1 < len(cuts) else end
        out.append(Segment(cut, seg_end, version_in_force(versions, period_start, cut)))
    return out


def share(seg: Segment, period_start: datetime, period_end: datetime) -> Decimal:
    """The segment's share of the period's milliseconds, truncated to 24 places like the SQL."""
    seg_ms = (seg.end - seg.start) // _MS
    period_ms = (period_end - period_start) // _MS
    with localcontext() as ctx:
        ctx.prec = 80
        return (Decimal(seg_ms) / Decimal(period_ms)).quantize(SHARE_SCALE, rounding=ROUND_DOWN)


def _prorate(amount: Decimal, s: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 80
        return (amount * s).quantize(SHARE_SCALE, rounding=ROUND_DOWN)


def invoice_lines(catalog: Catalog, sub: Subscription, period: Period, events: list[dict]) -> list[Line]:
    """Every line of one subscription's invoice for one of its periods, before discounts and
    taxes; `events` carry datetime event_time (a time_weighted meter also reads earlier ones)."""
    lines: list[Line] = []
    own = [e for e in events if e["customer_id"] == sub.customer]
    for seg in segments(catalog.versions_for(sub), sub, period.start, period.end):
        plan = seg.plan
        s = share(seg, period.start, period.end)
        seg_events = [e for e in own if seg.start <= e["event_time"] < seg.end]
        seg_lines: list[Line] = []
        if plan.base_fee > 0:
            exact = _prorate(plan.base_fee, s)
            seg_lines.append(
                Line(
                    "base_fee",
                    seg.start,
                    quantity=s,
                    amount_exact=exact,
                    amount=pricing.round_money(exact, plan.minor_units),
                    override="base_fee" in plan.overridden,
                )
            )
        for charge in plan.charges:
            meter = catalog.meter(charge.meter)
            if aggregations.of(meter).period_rule == "time_weighted":
                q = aggregations.period_quantity(meter, charge, own, seg.start, seg.end)
            else:
                q = aggregations.period_quantity(meter, charge, seg_events)
            exact = pricing.price(charge, q).amount_exact
            seg_lines.append(
                Line(
                    "usage",
                    seg.start,
                    charge.meter,
                    charge.filter_text,
                    charge.model,
                    q,
                    exact,
                    pricing.round_money(exact, plan.minor_units),
                    charge.override,
                )
            )
        if plan.minimum_commitment is not None:
            minimum_exact = _prorate(plan.minimum_commitment, s)
            minimum = pricing.round_money(minimum_exact, plan.minor_units)
            subtotal = sum((line.amount for line in seg_lines), ZERO)
            if minimum > subtotal:
                seg_lines.append(
                    Line(
                        "minimum_commitment",
                        seg.start,
                        quantity=s,
                        amount_exact=minimum_exact - subtotal,
                        amount=minimum - subtotal,
                        override="minimum_commitment" in plan.overridden,
                    )
                )
        lines += seg_lines
    return lines

"""Discounts and taxes (docs/catalog.md, Coupons and Taxes): what follows an invoice's priced
lines. The one home of these rules: the reference invoice (core/plans.py) and the invoice the
SQL prices (billing/invoice.py) both end here, and tests/vectors/contracts.json holds both to
the same answers.

Order on one invoice, each step rounded half-up to the currency's minor units once: lines ->
minimum commitment true-up (plans.py, the SQL) -> discounts -> taxes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from tallyflow.core import pricing
from tallyflow.core.catalog_contracts import first_period_index
from tallyflow.core.model import Catalog, Coupon, Subscription
from tallyflow.core.periods import Period, period_index

ZERO = Decimal(0)
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Adjustment:
    type: str  # discount | tax
    ref: str  # the coupon's or the tax's id
    name: str
    applies_to: tuple[str, ...]  # a discount's meters; () = every line
    base: Decimal  # the amount it was taken from
    amount: Decimal  # negative for a discount


def active_coupons(catalog: Catalog, sub: Subscription, period: Period) -> list[Coupon]:
    """The subscription's coupons that apply to the period, in the order the subscription lists
    them: from the first period that starts at or after the coupon's start, for one period
    (once), `periods` periods (repeating) or every one (forever)."""
    length = catalog.billing_period(sub.plan)
    k = period_index(period.start, length, sub.billing_anchor)
    out = []
    for use in sub.coupons:
        coupon = catalog.coupon(use.coupon)
        first = first_period_index(use, length, sub.billing_anchor)
        if k >= first and (coupon.span is None or k < first + coupon.span):
            out.append(coupon)
    return out


def adjustments(
    catalog: Catalog, sub: Subscription, period: Period, lines: Iterable[tuple[str, Decimal]], minor_units: int
) -> list[Adjustment]:
    """The discount and tax lines of one invoice from its own priced lines, as (meter or '',
    rounded amount): the base fee, usage, credits and the minimum true-up; corrections of earlier
    periods carry those periods' own discounts and taxes."""
    lines = list(lines)
    left = sum((amount for _, amount in lines), ZERO)
    out = []
    for coupon in active_coupons(catalog, sub, period):
        if coupon.applies_to:
            base = min(left, sum((a for meter, a in lines if meter in coupon.applies_to), ZERO))
        else:
            base = left
        if coupon.percent_off is not None:
            taken = pricing.round_money(base * coupon.percent_off / HUNDRED, minor_units)
        else:
            taken = coupon.amount_off or ZERO
        taken = max(ZERO, min(taken, base, left))  # an invoice never goes below zero
        left -= taken
        out.append(Adjustment("discount", coupon.id, coupon.id, coupon.applies_to, base, -taken))
    for tax in catalog.taxes_of(sub.customer):
        out.append(Adjustment("tax", tax.id, tax.name, (), left, pricing.round_money(tax.rate * left, minor_units)))
    return out

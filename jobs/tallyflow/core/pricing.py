"""The one Python implementation of the pricing rules in docs/catalog.md.

Exact Decimal arithmetic; rounding happens only in `round_money`, once per invoice line. The
invoice SQL (sql/invoice/) implements the same rules; tests/vectors/ checks both.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from tallyflow.core.catalog import Charge

ZERO = Decimal(0)


@dataclass(frozen=True)
class BreakdownRow:
    """One tier or step (or the single row of per_unit and package) of a priced quantity."""

    index: int
    lower: Decimal
    upper: Decimal | None
    units: Decimal
    unit_price: Decimal
    flat_fee: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Priced:
    quantity: Decimal  # U, the metered quantity
    billable: Decimal  # B = max(0, U - included_units)
    amount_exact: Decimal
    breakdown: tuple[BreakdownRow, ...]


def round_money(amount: Decimal, minor_units: int) -> Decimal:
    """Half-up (away from zero for the non-negative amounts billed here) to the minor units."""
    return amount.quantize(Decimal(1).scaleb(-minor_units), rounding=ROUND_HALF_UP)


def billable(charge: Charge, quantity: Decimal) -> Decimal:
    return max(ZERO, quantity - charge.included_units)


def _containing(bounds: list[Decimal | None], b: Decimal) -> int:
    """Index of the tier or step whose (lower, up_to] contains b; the first one for b = 0."""
    for i, up in enumerate(bounds):
        if up is None or b <= up:
            return i
    return len(bounds) - 1


def price(charge: Charge, quantity: Decimal) -> Priced:
    b = billable(charge, quantity)
    rows: list[BreakdownRow] = []
    if charge.model == "per_unit":
        assert charge.unit_price is not None
        rows.append(BreakdownRow(0, ZERO, None, b, charge.unit_price, ZERO, b * charge.unit_price))
    elif charge.model == "graduated":
        lower = ZERO
        for i, tier in enumerate(charge.tiers):
            upper = tier.up_to
            units = max(ZERO, (b if upper is None else min(b, upper)) - lower)
            reached = i == 0 or units > 0  # the first tier is always reached (Stripe, Lago)
            flat = tier.flat_fee if reached else ZERO
            if reached:
                rows.append(BreakdownRow(i, lower, upper, units, tier.unit_price, flat, units * tier.unit_price + flat))
            if upper is None or b <= upper:
                break
            lower = upper
    elif charge.model == "volume":
        i = _containing([t.up_to for t in charge.tiers], b)
        tier = charge.tiers[i]
        low = charge.tiers[i - 1].up_to if i else ZERO
        assert low is not None
        rows.append(
            BreakdownRow(i, low, tier.up_to, b, tier.unit_price, tier.flat_fee, b * tier.unit_price + tier.flat_fee)
        )
    elif charge.model == "package":
        assert charge.package_size is not None and charge.package_price is not None
        packages = (b / charge.package_size).to_integral_value(rounding=ROUND_CEILING)
        rows.append(BreakdownRow(0, ZERO, None, packages, charge.package_price, ZERO, packages * charge.package_price))
    elif charge.model == "staircase":
        i = _containing([s.up_to for s in charge.steps], b)
        step = charge.steps[i]
        low = charge.steps[i - 1].up_to if i else ZERO
        assert low is not None
        rows.append(BreakdownRow(i, low, step.up_to, b, ZERO, step.price, step.price))
    else:  # the catalog loader admits no other model
        raise ValueError(f"unknown pricing model {charge.model}")
    return Priced(quantity, b, sum((r.amount for r in rows), ZERO), tuple(rows))

"""`tallyflow quote`: price a quantity under a plan, with the tier-by-tier breakdown.

Uses pricing.py, the same rules the invoice SQL implements (checked by tests/vectors/).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from tallyflow.core import plans, pricing
from tallyflow.core.catalog import Catalog, Charge, Plan, Subscription
from tallyflow.core.periods import parse_decimal, period_at, plain, shown
from tallyflow.errors import UserError


def _plain(d: Decimal | None) -> str | None:
    return None if d is None else plain(d)


def plan_at(catalog: Catalog, plan_id: str, at: datetime, sub: Subscription | None = None) -> Plan:
    """The version that prices usage at `at`: the invoice's rule (plans.version_in_force) for
    the billing period that contains `at` (the subscription's own, when quoting for a customer,
    with its overrides), so a quote and the invoice never disagree."""
    versions = catalog.versions_for(sub) if sub is not None else catalog.plan_versions(plan_id)
    if not versions:
        known = ", ".join(sorted({p.id for p in catalog.plans}))
        raise UserError(f"no plan '{plan_id}' in the catalog (plans: {known})")
    if at < versions[0].effective_from:
        raise UserError(
            f"plan {plan_id} has no version effective at {at.isoformat()} "
            f"(the first starts {versions[0].effective_from.isoformat()})"
        )
    period = period_at(at, versions[0].billing_period, sub.billing_anchor if sub is not None else None)
    return plans.version_in_force(versions, period.start, at)


def subscription_at(catalog: Catalog, customer: str, at: datetime) -> Subscription:
    """The customer's subscription in force at `at`."""
    subs = [s for s in catalog.subscriptions if s.customer == customer]
    if not subs:
        raise UserError(f"no subscription of customer '{shown(customer)}' in the catalog")
    for s in subs:
        if s.start <= at and (s.end is None or at < s.end):
            return s
    raise UserError(f"customer {customer} has no subscription in force at {at.isoformat()}")


def pick_charge(plan: Plan, meter: str, filters: dict[str, str]) -> Charge:
    charges = [c for c in plan.charges if c.meter == meter]
    if not charges:
        if plan.credits and meter in dict(plan.credits.rates):
            raise UserError(f"{plan.label}: meter {meter} is credit-priced (no usage charge to quote)")
        raise UserError(
            f"{plan.label} has no charge on meter {meter} "
            f"(charged meters: {', '.join(sorted({c.meter for c in plan.charges})) or 'none'})"
        )
    matching = [c for c in charges if all(filters.get(k) == v for k, v in c.filter)]
    if filters:
        matching = [c for c in matching if dict(c.filter) == filters] or matching
    if len(matching) != 1:
        options = "; ".join("--filter " + ",".join(f"{k}={v}" for k, v in c.filter) for c in charges if c.filter)
        raise UserError(f"{plan.label} prices meter {meter} in slices; choose one with {options}")
    return matching[0]


def quote(
    catalog: Catalog,
    plan_id: str | None,
    meter: str,
    quantity: str,
    at: datetime | None = None,
    filters: dict[str, str] | None = None,
    *,
    customer: str | None = None,
) -> dict:
    """Prices `quantity` of `meter` under a plan's list prices, or under a customer's
    subscription with its overrides (`customer`)."""
    try:
        q = parse_decimal(quantity.strip())
    except InvalidOperation:
        raise UserError(f"--quantity '{shown(quantity)}' is not a decimal (ASCII digits)") from None
    if not q.is_finite() or q < 0:
        raise UserError(f"--quantity must be a finite, non-negative decimal (got {quantity})")
    at = at or datetime.now(UTC)
    sub = subscription_at(catalog, customer, at) if customer else None
    plan = plan_at(catalog, sub.plan if sub is not None else str(plan_id), at, sub)
    charge = pick_charge(plan, meter, filters or {})
    priced = pricing.price(charge, q)
    return {
        **({"customer": customer} if customer else {}),
        "plan": plan.id,
        "version": plan.version,
        "meter": meter,
        "filter": dict(charge.filter) or None,
        "model": charge.model,
        "quantity": _plain(q),
        "included_units": _plain(charge.included_units),
        "billable": _plain(priced.billable),
        "currency": plan.currency,
        "amount_exact": _plain(priced.amount_exact),
        "amount": str(pricing.round_money(priced.amount_exact, plan.minor_units)),
        "override": charge.override,
        "breakdown": [_row(charge, r) for r in priced.breakdown],
    }


def _row(charge: Charge, r: pricing.BreakdownRow) -> dict:
    if charge.model == "package":
        return {
            "packages": _plain(r.units),
            "package_size": _plain(charge.package_size),
            "package_price": _plain(r.unit_price),
            "amount": _plain(r.amount),
        }
    kind = "step" if charge.model == "staircase" else "tier"
    row = {kind: r.index + 1, "from": _plain(r.lower), "up_to": _plain(r.upper), "units": _plain(r.units)}
    if charge.model == "staircase":
        return {**row, "price": _plain(r.flat_fee), "amount": _plain(r.amount)}
    return {**row, "unit_price": _plain(r.unit_price), "flat_fee": _plain(r.flat_fee), "amount": _plain(r.amount)}


def render(q: dict) -> str:
    head = (
        (f"{q['customer']}: " if q.get("customer") else "")
        + f"{q['plan']} v{q['version']}  {q['meter']}"
        + (" {" + ",".join(f"{k}={v}" for k, v in q["filter"].items()) + "}" if q["filter"] else "")
        + f"  ({q['model']}{', override' if q['override'] else ''})  quantity {q['quantity']}, "
        f"included {q['included_units']}, billable {q['billable']}"
    )
    rows = []
    for r in q["breakdown"]:
        if "packages" in r:
            rows.append(f"  {r['packages']} packages of {r['package_size']} x {r['package_price']} = {r['amount']}")
        elif "step" in r:
            rows.append(f"  step {r['step']} ({r['from']}, {r['up_to'] or 'inf'}]: {r['price']}")
        else:
            rows.append(
                f"  tier {r['tier']} ({r['from']}, {r['up_to'] or 'inf'}]: {r['units']} x {r['unit_price']}"
                f" + {r['flat_fee']} = {r['amount']}"
            )
    rows.append(f"  amount {q['amount']} {q['currency']} (exact {q['amount_exact']})")
    return "\n".join([head, *rows])

"""A customer's usage of a period so far, with the projected end-of-period cost (the API's usage view).

The figures are the draft invoice's (sql/invoice/invoice_lines.sql prices them, as `tallyflow
invoice` does): per charge, the quantity so far, the included units used, the billable quantity and
the cost so far. The projection carries the run rate so far to the end of the period:

    elapsed  = now - period start (the whole period once it has ended)
    factor   = period length / elapsed
    projected quantity = quantity x factor        (count and sum meters: they grow with time)
                       = quantity                 (max, unique_count, latest, p95, p99: they do not)
    projected cost     = the charge's price of the projected quantity (tiers, packages and
                         included units apply as on the invoice), rounded like the invoice line
    base fee: as billed; credits lines: their amount x factor; the minimum commitment is applied
    to the projected total.

So a tiered charge's projection is priced, not extrapolated: a customer about to leave the free
tier sees the cost of the tier they are heading into.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tallyflow.billing import invoice, invoice_model
from tallyflow.core import aggregations, pricing
from tallyflow.core.model import Catalog, Charge, Plan
from tallyflow.core.periods import Period, at_instant, iso_utc, parse_period, plain

ZERO = Decimal(0)


def run_rate_factor(period: Period, now: datetime) -> Decimal:
    start, end = period.start, period.end
    if now >= end:
        return Decimal(1)
    elapsed = max((now - start).total_seconds(), 1.0)  # the first second of a period
    return Decimal(str((end - start).total_seconds())) / Decimal(str(elapsed))


def _plan(catalog: Catalog, customer: str, plan_id: str, version: int) -> Plan | None:
    """The version a line was priced with: the customer's own (with its overrides)."""
    for sub in catalog.subscriptions:
        if sub.customer == customer and sub.plan == plan_id:
            found = next((p for p in catalog.versions_for(sub) if p.version == version), None)
            if found is not None:
                return found
    return next((p for p in catalog.plans if p.id == plan_id and p.version == version), None)


def _charge(plan: Plan | None, meter: str, filter_text: str) -> Charge | None:
    if plan is None:
        return None
    return next((c for c in plan.charges if c.meter == meter and c.filter_text == filter_text), None)


def report(client, catalog: Catalog, customer: str, period: str | None, now: datetime | None = None) -> dict:
    """The usage view of one customer and period (a name; None: the customer's own period that
    holds now); every amount a decimal string."""
    now = now or datetime.now(UTC)
    found = invoice.compute(client, parse_period(period) if period else at_instant(now), customer=customer)
    doc: dict = {
        "customer": customer,
        "period": period or None,
        "period_start": None,
        "period_end": None,
        "as_of": iso_utc(now),
        "elapsed_fraction": "0",
        "status": "none",
        "currency": None,
        "meters": [],
        "cost_so_far": "0",
        "projected_cost": "0",
    }
    if not found:
        return doc
    inv = found[0]
    factor = run_rate_factor(inv.period, now)
    doc.update(inv.period.as_dict(), elapsed_fraction=plain(Decimal(1) / factor))
    mu = inv.minor_units
    doc.update(status=inv.status, currency=inv.currency)
    projected = ZERO
    for line in inv.lines:
        if line.type == "minimum_commitment":
            continue
        amount = Decimal(line.amount)
        plan = _plan(catalog, customer, line.plan, line.version)
        if line.type == "usage":
            charge = _charge(plan, line.meter, line.filter)
            meter = catalog.meters_by_id.get(line.meter)
            grows = meter is not None and aggregations.of(meter).additive
            q_proj = line.quantity * factor if grows else line.quantity
            p_amount = (
                pricing.round_money(pricing.price(charge, q_proj).amount_exact, mu) if charge is not None else amount
            )
            projected += p_amount
            included = charge.included_units if charge is not None else ZERO
            doc["meters"].append(
                {
                    "meter": line.meter,
                    "filter": line.filter or None,
                    "model": line.model,
                    "quantity": plain(line.quantity),
                    "included_units": plain(included),
                    "included_used": plain(min(line.quantity, included)),
                    "billable": plain(line.billable),
                    "cost_so_far": str(invoice_model.round_display(amount, mu)),
                    "projected_quantity": plain(q_proj.quantize(Decimal("0.000001")) if grows else q_proj),
                    "projected_cost": str(invoice_model.round_display(p_amount, mu)),
                    "segment": {"start": line.segment[0], "end": line.segment[1]},
                }
            )
        elif line.type == "credits":
            projected += pricing.round_money(amount * factor, mu)
        else:  # base fee, corrections of earlier periods: as billed
            projected += amount
    plan = _plan(catalog, customer, inv.plan, inv.version)
    if plan is not None and plan.minimum_commitment is not None:
        projected = max(projected, plan.minimum_commitment)
    doc["cost_so_far"] = str(invoice_model.round_display(inv.total, mu))  # the draft invoice's total
    doc["projected_cost"] = str(invoice_model.round_display(projected, mu))
    return doc

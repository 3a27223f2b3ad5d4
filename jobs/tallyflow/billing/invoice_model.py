"""The invoice as a document: its lines (with their tier breakdowns), its sums, and the JSON both
`tallyflow invoice` and the API answer with (docs/api.md). billing/invoice.py fills them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from tallyflow.core.periods import Period, plain

ZERO = Decimal(0)


def round_display(d: Decimal, minor_units: int) -> Decimal:
    """Shows an amount with the currency's minor units. The SQL already rounded it (half-up), so
    this never changes its value; it only fixes the number of decimal places."""
    return Decimal(d).quantize(Decimal(1).scaleb(-minor_units))


def _money(d: Decimal, minor_units: int) -> str:
    return str(round_display(d, minor_units))


class BreakdownRow(NamedTuple):
    """One row behind a line's amount, as sql/invoice/invoice_lines.sql returns it: a tier, step
    or package count; for the credits line, one part (1 covered, 2 uncovered) of one meter."""

    number: int  # the tier or step (from 1); for the credits line, 1 covered, 2 uncovered
    meter: str
    units: Decimal
    unit_price: Decimal  # credits lines: the credits of the part
    flat_fee: Decimal  # credits lines: the price of one credit
    amount: Decimal


@dataclass
class Line:
    type: str  # base_fee | usage | credits | minimum_commitment | discount | tax | correction
    meter: str
    filter: str
    model: str
    quantity: Decimal
    billable: Decimal
    amount_exact: Decimal
    amount: Decimal
    minor_units: int
    segment: tuple[str, str]
    plan: str = ""
    version: int = 0
    corrects_period: str = ""
    corrects_type: str = ""
    breakdown: list[BreakdownRow] = field(default_factory=list)
    override: bool = False
    ref: str = ""  # a discount's coupon, a tax's id
    name: str = ""  # a tax's name
    applies_to: tuple[str, ...] = ()  # a discount's meters (() = every line)
    period: Period | None = None  # the period the line bills (a correction: the one it corrects)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.corrects_type or self.type, self.meter, self.filter, self.ref, self.segment[0])

    def as_dict(self) -> dict:
        d: dict[str, Any] = {
            "type": self.type,
            "meter": self.meter or None,
            "filter": self.filter or None,
            "model": self.model or None,
            "quantity": plain(self.quantity),
            "billable": plain(self.billable),
            "amount_exact": plain(self.amount_exact),
            "amount": _money(self.amount, self.minor_units),
            "plan": self.plan or None,
            "version": self.version or None,
            "segment": {"start": self.segment[0], "end": self.segment[1]},
            "override": self.override,
        }
        if self.period is not None:
            d["period_start"], d["period_end"] = self.period.texts
        if self.ref:
            d["coupon" if (self.corrects_type or self.type) == "discount" else "tax"] = self.ref
        if self.type == "discount":
            d["applies_to"] = list(self.applies_to) or "all"
        if self.name:
            d["name"] = self.name
        if self.type == "correction":
            d["corrects"] = {"period": self.corrects_period, "type": self.corrects_type}
            if self.period is not None:
                d["corrects"] |= {"period_start": d["period_start"], "period_end": d["period_end"]}
        if self.breakdown:
            kind = {"staircase": "step", "package": "packages", "credits": "credits"}.get(self.model, "tier")
            d["breakdown"] = [_breakdown_row(kind, row) for row in self.breakdown]
        return d


def _breakdown_row(kind: str, r: BreakdownRow) -> dict:
    if kind == "credits":  # covered by grants (free here) or uncovered (overage, or not billed on pause)
        return {
            "meter": r.meter,
            "part": "covered" if r.number == 1 else "uncovered",
            "units": plain(r.units),
            "credits": plain(r.unit_price),
            "price_per_credit": plain(r.flat_fee),
            "amount": plain(r.amount),
        }
    if kind == "packages":
        return {"packages": plain(r.units), "package_price": plain(r.unit_price), "amount": plain(r.amount)}
    if kind == "step":
        return {"step": int(r.number), "units": plain(r.units), "price": plain(r.flat_fee), "amount": plain(r.amount)}
    return {
        kind: int(r.number),
        "units": plain(r.units),
        "unit_price": plain(r.unit_price),
        "flat_fee": plain(r.flat_fee),
        "amount": plain(r.amount),
    }


DISCOUNT_TYPES = ("discount",)
TAX_TYPES = ("tax",)


@dataclass
class Invoice:
    customer: str
    period: Period
    plan: str
    version: int
    currency: str
    minor_units: int
    total: Decimal
    lines: list[Line] = field(default_factory=list)
    status: str = "draft"
    finalized_at: str | None = None
    document: dict | None = None  # the stored document of a finalized invoice
    finalized_now: bool = False  # finalized by this call (not stored before)

    def sums(self) -> dict[str, Decimal]:
        """subtotal (every line but discounts and taxes), discount_total (a positive amount),
        tax_total and total = subtotal - discount_total + tax_total, corrections in their kind."""
        out = {"subtotal": ZERO, "discount_total": ZERO, "tax_total": ZERO}
        for line in self.lines:
            kind = line.corrects_type or line.type
            if kind in DISCOUNT_TYPES:
                out["discount_total"] -= line.amount
            elif kind in TAX_TYPES:
                out["tax_total"] += line.amount
            else:
                out["subtotal"] += line.amount
        out["total"] = out["subtotal"] - out["discount_total"] + out["tax_total"]
        return out

    def as_dict(self) -> dict:
        if self.document is not None:
            return self.document
        return {
            "customer": self.customer,
            **self.period.as_dict(),
            "status": self.status,
            "finalized_at": self.finalized_at,
            "plan": self.plan,
            "version": self.version,
            "currency": self.currency,
            "lines": [line.as_dict() for line in self.lines],
            **{k: _money(v, self.minor_units) for k, v in self.sums().items()},
        }


def naive(t: datetime) -> datetime:
    """Invoices are keyed by (customer, period start) in naive UTC, as the store returns times."""
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t

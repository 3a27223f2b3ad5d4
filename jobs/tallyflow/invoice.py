"""Invoices: run sql/invoice/invoice_lines.sql for a period and shape the rows.

All pricing and rounding happen in the SQL; this module only groups lines per customer and
formats decimals to the currency's minor units (the SQL already rounded them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from clickhouse_connect.driver.client import Client

from tallyflow import clickhouse
from tallyflow.generator import month_bounds


def round_display(d: Decimal, minor_units: int) -> Decimal:
    """Shows an amount with the currency's minor units. The SQL already rounded it (half-up), so
    this never changes its value; it only fixes the number of decimal places."""
    return Decimal(d).quantize(Decimal(1).scaleb(-minor_units))


def _money(d: Decimal, minor_units: int) -> str:
    return str(round_display(d, minor_units))


def _qty(d: Decimal) -> str:
    text = format(Decimal(d).normalize(), "f")
    return text


@dataclass
class Line:
    type: str
    meter: str
    filter: str
    model: str
    quantity: Decimal
    billable: Decimal
    amount_exact: Decimal
    amount: Decimal
    minor_units: int
    segment: tuple[str, str]

    def as_dict(self) -> dict:
        return {
            "type": self.type,
            "meter": self.meter or None,
            "filter": self.filter or None,
            "model": self.model or None,
            "quantity": _qty(self.quantity),
            "billable": _qty(self.billable),
            "amount_exact": _qty(self.amount_exact),
            "amount": _money(self.amount, self.minor_units),
            "segment": {"start": self.segment[0], "end": self.segment[1]},
        }


@dataclass
class Invoice:
    customer: str
    period: str
    plan: str
    version: int
    currency: str
    minor_units: int
    total: Decimal
    lines: list[Line] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "customer": self.customer,
            "period": self.period,
            "plan": self.plan,
            "version": self.version,
            "currency": self.currency,
            "lines": [line.as_dict() for line in self.lines],
            "total": _money(self.total, self.minor_units),
        }


def _iso(t) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def compute(client: Client, period: str, *, customer: str | None = None) -> list[Invoice]:
    start, end = month_bounds(period)
    rows = clickhouse.query(client, "invoice/invoice_lines",
                            {"period_start": start.replace(tzinfo=None), "period_end": end.replace(tzinfo=None),
                             "customer": customer or ""})
    invoices: dict[str, Invoice] = {}
    for r in rows:
        inv = invoices.get(r["customer_id"])
        if inv is None:
            inv = invoices[r["customer_id"]] = Invoice(
                r["customer_id"], period, r["plan_id"], r["version"], r["currency"], r["minor_units"], r["total"])
        inv.lines.append(Line(r["line_type"], r["meter_id"], r["filter_text"], r["model"], r["quantity"],
                              r["billable"], r["amount_exact"], r["amount"], r["minor_units"],
                              (_iso(r["seg_start"]), _iso(r["seg_end"]))))
    return list(invoices.values())


def render_table(invoices: list[Invoice]) -> str:
    if not invoices:
        return "no invoices for this period (no subscription overlaps it)"
    out = []
    for inv in invoices:
        out.append(f"{inv.customer}  {inv.period}  plan {inv.plan} v{inv.version}  {inv.currency}")
        for line in inv.lines:
            label = {"base_fee": "base fee", "minimum_commitment": "minimum commitment true-up"}.get(line.type)
            if label is None:
                label = f"{line.meter}{'{' + line.filter + '}' if line.filter else ''} ({line.model})"
            qty = "" if line.type != "usage" else _qty(line.quantity)
            out.append(f"  {label:<44} {qty:>18} {_money(line.amount, line.minor_units):>14}")
        out.append(f"  {'total':<44} {'':>18} {_money(inv.total, inv.minor_units):>14}")
        out.append("")
    return "\n".join(out).rstrip()

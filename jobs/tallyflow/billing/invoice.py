"""Invoices: sql/invoice/invoice_lines.sql prices a period; this module assembles invoices,
finalizes them immutably, and adds corrections for usage that reached a finalized period late.

All pricing and rounding happen in the SQL. Here: grouping lines per customer, the difference
between a finalized period as billed and the same period recomputed now (a correction line on
the next invoice that names the original period), and storing finalized documents.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from clickhouse_connect.driver.client import Client

from tallyflow.billing.collector import collector_paused
from tallyflow.core import aggregations
from tallyflow.core.periods import iso_utc, month_bounds, plain
from tallyflow.errors import UserError
from tallyflow.land import clickhouse

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
    type: str  # base_fee | usage | credits | minimum_commitment | correction
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

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.corrects_type or self.type, self.meter, self.filter, self.segment[0])

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
        }
        if self.type == "correction":
            d["corrects"] = {"period": self.corrects_period, "type": self.corrects_type}
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
    status: str = "draft"
    finalized_at: str | None = None
    document: dict | None = None  # the stored document of a finalized invoice
    finalized_now: bool = False  # finalized by this call (not stored before)

    def as_dict(self) -> dict:
        if self.document is not None:
            return self.document
        return {
            "customer": self.customer,
            "period": self.period,
            "status": self.status,
            "finalized_at": self.finalized_at,
            "plan": self.plan,
            "version": self.version,
            "currency": self.currency,
            "lines": [line.as_dict() for line in self.lines],
            "total": _money(self.total, self.minor_units),
        }


def line_parameters(period: str, customer: str | None = None, digest: str = "") -> dict:
    """The parameters of sql/invoice/invoice_lines.sql: the period's bounds, the customer ('' =
    all), the catalog digest ('' = the one applied last) and the aggregation registry."""
    start, end = month_bounds(period)
    return {
        "period_start": start.replace(tzinfo=None),
        "period_end": end.replace(tzinfo=None),
        "customer": customer or "",
        "digest": digest,
        **aggregations.sql_parameters(),
    }


def _priced(
    client: Client,
    period: str,
    customer: str | None,
    digest: str = "",
    catalog_tables: dict[str, list[tuple]] | None = None,
) -> dict[str, Invoice]:
    """Draft invoices priced by sql/invoice/invoice_lines.sql; `catalog_tables` stand in for the
    stored catalog (shadow pricing)."""
    with collector_paused():
        rows = clickhouse.query(
            client,
            "invoice/invoice_lines",
            line_parameters(period, customer, digest),
            tables=catalog_tables,
            tuples=True,
        )
        invoices: dict[str, Invoice] = {}
        segments: dict[tuple[datetime, datetime], tuple[str, str]] = {}  # most lines share a few
        breakdown_row = BreakdownRow._make
        for r in rows:
            inv = invoices.get(r.customer_id)
            if inv is None:
                inv = invoices[r.customer_id] = Invoice(
                    r.customer_id, period, r.plan_id, r.version, r.currency, r.minor_units, r.total
                )
            segment = segments.get((r.seg_start, r.seg_end))
            if segment is None:
                segment = segments[r.seg_start, r.seg_end] = (iso_utc(r.seg_start), iso_utc(r.seg_end))
            inv.lines.append(
                Line(
                    type=r.line_type,
                    meter=r.meter_id,
                    filter=r.filter_text,
                    model=r.model,
                    quantity=r.quantity,
                    billable=r.billable,
                    amount_exact=r.amount_exact,
                    amount=r.amount,
                    minor_units=r.minor_units,
                    segment=segment,
                    plan=r.plan_id,
                    version=r.version,
                    breakdown=list(map(breakdown_row, r.breakdown)),
                )
            )
        return invoices


def _corrections(client: Client, period: str, customer: str | None) -> dict[str, list[tuple[Invoice | None, Line]]]:
    """Per customer: correction lines for every earlier finalized period whose recomputation now
    differs from what finalized invoices have billed for it so far."""
    billed: dict[tuple[str, str, str], dict[tuple, tuple[Decimal, Decimal]]] = defaultdict(dict)
    for r in clickhouse.query(client, "invoice/billed_lines", {"before": period, "customer": customer or ""}):
        key = (r["line_type"], r["meter_id"], r["filter_text"], r["segment_start"])
        billed[(r["billed_period"], r["digest"], r["customer_id"])][key] = (r["quantity"], r["amount"])
    out: dict[str, list[tuple[Invoice | None, Line]]] = defaultdict(list)
    by_period: dict[tuple[str, str], set[str]] = defaultdict(set)
    for billed_period, digest, cust in billed:
        by_period[(billed_period, digest)].add(cust)
    for (billed_period, digest), customers in sorted(by_period.items()):
        recomputed = _priced(client, billed_period, customer, digest)
        for cust in sorted(customers):
            now = recomputed.get(cust)
            was = billed[(billed_period, digest, cust)]
            current = {line.key: line for line in (now.lines if now else [])}
            for key in sorted(set(current) | set(was)):
                line = current.get(key)
                q_was, a_was = was.get(key, (ZERO, ZERO))
                q_now, a_now = (line.quantity, line.amount) if line else (ZERO, ZERO)
                if a_now != a_was or q_now != q_was:
                    minor = now.minor_units if now else 2
                    line_type, meter, filter_text, segment_start = key
                    out[cust].append(
                        (
                            now,
                            Line(
                                type="correction",
                                meter=meter,
                                filter=filter_text,
                                model=line.model if line else "",
                                quantity=q_now - q_was,
                                billable=q_now - q_was,
                                amount_exact=a_now - a_was,
                                amount=a_now - a_was,
                                minor_units=minor,
                                segment=(segment_start, line.segment[1] if line else segment_start),
                                plan=line.plan if line else "",
                                version=line.version if line else 0,
                                corrects_period=billed_period,
                                corrects_type=line_type,
                            ),
                        )
                    )
    return out


def priced_with(
    client: Client, period: str, digest: str, catalog_tables: dict[str, list[tuple]], customer: str | None = None
) -> list[Invoice]:
    """The period's invoices priced from the stored events with another catalog (its digest and
    its tables, standing in for the stored ones): drafts, without corrections; nothing is stored."""
    return [inv for _, inv in sorted(_priced(client, period, customer, digest, catalog_tables).items())]


def compute(client: Client, period: str, *, customer: str | None = None) -> list[Invoice]:
    """Every customer's invoice for the period: the finalized document if there is one, else a
    draft priced now, with corrections of earlier finalized periods."""
    month_bounds(period)  # validates the period
    finalized = {
        r["customer_id"]: r
        for r in clickhouse.query(client, "invoice/finalized_invoices", {"period": period, "customer": customer or ""})
    }
    drafts = _priced(client, period, customer)
    for cust, corrections in _corrections(client, period, customer).items():
        if cust in finalized:
            continue
        inv = drafts.get(cust)
        for source, line in corrections:
            if inv is None:  # no subscription this period, but an earlier one to correct
                inv = drafts[cust] = Invoice(
                    cust, period, line.plan, line.version, source.currency if source else "", line.minor_units, ZERO
                )
            inv.lines.append(line)
            inv.total += line.amount
    result = []
    for cust in sorted(set(drafts) | set(finalized)):
        if cust in finalized:
            doc = json.loads(finalized[cust]["document"])
            result.append(
                Invoice(
                    cust,
                    period,
                    doc["plan"],
                    doc["version"],
                    doc["currency"],
                    0,
                    ZERO,
                    status="finalized",
                    finalized_at=doc["finalized_at"],
                    document=doc,
                )
            )
        else:
            result.append(drafts[cust])
    return result


def finalize(client: Client, period: str, *, customer: str | None = None, now: datetime | None = None) -> list[Invoice]:
    """Stores the period's draft invoices immutably; already finalized ones are returned as stored."""
    now = now or datetime.now(UTC)
    _, end = month_bounds(period)
    if end > now:
        raise UserError(f"period {period} has not ended (it ends {end.isoformat()}); finalize it after that")
    digest = client.query("SELECT catalog_digest FROM catalog_in_force").result_rows[0][0]
    out = []
    for inv in compute(client, period, customer=customer):
        if inv.status == "draft":
            inv.status, inv.finalized_at = "finalized", iso_utc(now)
            doc = inv.as_dict()
            client.insert(
                "invoices_finalized", [[inv.customer, period, now, digest, inv.currency, inv.total, json.dumps(doc)]]
            )
            client.insert(
                "invoice_lines_finalized",
                [
                    [
                        inv.customer,
                        period,
                        now,
                        n,
                        line.corrects_period,
                        line.corrects_type or line.type,
                        line.meter,
                        line.filter,
                        line.segment[0],
                        line.quantity,
                        line.amount,
                    ]
                    for n, line in enumerate(inv.lines)
                ],
            )
            inv.document, inv.finalized_now = doc, True
        out.append(inv)
    return out


def due_periods(client: Client, settlement_window: timedelta, now: datetime) -> list[str]:
    """Periods with usage and a customer still on a draft whose settlement window has passed:
    late events are awaited for `settlement_window` after a period ends, then it is final."""
    return [
        r["period"]
        for r in clickhouse.query(client, "invoice/unsettled_periods")
        if r["period_end"].replace(tzinfo=UTC) + settlement_window <= now
    ]


def finalize_due(
    client: Client, settlement_window: timedelta, *, now: datetime | None = None, due_as_of: datetime | None = None
) -> dict[str, int]:
    """Finalizes every period due as of `due_as_of` (default: now; TALLYFLOW_SETTLEMENT_WINDOW);
    returns period -> invoices finalized now. Events that reach a finalized period later are
    corrections on the next invoice."""
    now = now or datetime.now(UTC)
    done = {}
    for period in due_periods(client, settlement_window, due_as_of or now):
        done[period] = sum(1 for i in finalize(client, period, now=now) if i.finalized_now)
    return done


def render_table(invoices: list[Invoice]) -> str:
    if not invoices:
        return "no invoices for this period (no subscription overlaps it)"
    out = []
    for inv in invoices:
        d = inv.as_dict()
        status = "finalized " + d["finalized_at"] if d["status"] == "finalized" else "draft"
        out.append(f"{d['customer']}  {d['period']}  plan {d['plan']} v{d['version']}  {d['currency']}  ({status})")
        for line in d["lines"]:
            label = {"base_fee": "base fee", "minimum_commitment": "minimum commitment true-up"}.get(line["type"])
            if line["type"] == "correction":
                what = line["meter"] or line["corrects"]["type"].replace("_", " ")
                label = f"correction of {line['corrects']['period']}: {what}"
            elif label is None:
                label = f"{line['meter']}{'{' + line['filter'] + '}' if line['filter'] else ''} ({line['model']})"
            qty = line["quantity"] if line["type"] in ("usage", "correction") and line["meter"] else ""
            if line["type"] == "credits":
                label = "prepaid credits"
                qty = f"{line['quantity']} credits" + (
                    f" ({line['billable']} uncovered)" if line["billable"] != "0" else ""
                )
            out.append(f"  {label:<44} {qty:>18} {line['amount']:>14}")
        out.append(f"  {'total':<44} {'':>18} {d['total']:>14}")
        out.append("")
    return "\n".join(out).rstrip()

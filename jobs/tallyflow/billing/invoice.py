"""Invoices: sql/invoice/invoice_lines.sql prices the periods a command selects; this module
assembles invoices, adds their discounts and taxes (core/totals.py), finalizes them immutably,
and adds corrections for usage that reached a finalized period late.

Pricing, proration and the minimum true-up happen in the SQL. Here: grouping lines per customer
and period, discounts and taxes, the difference between a finalized period as billed and the
same period recomputed now (a correction line on the next invoice that names the original
period), and storing finalized documents.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from clickhouse_connect.driver.client import Client

from tallyflow.billing import contract_terms
from tallyflow.billing import corrections as correct
from tallyflow.billing.collector import collector_paused
from tallyflow.billing.invoice_model import BreakdownRow, Invoice, Line, naive
from tallyflow.core import aggregations
from tallyflow.core.catalog import Catalog
from tallyflow.core.periods import Period, Selection, iso_utc, parse_period
from tallyflow.errors import UserError
from tallyflow.land import clickhouse

ZERO = Decimal(0)


def selection(period: str | Selection) -> Selection:
    """A command's period: a Selection, or a name (core/periods.parse_period)."""
    return parse_period(period) if isinstance(period, str) else period


def line_parameters(period: str | Selection, customer: str | None = None, digest: str = "") -> dict:
    """The parameters of sql/invoice/invoice_lines.sql: the selected periods, the customer ('' =
    all), the catalog digest ('' = the one applied last) and the aggregation registry."""
    return {
        **selection(period).sql,
        "customer": customer or "",
        "digest": digest,
        **aggregations.sql_parameters(),
    }


def _priced(
    client: Client,
    period: Selection,
    customer: str | None,
    digest: str = "",
    catalog_tables: dict[str, list[tuple]] | None = None,
    terms: Catalog | None = None,
) -> dict[tuple[str, datetime], Invoice]:
    """Draft invoices priced by sql/invoice/invoice_lines.sql, with their discounts and taxes
    (core/totals.py, from `terms` or the stored catalog); `catalog_tables` stand in for the stored
    catalog (shadow pricing). Keyed by (customer, period start)."""
    with collector_paused():
        rows = clickhouse.query(
            client,
            "invoice/invoice_lines",
            line_parameters(period, customer, digest),
            tables=catalog_tables,
            tuples=True,
        )
        invoices: dict[tuple[str, datetime], Invoice] = {}
        segments: dict[tuple[datetime, datetime], tuple[str, str]] = {}  # most lines share a few
        periods: dict[tuple[datetime, datetime, str], Period] = {}
        breakdown_row = BreakdownRow._make
        for r in rows:
            inv = invoices.get((r.customer_id, naive(r.period_start)))
            if inv is None:
                bounds = (r.period_start, r.period_end, r.period_name)
                billed = periods.get(bounds)
                if billed is None:
                    billed = periods[bounds] = Period(
                        r.period_start.replace(tzinfo=UTC), r.period_end.replace(tzinfo=UTC), r.period_name
                    )
                inv = invoices[r.customer_id, naive(r.period_start)] = Invoice(
                    r.customer_id, billed, r.plan_id, r.version, r.currency, r.minor_units, r.total
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
                    override=r.override,
                    period=inv.period,
                )
            )
        if invoices:
            found = terms or contract_terms.catalog_of(client, digest)
            if found is not None:
                contract_terms.add(found, invoices.values())
        return {key: invoices[key] for key in sorted(invoices)}


def priced_with(
    client: Client,
    period: str | Selection,
    terms: Catalog,
    catalog_tables: dict[str, list[tuple]],
    customer: str | None = None,
) -> list[Invoice]:
    """The period's invoices priced from the stored events with another catalog (`terms`, and its
    tables standing in for the stored ones): drafts, without corrections; nothing is stored."""
    return list(_priced(client, selection(period), customer, terms.digest, catalog_tables, terms).values())


def compute(client: Client, period: str | Selection, *, customer: str | None = None) -> list[Invoice]:
    """Every invoice of the selected periods (a name or a Selection): the finalized document if
    there is one, else a draft priced now, with corrections of earlier finalized periods."""
    chosen = selection(period)
    finalized = {
        (r["customer_id"], naive(r["period_start"])): r
        for r in clickhouse.query(
            client,
            "invoice/finalized_invoices",
            {**chosen.sql, "sel_name": chosen.name, "customer": customer or ""},
        )
    }
    drafts = _priced(client, chosen, customer)
    open_drafts = {key: inv for key, inv in drafts.items() if key not in finalized}
    for key, corrections in correct.earlier_periods(client, open_drafts, customer, _priced).items():
        inv = open_drafts[key]
        inv.lines += corrections
        inv.total += sum((line.amount for line in corrections), ZERO)
    result = []
    for key in sorted(set(drafts) | set(finalized)):
        if key in finalized:
            row = finalized[key]
            doc = json.loads(row["document"])
            stored = Period(
                row["period_start"].replace(tzinfo=UTC), row["period_end"].replace(tzinfo=UTC), row["period"]
            )
            result.append(
                Invoice(
                    key[0],
                    stored,
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
            result.append(drafts[key])
    return result


def finalize(
    client: Client,
    period: str | Selection,
    *,
    customer: str | None = None,
    now: datetime | None = None,
    ended_by: datetime | None = None,
) -> list[Invoice]:
    """Stores the selected periods' draft invoices immutably, each once its period has ended (by
    `ended_by`, default now); already finalized ones are returned as stored."""
    now = now or datetime.now(UTC)
    ended_by = ended_by or now
    chosen = selection(period)
    digest = client.query("SELECT catalog_digest FROM catalog_in_force").result_rows[0][0]
    invoices = compute(client, chosen, customer=customer)
    running = [i for i in invoices if i.status == "draft" and i.period.end > ended_by]
    if running and len(running) == len(invoices):
        first = min(running, key=lambda i: i.period.end)
        raise UserError(
            f"period {first.period.name} has not ended (it ends {first.period.end.isoformat()}); finalize it after that"
        )
    out = []
    for inv in invoices:
        if inv.status == "draft" and inv.period.end <= ended_by:
            inv.status, inv.finalized_at = "finalized", iso_utc(now)
            doc = inv.as_dict()
            ps, pe = inv.period.start, inv.period.end
            client.insert(
                "invoices_finalized",
                [[inv.customer, inv.period.name, now, digest, inv.currency, inv.total, json.dumps(doc), ps, pe]],
            )
            client.insert(
                "invoice_lines_finalized",
                [
                    [
                        inv.customer,
                        inv.period.name,
                        now,
                        n,
                        line.corrects_period,
                        line.corrects_type or line.type,
                        line.meter,
                        line.filter,
                        line.segment[0],
                        line.quantity,
                        line.amount,
                        line.ref,
                        line.period.start if line.period is not None else ps,
                    ]
                    for n, line in enumerate(inv.lines)
                ],
            )
            inv.document, inv.finalized_now = doc, True
        if inv.status == "finalized":
            out.append(inv)
    return out


def due_periods(client: Client, settlement_window: timedelta, now: datetime) -> list[str]:
    """The months (YYYY-MM) in which some customer's period starts that has ended, still has a
    draft, and whose settlement window has passed as of `now`: late events are awaited for
    `settlement_window` after a period ends, then it is final."""
    due = (now - settlement_window).replace(tzinfo=None)
    return [r["month"] for r in clickhouse.query(client, "invoice/unsettled_periods", {"due": due})]


def finalize_due(
    client: Client, settlement_window: timedelta, *, now: datetime | None = None, due_as_of: datetime | None = None
) -> dict[str, int]:
    """Finalizes every period due as of `due_as_of` (default: now; TALLYFLOW_SETTLEMENT_WINDOW);
    returns period name -> invoices finalized now. Events that reach a finalized period later
    are corrections on the next invoice."""
    now = now or datetime.now(UTC)
    ended_by = (due_as_of or now) - settlement_window
    done: dict[str, int] = defaultdict(int)
    for month in due_periods(client, settlement_window, due_as_of or now):
        for inv in finalize(client, month, now=now, ended_by=ended_by):
            if inv.finalized_now:
                done[inv.period.name] += 1
    return dict(sorted(done.items()))


def render_table(invoices: list[Invoice]) -> str:
    if not invoices:
        return "no invoices for this period (no subscription overlaps it)"
    out = []
    for inv in invoices:
        d = inv.as_dict()
        status = "finalized " + d["finalized_at"] if d["status"] == "finalized" else "draft"
        out.append(
            f"{d['customer']}  {d['period']} ({d.get('period_start', '')} .. {d.get('period_end', '')})  "
            f"plan {d['plan']} v{d['version']}  {d['currency']}  ({status})"
        )
        for line in d["lines"]:
            label = {"base_fee": "base fee", "minimum_commitment": "minimum commitment true-up"}.get(line["type"])
            if line["type"] == "discount":
                scope = "all" if line["applies_to"] == "all" else ", ".join(line["applies_to"])
                label = f"discount {line['coupon']} (on {scope})"
            elif line["type"] == "tax":
                label = f"tax {line['name']}"
            elif line["type"] == "correction":
                what = line["meter"] or line["corrects"]["type"].replace("_", " ")
                label = f"correction of {line['corrects']['period']}: {what}"
            elif label is None:
                label = f"{line['meter']}{'{' + line['filter'] + '}' if line['filter'] else ''} ({line['model']})"
            if line.get("override"):
                label += " (override)"
            qty = line["quantity"] if line["type"] in ("usage", "correction") and line["meter"] else ""
            if line["type"] == "credits":
                label = "prepaid credits"
                qty = f"{line['quantity']} credits" + (
                    f" ({line['billable']} uncovered)" if line["billable"] != "0" else ""
                )
            out.append(f"  {label:<44} {qty:>18} {line['amount']:>14}")
        if any(Decimal(d.get(k, "0")) for k in ("discount_total", "tax_total")):  # documents before taxes lack them
            for k in ("subtotal", "discount_total", "tax_total"):
                out.append(f"  {k.replace('_', ' '):<44} {'':>18} {d[k]:>14}")
        out.append(f"  {'total':<44} {'':>18} {d['total']:>14}")
        out.append("")
    return "\n".join(out).rstrip()

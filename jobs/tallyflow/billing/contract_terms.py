"""An invoice's contract terms after its priced lines: the discount and tax lines core/totals.py
computes, from the catalog the invoice was priced with (its stored document, by digest)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable

from clickhouse_connect.driver.client import Client

from tallyflow.billing.invoice_model import Invoice, Line
from tallyflow.core import catalog, totals
from tallyflow.core.catalog import Catalog, Subscription
from tallyflow.core.periods import iso_utc
from tallyflow.errors import UserError

_catalogs: dict[str, Catalog] = {}


def catalog_of(client: Client, digest: str = "") -> Catalog:
    """The applied catalog with this digest ('' = the one in force), from its stored document:
    the discounts and taxes of its invoices. Kept per digest (a digest never changes)."""
    if not digest:
        digest = client.query("SELECT catalog_digest FROM catalog_in_force").result_rows[0][0]
    found = _catalogs.get(digest)
    if found is None:
        rows = client.query(
            "SELECT document FROM catalog_applied WHERE catalog_digest = {d:String} AND document != '' LIMIT 1",
            parameters={"d": digest},
        ).result_rows
        if not rows:
            raise UserError(f"catalog {digest} was applied before catalogs were stored whole; apply it again")
        found = _catalogs[digest] = catalog.parse(json.loads(rows[0][0]), f"catalog {digest}")
    return found


def add(terms: Catalog, invoices: Iterable[Invoice]) -> None:
    """Each invoice's discount and tax lines (core/totals.py), after its priced lines."""
    subs: dict[str, list[Subscription]] = defaultdict(list)
    for sub in terms.subscriptions:
        subs[sub.customer].append(sub)
    for inv in invoices:
        overlapping = [
            s for s in subs[inv.customer] if s.start < inv.period.end and (s.end or inv.period.end) > inv.period.start
        ]
        if not overlapping:
            continue
        sub = max(overlapping, key=lambda s: s.start)  # the one in force at the period's end
        if not (sub.coupons or terms.customer_taxes.get(inv.customer)):
            continue
        whole = (iso_utc(inv.period.start), iso_utc(inv.period.end))
        for a in totals.adjustments(terms, sub, inv.period, ((x.meter, x.amount) for x in inv.lines), inv.minor_units):
            inv.lines.append(
                Line(
                    type=a.type,
                    meter="",
                    filter="",
                    model="",
                    quantity=a.base,
                    billable=a.base,
                    amount_exact=a.amount,
                    amount=a.amount,
                    minor_units=inv.minor_units,
                    segment=whole,
                    plan=inv.plan,
                    version=inv.version,
                    ref=a.ref,
                    name=a.name if a.type == "tax" else "",
                    applies_to=a.applies_to,
                    period=inv.period,
                )
            )
            inv.total += a.amount

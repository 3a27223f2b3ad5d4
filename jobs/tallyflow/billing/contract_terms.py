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

_terms: dict[str, Catalog | None] = {}


def catalog_of(client: Client, digest: str = "") -> Catalog | None:
    """The applied catalog with this digest ('' = the one in force), from its stored document,
    when it has coupons or taxes (else None: nothing follows the lines, and a catalog of 10,000
    subscriptions is not parsed for nothing). Kept per digest (a digest never changes)."""
    if not digest:
        digest = client.query("SELECT catalog_digest FROM catalog_in_force").result_rows[0][0]
    if digest not in _terms:
        rows = client.query(
            "SELECT document FROM catalog_applied WHERE catalog_digest = {d:String} AND document != '' LIMIT 1",
            parameters={"d": digest},
        ).result_rows
        # A catalog applied before catalogs were stored whole predates coupons and taxes.
        doc = json.loads(rows[0][0]) if rows else {}
        wanted = doc.get("coupons") or doc.get("taxes")
        _terms[digest] = catalog.parse(doc, f"catalog {digest}") if wanted else None
    return _terms[digest]


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

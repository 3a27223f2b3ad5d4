"""Stores an applied catalog in ClickHouse, where the invoice SQL reads it, and reads back the
catalog in force (`tallyflow catalog apply | show`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import yaml
from clickhouse_connect.driver.client import Client

from tallyflow.core.catalog import Catalog
from tallyflow.errors import UserError


def rows(catalog: Catalog) -> dict[str, list[tuple]]:
    """The catalog as rows of the catalog_* tables (sql/ddl/1*.sql), keyed by table."""
    d = catalog.digest
    out: dict[str, list[tuple]] = {
        "catalog_meters": [
            (d, m.id, m.event_type, m.aggregation, m.value or "", list(m.group_by), m.unit) for m in catalog.meters
        ],
        "catalog_plans": [],
        "catalog_charges": [],
        "catalog_credit_rates": [],
        "catalog_subscriptions": [
            (d, s.customer, s.plan, s.start, s.end, s.billing_anchor, s.price_key) for s in catalog.subscriptions
        ],
        "catalog_grants": [
            (d, g.customer, g.grant_id, g.credits, g.priority, g.effective_at, g.expires_at) for g in catalog.grants
        ],
    }
    priced = [("", p) for p in catalog.plans]
    priced += [(key, p) for key, versions in sorted(catalog.overridden.items()) for p in versions]
    for key, p in priced:
        c = p.credits
        out["catalog_plans"].append(
            (
                d,
                p.id,
                p.version,
                p.effective_from,
                p.apply,
                p.currency,
                p.minor_units,
                p.base_fee,
                p.minimum_commitment,
                c.credit_price if c else None,
                c.on_exhausted if c else "",
                c.overage_multiplier if c else 1,
                p.billing_period,
                key,
                "base_fee" in p.overridden,
                "minimum_commitment" in p.overridden,
            )
        )
        for i, ch in enumerate(p.charges):
            out["catalog_charges"].append(
                (
                    d,
                    p.id,
                    p.version,
                    i,
                    ch.meter,
                    dict(ch.filter),
                    ch.model,
                    ch.included_units,
                    ch.unit_price,
                    ch.package_size,
                    ch.package_price,
                    [t.up_to for t in ch.tiers],
                    [t.unit_price for t in ch.tiers],
                    [t.flat_fee for t in ch.tiers],
                    [s.up_to for s in ch.steps],
                    [s.price for s in ch.steps],
                    key,
                    ch.override,
                )
            )
        if key:
            continue  # credit terms are the plan's own (overrides do not reach them)
        for meter_id, rate in c.rates if c else ():
            out["catalog_credit_rates"].append((d, p.id, p.version, meter_id, rate))
    return out


def check_currencies(client: Client, catalog: Catalog) -> None:
    """A customer keeps the currency of the invoices already issued to them (Stripe fixes a
    customer's currency once it has been invoiced): corrections of a finalized period are added
    to the next invoice, so the two must be in one currency."""
    currency_of = {p.id: p.currency for p in catalog.plans}
    wanted = {s.customer: currency_of[s.plan] for s in catalog.subscriptions}
    if not wanted:
        return
    issued = client.query(
        "SELECT customer_id, any(currency) FROM invoices_finalized "
        "WHERE customer_id IN {c:Array(String)} GROUP BY customer_id",
        parameters={"c": sorted(wanted)},
    ).result_rows
    for customer, currency in issued:
        if currency and wanted[customer] != currency:
            raise UserError(
                f"customer {customer}: the catalog bills in {wanted[customer]}, but invoices in "
                f"{currency} were already finalized; a customer is billed in one currency"
            )


def apply(client: Client, catalog: Catalog, source: str) -> bool:
    """Makes the catalog the one in force; returns False when this exact catalog was stored before."""
    check_currencies(client, catalog)
    # Each table is written once per digest; asking the table itself (not the log of applies)
    # also completes an apply that was cut off half way without writing anything twice.
    known = True
    for table, table_rows in rows(catalog).items():
        stored = client.query(
            f"SELECT count() FROM {table} WHERE catalog_digest = {{d:String}}", parameters={"d": catalog.digest}
        ).result_rows[0][0]
        if table_rows and not stored:
            client.insert(table, table_rows)
            known = False
    client.insert(
        "catalog_applied",
        [(catalog.digest, datetime.now(UTC), source, catalog.document)],
        column_names=["catalog_digest", "applied_at", "source", "document"],
    )
    return not known


def in_force(client: Client) -> dict:
    """The catalog in force: digest, when and from where it was applied, and the catalog itself."""
    found = client.query(
        "SELECT catalog_digest, applied_at, source, document FROM catalog_applied ORDER BY applied_at DESC LIMIT 1"
    ).result_rows
    if not found:
        raise UserError("no catalog has been applied yet (`tallyflow catalog apply FILE` or `tallyflow run`)")
    digest, applied_at, source, document = found[0]
    return {
        "digest": digest,
        "applied_at": applied_at.replace(tzinfo=UTC).isoformat(),
        "source": source,
        "catalog": json.loads(document) if document else None,
    }


def render(shown: dict) -> str:
    head = f"catalog {shown['digest']}, applied {shown['applied_at']} from {shown['source']}"
    if shown["catalog"] is None:
        return head + "\n(applied before catalogs were stored whole; apply it again to show it)"
    return head + "\n" + yaml.safe_dump(shown["catalog"], sort_keys=False, allow_unicode=True).rstrip()

"""Stores an applied catalog in ClickHouse, where the invoice SQL reads it."""

from __future__ import annotations

from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from tallyflow.catalog import Catalog


def _rows(catalog: Catalog) -> dict[str, list[tuple]]:
    d = catalog.digest
    rows: dict[str, list[tuple]] = {
        "catalog_meters": [(d, m.id, m.event_type, m.aggregation, m.value or "", list(m.group_by))
                           for m in catalog.meters],
        "catalog_plans": [],
        "catalog_charges": [],
        "catalog_credit_rates": [],
        "catalog_subscriptions": [(d, s.customer, s.plan, s.start, s.end) for s in catalog.subscriptions],
        "catalog_grants": [(d, g.customer, g.grant_id, g.credits, g.priority, g.effective_at, g.expires_at)
                           for g in catalog.grants],
    }
    for p in catalog.plans:
        c = p.credits
        rows["catalog_plans"].append((
            d, p.id, p.version, p.effective_from, p.apply, p.currency, p.minor_units, p.base_fee,
            p.minimum_commitment, c.credit_price if c else None, c.on_exhausted if c else "",
            c.overage_multiplier if c else 1,
        ))
        for i, ch in enumerate(p.charges):
            rows["catalog_charges"].append((
                d, p.id, p.version, i, ch.meter, dict(ch.filter), ch.model, ch.included_units, ch.unit_price,
                ch.package_size, ch.package_price, [t.up_to for t in ch.tiers], [t.unit_price for t in ch.tiers],
                [t.flat_fee for t in ch.tiers], [s.up_to for s in ch.steps], [s.price for s in ch.steps],
            ))
        for meter_id, rate in c.rates if c else ():
            rows["catalog_credit_rates"].append((d, p.id, p.version, meter_id, rate))
    return rows


def apply(client: Client, catalog: Catalog, source: str) -> bool:
    """Makes the catalog the one in force; returns False when this exact catalog was stored before."""
    # Each table is written once per digest; asking the table itself (not the log of applies)
    # also completes an apply that was cut off half way without writing anything twice.
    known = True
    for table, rows in _rows(catalog).items():
        stored = client.query(f"SELECT count() FROM {table} WHERE catalog_digest = {{d:String}}",
                              parameters={"d": catalog.digest}).result_rows[0][0]
        if rows and not stored:
            client.insert(table, rows)
            known = False
    client.insert("catalog_applied", [(catalog.digest, datetime.now(UTC), source)])
    return not known

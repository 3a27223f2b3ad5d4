"""Shadow pricing (`tallyflow invoice --period P --catalog candidate.yaml`): the period's stored
raw events priced with a candidate catalog, beside the invoices of the catalog in force, without
applying the candidate or storing anything.

The invoice SQL runs unchanged; the candidate's catalog tables stand in for the stored ones for
that one query (clickhouse.query's `tables`). Credit-priced meters read the ledger the job drew
with the catalog in force: a candidate that changes credit rates or grants is not drawn again.
"""

from __future__ import annotations

from decimal import Decimal

from clickhouse_connect.driver.client import Client

from tallyflow.billing import invoice
from tallyflow.core import catalog
from tallyflow.core.periods import Selection
from tallyflow.land import catalog_store


def compare(client: Client, period: str | Selection, candidate_path: str, *, customer: str | None = None) -> dict:
    cand = catalog.load(candidate_path)
    chosen = invoice.selection(period)
    current = {(i.customer, i.period.name): i for i in invoice.compute(client, chosen, customer=customer)}
    shadow = {
        (i.customer, i.period.name): i
        for i in invoice.priced_with(client, chosen, cand, catalog_store.rows(cand), customer)
    }
    rows = []
    for key in sorted(set(current) | set(shadow)):
        cust = key[0]
        now, cand_inv = current.get(key), shadow.get(key)
        now_doc = now.as_dict() if now else None
        cand_doc = cand_inv.as_dict() if cand_inv else None
        rows.append(
            {"customer": cust, "current": now_doc, "candidate": cand_doc, "difference": _difference(now_doc, cand_doc)}
        )
    return {
        "period": chosen.text,
        "candidate": {"file": candidate_path, "digest": cand.digest},
        "stored": "nothing (shadow pricing)",
        "customers": rows,
    }


def _difference(now: dict | None, cand: dict | None) -> str | None:
    """candidate total - current total, in their one currency (None when the currencies differ:
    amounts in two currencies are never added)."""
    if now and cand and now["currency"] != cand["currency"]:
        return None
    currency = (cand or now or {}).get("currency")
    total = lambda d: Decimal(d["total"]) if d else Decimal(0)  # noqa: E731
    diff = total(cand) - total(now)
    return str(diff.quantize(Decimal(1).scaleb(-catalog.minor_units(currency or "USD"))))


def render(r: dict) -> str:
    out = [
        f"shadow pricing of {r['period']} with {r['candidate']['file']} (digest {r['candidate']['digest']}); "
        "nothing stored",
        f"  {'customer':<20} {'currency':<8} {'current':>14} {'candidate':>14} {'difference':>14}",
    ]
    for c in r["customers"]:
        cur, cand = c["current"], c["candidate"]
        currency = (cand or cur)["currency"]
        status = " (finalized)" if cur and cur["status"] == "finalized" else ""
        out.append(
            f"  {c['customer']:<20} {currency:<8} {cur['total'] if cur else '-':>14} "
            f"{cand['total'] if cand else '-':>14} {c['difference'] or 'currency differs':>14}{status}"
        )
    return "\n".join(out)

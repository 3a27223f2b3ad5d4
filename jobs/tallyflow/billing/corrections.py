"""Corrections: usage that reached a finalized period late is billed on the customer's next
invoice, as lines naming the period they correct (docs/catalog.md, Corrections). A finalized
period is recomputed with the catalog it was first finalized with, and compared, line by line,
with everything finalized invoices have billed for it so far (its own lines and earlier
corrections), so each difference is billed once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from clickhouse_connect.driver.client import Client

from tallyflow.billing.invoice_model import Invoice, Line, naive
from tallyflow.core.periods import Period, listed
from tallyflow.land import clickhouse

ZERO = Decimal(0)


def earlier_periods(
    client: Client, drafts: dict[tuple[str, datetime], Invoice], customer: str | None, priced: Callable
) -> dict[tuple[str, datetime], list[Line]]:
    """Per draft: correction lines for every earlier finalized period of its customer whose
    recomputation now differs from what finalized invoices have billed for it so far. Each goes
    on the customer's first draft here that starts after the period it corrects, never on two."""
    first_start: dict[str, datetime] = {}
    for cust, start in drafts:
        first_start[cust] = min(first_start.get(cust, start), start)
    if not first_start:
        return {}
    before = max(first_start.values())
    billed: dict[tuple[datetime, str, str, str], dict[tuple, tuple[Decimal, Decimal]]] = defaultdict(dict)
    for r in clickhouse.query(
        client, "invoice/billed_lines", {"before": before.replace(tzinfo=None), "customer": customer or ""}
    ):
        start = naive(r["billed_start"])
        if r["customer_id"] not in first_start or start >= first_start[r["customer_id"]]:
            continue
        key = (r["line_type"], r["meter_id"], r["filter_text"], r["ref"], r["segment_start"])
        billed[(start, r["billed_period"], r["digest"], r["customer_id"])][key] = (r["quantity"], r["amount"])
    out: dict[tuple[str, datetime], list[Line]] = defaultdict(list)
    by_digest: dict[str, list[tuple[datetime, str, str]]] = defaultdict(list)
    for start, name, digest, cust in billed:
        by_digest[digest].append((start, name, cust))
    for digest, periods in sorted(by_digest.items()):
        # Every earlier period of this catalog in one query (each customer's own).
        recomputed = priced(client, listed([(c, s.replace(tzinfo=UTC)) for s, _, c in periods]), customer, digest)
        for start, name, cust in sorted(periods, key=lambda x: (x[2], x[0])):
            now = recomputed.get((cust, start))
            was = billed[(start, name, digest, cust)]
            current = {line.key: line for line in (now.lines if now else [])}
            target = (cust, first_start[cust])
            for key in sorted(set(current) | set(was)):
                line = current.get(key)
                q_was, a_was = was.get(key, (ZERO, ZERO))
                q_now, a_now = (line.quantity, line.amount) if line else (ZERO, ZERO)
                if a_now != a_was or q_now != q_was:
                    line_type, meter, filter_text, ref, segment_start = key
                    out[target].append(
                        Line(
                            type="correction",
                            meter=meter,
                            filter=filter_text,
                            model=line.model if line else "",
                            quantity=q_now - q_was,
                            billable=q_now - q_was,
                            amount_exact=a_now - a_was,
                            amount=a_now - a_was,
                            minor_units=now.minor_units if now else drafts[target].minor_units,
                            segment=(segment_start, line.segment[1] if line else segment_start),
                            plan=line.plan if line else "",
                            version=line.version if line else 0,
                            corrects_period=name,
                            corrects_type=line_type,
                            ref=ref,
                            period=now.period
                            if now
                            else Period(start.replace(tzinfo=UTC), start.replace(tzinfo=UTC), name),
                        )
                    )
    return out

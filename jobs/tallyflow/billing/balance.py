"""`tallyflow balance`: a customer's credit grants from ClickHouse (catalog grants, top-ups and
the ledger's draws), per grant and in total, as of a time (default: now)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

from clickhouse_connect.driver.client import Client

from tallyflow.core.catalog import Catalog
from tallyflow.core.credit_state import CustomerCredits
from tallyflow.core.drawdown import Drawdown
from tallyflow.core.periods import iso_utc, plain
from tallyflow.errors import UserError
from tallyflow.land import clickhouse
from tallyflow.settings import Settings

ZERO = Decimal(0)


def report(client: Client, customer: str, at: datetime | None = None) -> dict:
    at = at or datetime.now(UTC)
    grants = clickhouse.query(client, "credits/balance", {"customer": customer, "at": at.replace(tzinfo=None)})
    uncovered = clickhouse.query(client, "credits/uncovered", {"customer": customer})
    active = [g for g in grants if g["status"] == "active"]
    return {
        "customer": customer,
        "at": iso_utc(at),
        "grants": [
            {
                "grant_id": g["grant_id"],
                "source": g["source"],
                "priority": g["priority"],
                "effective_at": iso_utc(g["effective_at"]),
                "expires_at": iso_utc(g["expires_at"]) if g["expires_at"] is not None else None,
                "status": g["status"],
                "granted": plain(g["granted"]),
                "consumed": plain(g["consumed"]),
                "remaining": plain(g["remaining"]),
            }
            for g in grants
        ],
        "total": {
            "granted": plain(sum((g["granted"] for g in grants), ZERO)),
            "consumed": plain(sum((g["consumed"] for g in grants), ZERO)),
            # What can still be drawn at `at`: remaining credits of active grants.
            "remaining": plain(sum((g["remaining"] for g in active), ZERO)),
            "expired_unused": plain(sum((g["remaining"] for g in grants if g["status"] == "expired"), ZERO)),
            "scheduled": plain(sum((g["remaining"] for g in grants if g["status"] == "scheduled"), ZERO)),
            "uncovered_credits": plain(sum((u["credits"] for u in uncovered), ZERO)),
        },
        "uncovered": [
            {"meter": u["meter_id"], "quantity": plain(u["quantity"]), "credits": plain(u["credits"])}
            for u in uncovered
        ],
    }


def render(r: dict) -> str:
    lines = [f"{r['customer']} as of {r['at']}"]
    lines.append(
        f"  {'grant':<20} {'source':<8} {'prio':>4} {'status':<9} {'granted':>16} {'consumed':>16} "
        f"{'remaining':>16}  expires"
    )
    for g in r["grants"]:
        lines.append(
            f"  {g['grant_id']:<20} {g['source']:<8} {g['priority']:>4} {g['status']:<9} {g['granted']:>16} "
            f"{g['consumed']:>16} {g['remaining']:>16}  {g['expires_at'] or 'never'}"
        )
    t = r["total"]
    lines.append(
        f"  total: granted {t['granted']}, consumed {t['consumed']}, remaining {t['remaining']} "
        f"(expired unused {t['expired_unused']}, scheduled {t['scheduled']}, "
        f"uncovered usage {t['uncovered_credits']} credits)"
    )
    return "\n".join(lines)


def drawdown_seeds(client: Client, catalog: Catalog) -> dict[str, CustomerCredits]:
    """Drawdown states rebuilt from the ledger, for customers a starting job has no Flink state for."""
    return Drawdown(catalog).seed(
        clickhouse.query(client, "credits/drawdown_state"), clickhouse.query(client, "credits/signal_state")
    )


def seeds_for_start(
    settings: Settings, client: Client, catalog: Catalog, wait_s: float = 120.0
) -> dict[str, CustomerCredits]:
    """The drawdown seeds every start of the job takes (a local run, `--fresh`, a cluster
    submission with or without a restore: a restored customer keeps its Flink state). Waits until
    the loader has landed every committed ledger entry and signal first: seeds from a ledger that
    misses entries would number new entries again and draw again on credits already spent."""
    from tallyflow.wire import topics

    group = f"{settings.topic_prefix}{topics.LOADER_GROUP}"
    deadline = time.monotonic() + wait_s
    while behind := topics.unlanded(settings, (topics.LEDGER, topics.SIGNALS), group):
        if time.monotonic() > deadline:
            first = next(iter(behind.items()))
            raise UserError(
                f"the loader has not landed the credit ledger (partition {first[0]} at {first[1][0]} "
                f"of {first[1][1]}) after {wait_s:g} s; start `tallyflow load` so the job can continue "
                "every balance from it"
            )
        time.sleep(1.0)  # the loader lands on its own poll; nothing to wait on but its offsets
    return drawdown_seeds(client, catalog)

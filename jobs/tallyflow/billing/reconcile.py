"""`tallyflow reconcile --period P`: finance's proof that nothing was lost or counted twice.

Checks, each a row naming the customer, meter, period and the two numbers set against each other:

* events_vs_outputs: the period's accepted events per lateness class against where the job put
  them (on_time -> usage_windows, adjust -> usage_adjustments, too_late -> late_events), in
  event counts and quantities (sql/reconcile/metering.sql).
* metered_vs_rated: windows plus adjustments against the rated records' quantity, per customer and
  unfiltered count/sum charge.
* rated_vs_invoice: rated amounts against the invoice line's exact amount, per charge and segment,
  where every event of the meter was rated (none arrived too late) and there was usage.
* credits_implied_vs_ledger: credits the events imply against the ledger's draws plus uncovered
  usage (sql/reconcile/credits.sql).
* ledger_entry_numbers: each customer's ledger entries against its distinct entry numbers (no
  entry number used twice, sql/reconcile/ledger_entries.sql).
* balance_vs_ledger: each customer's last balance signal against grants minus the ledger's draws
  up to that signal, over the grants usable at its time.

Counts of accepted events by lateness, duplicates, conflicts, late events and rejects are
reported alongside (sql/reconcile/counts.sql). Exit status 1 when any check fails.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from clickhouse_connect.driver.client import Client

from tallyflow.billing import invoice
from tallyflow.core import aggregations
from tallyflow.core.periods import Selection, iso_utc, plain
from tallyflow.land import clickhouse

ZERO = Decimal(0)


@dataclass
class Check:
    check: str
    customer: str
    meter: str
    period: str
    left_name: str
    left: Decimal | int
    right_name: str
    right: Decimal | int

    @property
    def ok(self) -> bool:
        return Decimal(self.left) == Decimal(self.right)

    def as_dict(self) -> dict:
        return {
            "check": self.check,
            "customer": self.customer,
            "meter": self.meter,
            "period": self.period,
            "left": {"name": self.left_name, "value": plain(Decimal(self.left))},
            "right": {"name": self.right_name, "value": plain(Decimal(self.right))},
            "ok": self.ok,
        }


def _dec(v) -> Decimal:
    return ZERO if v is None or v == "" else Decimal(str(v))


def run(client: Client, period: str | Selection) -> dict:
    """Every check over the selected periods (a name: 2026-10 is every period that starts in
    October): events, windows and rated records over the time those periods cover."""
    chosen = invoice.selection(period)
    invoices = invoice.compute(client, chosen)
    # The time the selected periods cover (a month: at least the month itself).
    start = min([chosen.start, *(i.period.start for i in invoices)]) if chosen.mode == "starts" else None
    end = max([chosen.end, *(i.period.end for i in invoices)]) if chosen.mode == "starts" else None
    if start is None or end is None or not invoices:
        start, end = chosen.start, chosen.end
    params = {"period_start": start.replace(tzinfo=None), "period_end": end.replace(tzinfo=None)}
    period = chosen.text
    rules = aggregations.sql_parameters()
    checks: list[Check] = []
    too_late: dict[tuple[str, str], int] = defaultdict(int)
    metered: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for r in clickhouse.query(client, "reconcile/metering", {**params, **rules}):
        key = (r["customer_id"], r["meter_id"])
        for what, left, right in (
            ("count", r["events_count"], r["output_count"]),
            ("quantity", _dec(r["events_quantity"]), _dec(r["output_quantity"])),
        ):
            checks.append(
                Check(
                    "events_vs_outputs",
                    *key,
                    period,
                    f"events {r['lateness']} {what}",
                    left,
                    f"{r['output']} {what}",
                    right,
                )
            )
        if r["lateness"] == "too_late":
            too_late[key] = r["events_count"]
        if r["output"] in ("usage_windows", "usage_adjustments"):
            metered[key] += _dec(r["output_quantity"])
    checks += _rating_checks(period, invoices, client, params, metered, too_late)
    for r in clickhouse.query(client, "reconcile/credits", params):
        checks.append(
            Check(
                "credits_implied_vs_ledger",
                r["customer_id"],
                r["meter_id"],
                period,
                "implied credits",
                _dec(r["implied_credits"]),
                "ledger credits",
                _dec(r["ledger_credits"]),
            )
        )
    for r in clickhouse.query(client, "reconcile/ledger_entries"):
        checks.append(
            Check(
                "ledger_entry_numbers",
                r["customer_id"],
                "",
                period,
                "ledger entries",
                r["entries"],
                "distinct entry numbers",
                r["entry_numbers"],
            )
        )
    checks += _balance_checks(client, period)
    counts = {r["name"]: r["n"] for r in clickhouse.query(client, "reconcile/counts", params)}
    failed = [c for c in checks if not c.ok]
    return {
        "period": period,
        "discrepancies": len(failed),
        "checks": len(checks),
        "failed": [c.as_dict() for c in failed],
        "passed": [c.as_dict() for c in checks if c.ok],
        "counts": counts,
    }


def _rating_checks(
    period: str, invoices: list, client: Client, params: dict, metered: dict, too_late: dict
) -> list[Check]:
    """Windows against rated records over the time reconciled; rated records against the draft
    invoices of the selected periods."""
    rated = clickhouse.query(
        client,
        "reconcile/rated_amounts",
        {**params, "rated_from": params["period_start"], "rated_to": params["period_end"]},
    )
    meters = {r["meter_id"]: r["aggregation"] for r in clickhouse.query(client, "reconcile/meters")}
    out = []
    rated_quantity: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    rated_amount: dict[tuple[str, str, str, str], Decimal] = {}
    for r in rated:
        if r["filter_text"] == "":
            rated_quantity[(r["customer_id"], r["meter_id"])] += _dec(r["rated_quantity"])
        rated_amount[(r["customer_id"], r["meter_id"], r["filter_text"], iso_utc(r["segment_start"]))] = _dec(
            r["rated_amount"]
        )
    for key, q in sorted(rated_quantity.items()):
        agg = aggregations.REGISTRY.get(meters.get(key[1], ""))
        if agg is not None and agg.additive:  # windows sum to the period only for additive meters
            out.append(
                Check(
                    "metered_vs_rated",
                    *key,
                    period,
                    "windows + adjustments quantity",
                    metered.get(key, ZERO),
                    "rated quantity",
                    q,
                )
            )
    for inv in invoices:
        if inv.status != "draft":
            continue  # a finalized invoice was checked when it was issued; corrections follow it
        for line in inv.lines:
            key = (inv.customer, line.meter)
            if (
                line.type != "usage"
                or not _rated_from_windows(meters.get(line.meter, ""))
                or too_late.get(key, 0)
                or line.quantity == 0
            ):
                continue
            got = rated_amount.get((*key, line.filter, line.segment[0]), ZERO)
            out.append(
                Check(
                    "rated_vs_invoice",
                    *key,
                    period,
                    f"rated amount ({line.filter or 'all'})",
                    got,
                    "invoice line amount_exact",
                    line.amount_exact,
                )
            )
    return out


def _rated_from_windows(aggregation: str) -> bool:
    agg = aggregations.REGISTRY.get(aggregation)
    return agg is not None and agg.rated_from_windows


def _balance_checks(client: Client, period: str) -> list[Check]:
    last = clickhouse.query(client, "reconcile/last_balances")
    if not last:
        return []
    catalog_grants = defaultdict(list)
    for g in clickhouse.query(client, "reconcile/catalog_grants"):
        catalog_grants[g["customer_id"]].append(g)
    out = []
    for s in last:
        entries = clickhouse.query(
            client, "reconcile/ledger_before", {"customer": s["customer_id"], "seq": s["last_seq"]}
        )
        grants = {g["grant_id"]: g for g in catalog_grants[s["customer_id"]]}
        drawn: dict[str, Decimal] = defaultdict(Decimal)
        for e in entries:
            if e["kind"] == "grant":
                grants.setdefault(e["grant_id"], e)
            elif e["kind"] == "draw":
                drawn[e["grant_id"]] += _dec(e["credits"])
        at = s["at"]
        expected = sum(
            (
                _dec(g["credits"]) - drawn[gid]
                for gid, g in grants.items()
                if g["effective_at"] <= at and (g["expires_at"] is None or at < g["expires_at"])
            ),
            ZERO,
        )
        out.append(
            Check(
                "balance_vs_ledger",
                s["customer_id"],
                "",
                period,
                "last balance signal",
                _dec(s["balance"]),
                "grants - ledger draws",
                expected,
            )
        )
    return out


def render(r: dict) -> str:
    lines = [f"reconciliation {r['period']}: {r['checks']} checks, {r['discrepancies']} discrepancies"]
    for c in r["failed"]:
        lines.append(
            f"  FAIL {c['check']} {c['customer']} {c['meter'] or '-'} {c['period']}: "
            f"{c['left']['name']} {c['left']['value']} != {c['right']['name']} {c['right']['value']}"
        )
    lines.append("  counts: " + ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items())))
    return "\n".join(lines)

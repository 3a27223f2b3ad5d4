"""`tallyflow invoice`, `quote`, `balance` and `reconcile`: what reads the landed data, each
parser beside its handler."""

from __future__ import annotations

import argparse

from tallyflow.cli.output import emit, format_arg
from tallyflow.cli.types import instant, period
from tallyflow.errors import UserError
from tallyflow.settings import Settings

# `reconcile` found a discrepancy; 1 stays "a service did not answer" or another failure.
RECONCILE_DISCREPANCY = 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("invoice", help="compute invoices for a billing period from ClickHouse")
    p.add_argument(
        "--period",
        type=period,
        help="a period name: 2026-10 (every period that starts in that month), 2026-10-15 (anchored "
        "periods that start that day), 2026-W42, 2026-Q4 or 2026",
    )
    p.add_argument(
        "--at", type=instant, help="the periods that contain this instant (ISO 8601, like 2026-10-20T12:00:00Z)"
    )
    p.add_argument("--customer", help="only this customer")
    p.add_argument(
        "--finalize",
        action="store_true",
        help="store the invoices immutably (a finalized period's later usage is corrected next period)",
    )
    p.add_argument(
        "--finalize-due",
        action="store_true",
        help="finalize every period whose settlement window (TALLYFLOW_SETTLEMENT_WINDOW) has passed",
    )
    p.add_argument(
        "--catalog",
        help="shadow pricing: price the period's stored events with this candidate "
        "catalog, beside the current invoices (stores nothing)",
    )
    format_arg(p)
    p.set_defaults(func=cmd_invoice)

    p = sub.add_parser("quote", help="price a quantity under a plan, with the tier breakdown")
    p.add_argument("--catalog", required=True, help="catalog file (YAML or JSON)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--plan", help="plan id: its list prices")
    which.add_argument("--customer", help="customer id: its subscription's plan, with its overrides")
    p.add_argument("--meter", required=True, help="meter id")
    p.add_argument("--quantity", required=True, help="the metered quantity U (a decimal)")
    p.add_argument("--at", help="price with the version in force at this time (default: now)")
    p.add_argument("--filter", action="append", help="key=value: the slice of a grouped meter to price")
    format_arg(p)
    p.set_defaults(func=cmd_quote)

    p = sub.add_parser("balance", help="a customer's credit grants: granted, consumed, remaining, expiry")
    p.add_argument("--customer", required=True, help="customer id")
    p.add_argument("--at", help="as of this ISO 8601 time (default: now)")
    format_arg(p)
    p.set_defaults(func=cmd_balance)

    p = sub.add_parser(
        "reconcile",
        help="prove every event is counted once: events, windows, rated records, "
        "invoices and the credit ledger (exit 3 on a discrepancy, 1 when a service does not answer)",
    )
    p.add_argument(
        "--period",
        type=period,
        required=True,
        help="a period name (2026-10: every period that starts in that month, 2026-10-15, 2026-W42, 2026-Q4, 2026)",
    )
    format_arg(p)
    p.set_defaults(func=cmd_reconcile)


def cmd_invoice(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow.billing import invoice
    from tallyflow.land import clickhouse

    writes = args.finalize_due or args.finalize
    if writes:
        client = clickhouse.ready(settings)
    elif args.catalog:
        # Shadow pricing hands the candidate catalog to its query as `format()` table functions,
        # which a read-only query may not call: its own connection, no migration (the SQL is ours).
        client = clickhouse.shadow_reader(settings)
    else:
        client = clickhouse.reader(settings)
    if args.finalize_due:
        if args.period or args.at or args.customer or args.finalize or args.catalog:
            raise UserError(
                "--finalize-due finalizes every due period; it takes no --period, --at, --customer, --finalize "
                "or --catalog"
            )
        done = invoice.finalize_due(client, settings.settlement_window)
        emit(
            {"settlement_window": str(settings.settlement_window), "finalized": done},
            args.format,
            "\n".join(f"{p}: {n} invoices finalized" for p, n in done.items()) or "no period is due",
        )
        return 0
    if args.period and args.at:
        raise UserError("invoice takes --period or --at, not both")
    chosen = args.period or args.at
    if not chosen:
        raise UserError(
            "invoice needs --period NAME (2026-10, 2026-10-15, 2026-W42, 2026-Q4, 2026), --at T or --finalize-due"
        )
    if args.catalog:
        from tallyflow.billing import shadow

        if args.finalize:
            raise UserError("--catalog prices with a candidate catalog and stores nothing; it cannot --finalize")
        result = shadow.compare(client, chosen, args.catalog, customer=args.customer)
        emit(result, args.format, shadow.render(result))
        return 0
    if args.finalize:
        invoices = invoice.finalize(client, chosen, customer=args.customer)
    else:
        invoices = invoice.compute(client, chosen, customer=args.customer)
    emit([i.as_dict() for i in invoices], args.format, invoice.render_table(invoices))
    return 0


def cmd_quote(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow.billing import quote
    from tallyflow.core import catalog
    from tallyflow.core.events import InvalidEvent, parse_time

    at = None
    if args.at:
        try:
            at = parse_time(args.at)
        except InvalidEvent:
            raise UserError(f"--at '{args.at}' is not an ISO 8601 time with an offset") from None
    filters = {}
    for f in args.filter or []:
        for pair in f.split(","):
            k, sep, v = pair.partition("=")
            if not sep:
                raise UserError(f"--filter '{f}' is not key=value")
            filters[k.strip()] = v.strip()
    result = quote.quote(
        catalog.load(args.catalog), args.plan, args.meter, args.quantity, at, filters, customer=args.customer
    )
    emit(result, args.format, quote.render(result))
    return 0


def cmd_balance(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow.billing import balance
    from tallyflow.ingest import grants
    from tallyflow.land import clickhouse

    at = None
    if args.at:
        from datetime import UTC, datetime

        at = datetime.fromtimestamp(grants.parse_time(args.at, "--at") // 1000, UTC)
    result = balance.report(clickhouse.reader(settings), args.customer, at)
    emit(result, args.format, balance.render(result))
    return 0


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow.billing import reconcile
    from tallyflow.land import clickhouse

    result = reconcile.run(clickhouse.reader(settings), args.period)
    emit(result, args.format, reconcile.render(result))
    return RECONCILE_DISCREPANCY if result["discrepancies"] else 0

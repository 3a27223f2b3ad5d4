"""`tallyflow produce` and `grant`: what goes onto the input topics, each parser beside its handler."""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path

from tallyflow.cli.output import emit, format_arg
from tallyflow.cli.types import integer, month, number
from tallyflow.errors import UserError
from tallyflow.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("produce", help="publish usage events (JSON lines, or synthetic)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--file", help="JSON event per line (docs/catalog.md form); - for stdin")
    src.add_argument("--generate", type=integer, metavar="N", help="publish N synthetic events")
    p.add_argument("--customers", type=integer, default=5, help="synthetic customers (default 5)")
    p.add_argument("--duplicate-rate", type=number, default=0.0, help="share of events sent twice")
    p.add_argument("--late-rate", type=number, default=0.0, help="share of events sent hours late")
    p.add_argument("--period", type=month, help="month of the synthetic events, YYYY-MM (default: last month)")
    p.add_argument("--seed", type=integer, default=7, help="generator seed (same seed, same event ids)")
    p.add_argument("--out", help="also write the synthetic events to this JSON-lines file")
    format_arg(p)
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("grant", help="publish a prepaid credit grant (top-up) to the grants topic")
    p.add_argument("--customer", required=True, help="customer id")
    p.add_argument("--credits", required=True, help="credits granted (a positive decimal)")
    p.add_argument(
        "--grant-id", help="unique per customer; a resend with the same id is ignored (default: topup-<effective time>)"
    )
    p.add_argument("--priority", type=integer, default=0, help="lower is consumed first (default 0)")
    p.add_argument("--effective-at", help="ISO 8601 time, whole seconds (default: now)")
    p.add_argument("--expires-at", help="ISO 8601 time, whole seconds (default: never)")
    format_arg(p)
    p.set_defaults(func=cmd_grant)


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow.ingest import producer
    from tallyflow.wire import topics

    # Without its topic every send would fail one by one. Creating topics is `stack up`'s and
    # `topics create`'s job: a producer's credentials need no CreateTopics ACL.
    topics.require(settings, topics.EVENTS)
    if args.file:
        from tallyflow import progress

        bar, update = progress.counter(args.format, "publishing")
        try:
            report = producer.produce_file(settings, Path(args.file), on_progress=update)
        finally:
            bar.close()
    else:
        from tallyflow.tools import generator

        gen = generator.generate(
            args.generate,
            customers=args.customers,
            period=args.period,
            duplicate_rate=args.duplicate_rate,
            late_rate=args.late_rate,
            seed=args.seed,
        )
        if args.out:
            with open(args.out, "w") as fh:
                events = list(gen)
                fh.writelines(json.dumps(e) + "\n" for e in events)
            gen = iter(events)
        report = producer.produce_records(settings, gen)
    for problem in report.problems[:20]:
        print(problem, file=sys.stderr)
    emit(report.as_dict(), args.format, f"sent {report.sent}, rejected {report.rejected}, failed {report.failed}")
    return 1 if report.rejected or report.failed else 0


def cmd_grant(args: argparse.Namespace, settings: Settings) -> int:
    from decimal import InvalidOperation

    from tallyflow.core.credit_state import GrantRecord
    from tallyflow.ingest import grants

    try:
        amount = Decimal(args.credits)
    except InvalidOperation:
        raise UserError(f"--credits '{args.credits}' is not a decimal") from None
    effective = grants.parse_time(args.effective_at, "--effective-at") if args.effective_at else None
    if effective is None:
        import time

        effective = time.time_ns() // 1_000_000_000 * 1000  # now, whole seconds
    expires = grants.parse_time(args.expires_at, "--expires-at") if args.expires_at else None
    grant_id = args.grant_id or f"topup-{effective}"
    g = GrantRecord(args.customer, grant_id, amount, args.priority, effective, expires)
    grants.publish_grant(settings, g)
    emit(
        {
            "published": True,
            "customer": g.customer,
            "grant_id": g.grant_id,
            "credits": str(g.credits),
            "priority": g.priority,
            "effective_at": g.effective_at,
            "expires_at": g.expires_at,
        },
        args.format,
        f"published grant {g.grant_id} of {g.credits} credits to {g.customer}",
    )
    return 0

"""The `tallyflow` command line. Mistakes get one line on stderr and exit code 2; failures of
the things it drives (a broker that does not answer, a bad catalog) exit 1; no tracebacks."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from tallyflow.errors import UserError
from tallyflow.settings import Settings


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        print(f"tallyflow: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _json_default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return str(o)
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(type(o).__name__)


def emit(obj: Any, fmt: str, table: str | None = None) -> None:
    if fmt == "json":
        print(json.dumps(obj, default=_json_default, indent=2))
    else:
        print(table if table is not None else _plain(obj))


def _plain(obj: Any, indent: str = "") -> str:
    if isinstance(obj, dict):
        lines = []
        for k, v in obj.items():
            if isinstance(v, dict | list) and v:
                lines.append(f"{indent}{k}:")
                lines.append(_plain(v, indent + "  "))
            else:
                lines.append(f"{indent}{k}: {_json_default(v) if isinstance(v, Decimal) else v}")
        return "\n".join(lines)
    if isinstance(obj, list):
        return "\n".join(_plain(v, indent) if isinstance(v, dict | list) else f"{indent}- {v}" for v in obj)
    return f"{indent}{obj}"


def _format_arg(p: argparse.ArgumentParser, choices: Sequence[str] = ("table", "json")) -> None:
    p.add_argument("--format", choices=choices, default="table", help="output format (default: table)")


def _cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow import stack

    result = {"up": stack.up, "down": stack.down, "status": stack.status}[args.action](settings)
    emit(result, args.format)
    return 0


def _cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow import producer, topics

    # Without its topic every send would fail one by one; create the pipeline's topics (as `run` does).
    topics.ensure_topics(settings)
    if args.file:
        report = producer.produce_file(settings, Path(args.file))
    else:
        from tallyflow import generator

        gen = generator.generate(args.generate, customers=args.customers, period=args.period,
                                 duplicate_rate=args.duplicate_rate, late_rate=args.late_rate, seed=args.seed)
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


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow import runner

    def progress(status: str, stats: Any) -> None:
        if args.verbose:
            print(f"job {status}; loaded {dict(stats.rows)}", file=sys.stderr)

    result = runner.run(settings, args.catalog, bounded=args.bounded, on_progress=progress, fresh=args.fresh)
    d = result.as_dict()
    rows = ", ".join(f"{k} {v}" for k, v in sorted(d["loaded"]["rows"].items())) or "nothing"
    settled = "".join(f"; finalized {n} invoices of {p} (settlement window passed)" for p, n in d["finalized"].items())
    emit(d, args.format, f"job {d['status']} in {d['seconds']} s; loaded {rows}{settled}")
    return 0 if result.status in ("FINISHED", "CANCELED") else 1


def _cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow import runner

    def progress(status: str, stats: Any) -> None:
        if args.verbose:
            print(f"loaded {dict(stats.rows)}", file=sys.stderr)

    emit(runner.load_forever(settings, args.catalog, on_progress=progress), args.format)
    return 0


def _cmd_invoice(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow import clickhouse, invoice

    client = clickhouse.ready(settings)
    if args.finalize_due:
        if args.period or args.customer or args.finalize or args.catalog:
            raise UserError("--finalize-due finalizes every due period; it takes no --period, --customer, "
                            "--finalize or --catalog")
        done = invoice.finalize_due(client, settings.settlement_window)
        emit({"settlement_window": str(settings.settlement_window), "finalized": done}, args.format,
             "\n".join(f"{p}: {n} invoices finalized" for p, n in done.items()) or "no period is due")
        return 0
    if not args.period:
        raise UserError("invoice needs --period YYYY-MM (or --finalize-due)")
    if args.catalog:
        from tallyflow import shadow

        if args.finalize:
            raise UserError("--catalog prices with a candidate catalog and stores nothing; it cannot --finalize")
        result = shadow.compare(client, args.period, args.catalog, customer=args.customer)
        emit(result, args.format, shadow.render(result))
        return 0
    if args.finalize:
        invoices = invoice.finalize(client, args.period, customer=args.customer)
    else:
        invoices = invoice.compute(client, args.period, customer=args.customer)
    emit([i.as_dict() for i in invoices], args.format, invoice.render_table(invoices))
    return 0


def _cmd_quote(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow import catalog, quote
    from tallyflow.events import InvalidEvent, parse_time

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
    result = quote.quote(catalog.load(args.catalog), args.plan, args.meter, args.quantity, at, filters)
    emit(result, args.format, quote.render(result))
    return 0


def _cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow import bench
    from tallyflow.settings import parse_duration

    if args.latency:
        from tallyflow import latency

        if args.rate is None or args.seconds is None:
            raise UserError("--latency needs --rate R and --seconds S")
        result = latency.run(settings, args.rate, args.seconds, args.warmup)
        emit(result, args.format, latency.render(result))
        return 0
    if args.events is None:
        raise UserError("bench needs --events N (throughput) or --latency --rate R --seconds S")

    result = bench.run(settings, args.events, args.customers, parse_duration(args.span, "--span"))
    emit(result, args.format, bench.render(result))
    return 0


def _cmd_grant(args: argparse.Namespace, settings: Settings) -> int:
    from decimal import InvalidOperation

    from tallyflow import credits

    try:
        amount = Decimal(args.credits)
    except InvalidOperation:
        raise UserError(f"--credits '{args.credits}' is not a decimal") from None
    effective = credits.parse_time(args.effective_at, "--effective-at") if args.effective_at else None
    if effective is None:
        import time

        effective = time.time_ns() // 1_000_000_000 * 1000  # now, whole seconds
    expires = credits.parse_time(args.expires_at, "--expires-at") if args.expires_at else None
    grant_id = args.grant_id or f"topup-{effective}"
    g = credits.GrantRecord(args.customer, grant_id, amount, args.priority, effective, expires)
    credits.publish_grant(settings, g)
    emit({"published": True, "customer": g.customer, "grant_id": g.grant_id, "credits": str(g.credits),
          "priority": g.priority, "effective_at": g.effective_at, "expires_at": g.expires_at}, args.format,
         f"published grant {g.grant_id} of {g.credits} credits to {g.customer}")
    return 0


def _cmd_balance(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow import balance, clickhouse, credits

    at = None
    if args.at:
        from datetime import UTC, datetime

        at = datetime.fromtimestamp(credits.parse_time(args.at, "--at") // 1000, UTC)
    result = balance.report(clickhouse.ready(settings), args.customer, at)
    emit(result, args.format, balance.render(result))
    return 0


def _cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow import clickhouse, reconcile

    result = reconcile.run(clickhouse.ready(settings), args.period)
    emit(result, args.format, reconcile.render(result))
    return 1 if result["discrepancies"] else 0


def _cmd_catalog(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow import catalog, catalog_store, clickhouse

    if args.action == "show":
        if args.file:
            raise UserError("catalog show takes no FILE: it shows the catalog in force")
        shown = catalog_store.in_force(clickhouse.ready(settings))
        emit(shown, args.format, catalog_store.render(shown))
        return 0
    if not args.file:
        raise UserError(f"catalog {args.action} needs the catalog FILE")
    if args.action == "validate":
        try:
            cat = catalog.load(args.file)
        except catalog.CatalogError as e:
            emit({"file": args.file, "valid": False, "problems": e.problems}, args.format,
                 "\n".join(f"{args.file}: {problem}" for problem in e.problems))
            return 1
        summary = {"file": args.file, "valid": True, "digest": cat.digest, "meters": len(cat.meters),
                   "plan_versions": len(cat.plans), "subscriptions": len(cat.subscriptions), "grants": len(cat.grants)}
        emit(summary, args.format, f"{args.file}: valid (digest {cat.digest}; {len(cat.meters)} meters, "
                                   f"{len(cat.plans)} plan versions, {len(cat.subscriptions)} subscriptions, "
                                   f"{len(cat.grants)} grants)")
        return 0
    cat = catalog.load(args.file)
    new = catalog_store.apply(clickhouse.ready(settings), cat, args.file)
    emit({"file": args.file, "digest": cat.digest, "new": new}, args.format,
         f"applied {args.file} (digest {cat.digest}{'' if new else ', stored before'}); it is the catalog in force")
    return 0


def _cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow import clickhouse

    client = clickhouse.ready(settings)
    columns, rows = clickhouse.run_sql(client, args.query)
    records = [dict(zip(columns, r, strict=True)) for r in rows]
    table = "\t".join(columns) + "\n" + "\n".join("\t".join(str(v) for v in r) for r in rows)
    emit(records, args.format, table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tallyflow", description="Usage-based billing on Kafka, PyFlink and ClickHouse.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("stack", help="start, stop or inspect the local Kafka broker (KRaft)")
    p.add_argument("action", choices=["up", "down", "status"])
    _format_arg(p)
    p.set_defaults(func=_cmd_stack)

    p = sub.add_parser("produce", help="publish usage events (JSON lines, or synthetic)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--file", help="JSON event per line (shared/CATALOG.md form); - for stdin")
    src.add_argument("--generate", type=int, metavar="N", help="publish N synthetic events")
    p.add_argument("--customers", type=int, default=5, help="synthetic customers (default 5)")
    p.add_argument("--duplicate-rate", type=float, default=0.0, help="share of events sent twice")
    p.add_argument("--late-rate", type=float, default=0.0, help="share of events sent hours late")
    p.add_argument("--period", help="month of the synthetic events, YYYY-MM (default: last month)")
    p.add_argument("--seed", type=int, default=7, help="generator seed (same seed, same event ids)")
    p.add_argument("--out", help="also write the synthetic events to this JSON-lines file")
    _format_arg(p)
    p.set_defaults(func=_cmd_produce)

    p = sub.add_parser("run", help="validate and apply the catalog, then run the metering job")
    p.add_argument("--catalog", required=True, help="catalog file (YAML or JSON)")
    p.add_argument("--bounded", action="store_true",
                   help="process what the topic holds now, land all of it, and return")
    p.add_argument("--fresh", action="store_true",
                   help="start without the pipeline's Flink state (dedup, windows, balances) from the "
                        "committed offsets; by default a run continues the newest checkpoint or savepoint")
    p.add_argument("--verbose", action="store_true", help="print progress to stderr")
    _format_arg(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("load", help="land the output of a job running on a Flink cluster into ClickHouse")
    p.add_argument("--catalog", help="also apply this catalog (invoices read it from ClickHouse)")
    p.add_argument("--verbose", action="store_true", help="print progress to stderr")
    _format_arg(p)
    p.set_defaults(func=_cmd_load)

    p = sub.add_parser("invoice", help="compute invoices for a billing period from ClickHouse")
    p.add_argument("--period", help="billing period, YYYY-MM")
    p.add_argument("--customer", help="only this customer")
    p.add_argument("--finalize", action="store_true",
                   help="store the invoices immutably (a finalized period's later usage is corrected next period)")
    p.add_argument("--finalize-due", action="store_true",
                   help="finalize every period whose settlement window (TALLYFLOW_SETTLEMENT_WINDOW) has passed")
    p.add_argument("--catalog", help="shadow pricing: price the period's stored events with this candidate "
                                     "catalog, beside the current invoices (stores nothing)")
    _format_arg(p)
    p.set_defaults(func=_cmd_invoice)

    p = sub.add_parser("quote", help="price a quantity under a plan, with the tier breakdown")
    p.add_argument("--catalog", required=True, help="catalog file (YAML or JSON)")
    p.add_argument("--plan", required=True, help="plan id")
    p.add_argument("--meter", required=True, help="meter id")
    p.add_argument("--quantity", required=True, help="the metered quantity U (a decimal)")
    p.add_argument("--at", help="price with the version in force at this time (default: now)")
    p.add_argument("--filter", action="append", help="key=value: the slice of a grouped meter to price")
    _format_arg(p)
    p.set_defaults(func=_cmd_quote)

    p = sub.add_parser("bench", help="end-to-end throughput against a read-and-discard baseline, or "
                                     "credit drawdown latency (--latency)")
    p.add_argument("--events", type=int, help="synthetic events to publish and process (throughput)")
    p.add_argument("--latency", action="store_true", help="measure publish -> balance update latency instead")
    p.add_argument("--rate", type=int, help="events per second to publish (--latency)")
    p.add_argument("--seconds", type=int, help="how long to publish at that rate, after the warm-up (--latency)")
    p.add_argument("--warmup", type=int, default=15, help="seconds published first and not counted (--latency)")
    p.add_argument("--customers", type=int, default=100, help="synthetic customers (default 100)")
    p.add_argument("--span", default="1d", help="event time the events spread over (default 1d)")
    _format_arg(p)
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("grant", help="publish a prepaid credit grant (top-up) to the grants topic")
    p.add_argument("--customer", required=True, help="customer id")
    p.add_argument("--credits", required=True, help="credits granted (a positive decimal)")
    p.add_argument("--grant-id", help="unique per customer; a resend with the same id is ignored "
                                      "(default: topup-<effective time>)")
    p.add_argument("--priority", type=int, default=0, help="lower is consumed first (default 0)")
    p.add_argument("--effective-at", help="ISO 8601 time, whole seconds (default: now)")
    p.add_argument("--expires-at", help="ISO 8601 time, whole seconds (default: never)")
    _format_arg(p)
    p.set_defaults(func=_cmd_grant)

    p = sub.add_parser("balance", help="a customer's credit grants: granted, consumed, remaining, expiry")
    p.add_argument("--customer", required=True, help="customer id")
    p.add_argument("--at", help="as of this ISO 8601 time (default: now)")
    _format_arg(p)
    p.set_defaults(func=_cmd_balance)

    p = sub.add_parser("reconcile", help="prove every event is counted once: events, windows, rated records, "
                                         "invoices and the credit ledger (exit 1 on any discrepancy)")
    p.add_argument("--period", required=True, help="billing period, YYYY-MM")
    _format_arg(p)
    p.set_defaults(func=_cmd_reconcile)

    p = sub.add_parser("catalog", help="validate a catalog file, apply it to ClickHouse without running the job, "
                                       "or show the catalog in force")
    p.add_argument("action", choices=["validate", "apply", "show"])
    p.add_argument("file", nargs="?", help="catalog file (YAML or JSON), for validate and apply")
    _format_arg(p)
    p.set_defaults(func=_cmd_catalog)

    p = sub.add_parser("sql", help="run a read query against tallyflow's ClickHouse (embedded or server)")
    p.add_argument("query", help="a SELECT statement, e.g. \"SELECT count() FROM events FINAL\"")
    _format_arg(p)
    p.set_defaults(func=_cmd_sql)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return args.func(args, settings)
    except UserError as e:
        print(f"tallyflow: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tallyflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

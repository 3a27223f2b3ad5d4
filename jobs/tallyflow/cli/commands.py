"""The subcommands: each takes the parsed arguments and the settings, prints its result and
returns the exit code. Heavy modules are imported inside each command, so `--help` and a usage
mistake answer at once."""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from tallyflow.cli.output import emit
from tallyflow.errors import UserError
from tallyflow.settings import Settings

# `reconcile` found a discrepancy; 1 stays "a service did not answer" or another failure.
RECONCILE_DISCREPANCY = 3


def cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow.ops import stack

    if args.security and args.action != "up":
        raise UserError("--security applies to `stack up` only")
    if args.action == "up":
        result = stack.up(settings, security=args.security)
    else:
        result = {"down": stack.down, "status": stack.status}[args.action](settings)
    emit(result, args.format)
    return 0


def cmd_cluster(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow.ops import cluster

    emit({"up": cluster.up, "down": cluster.down, "status": cluster.status}[args.action](settings), args.format)
    return 0


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow.wire import topics

    if args.action == "create":
        emit({"bootstrap": settings.bootstrap, "created": topics.ensure_topics(settings)}, args.format)
    else:
        emit({"bootstrap": settings.bootstrap, "topics": topics.existing(settings)}, args.format)
    return 0


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


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow import progress as bars
    from tallyflow.ops import runner

    # A bounded run on a terminal shows the records landed so far (--verbose prints them instead).
    bar, update = bars.counter("json" if args.verbose or not args.bounded else args.format, "landed", "rows")

    def progress(status: str, stats: Any) -> None:
        if args.verbose:
            print(f"job {status}; loaded {dict(stats.rows)}", file=sys.stderr)
        update(sum(stats.rows.values()), status)

    if args.cluster:
        import dataclasses

        settings = dataclasses.replace(settings, flink_cluster=args.cluster.rstrip("/"))
    if args.detach and (args.bounded or args.serve):
        raise UserError("--detach submits the job and returns: it takes neither --bounded nor --serve")
    try:
        result = runner.run(
            settings,
            args.catalog,
            bounded=args.bounded,
            on_progress=progress,
            fresh=args.fresh,
            serve=args.serve,
            detach=args.detach,
        )
    finally:
        bar.close()
    d = result.as_dict()
    rows = ", ".join(f"{k} {v}" for k, v in sorted(d["loaded"]["rows"].items())) or "nothing"
    settled = "".join(f"; finalized {n} invoices of {p} (settlement window passed)" for p, n in d["finalized"].items())
    jvm = " on a warm JVM" if d.get("jvm") == "reused" else ""
    emit(d, args.format, f"job {d['status']} in {d['seconds']} s{jvm}; loaded {rows}{settled}")
    return 0 if result.status in ("FINISHED", "CANCELED", "STOPPED", "SUBMITTED", "ALREADY_RUNNING") else 1


def cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow.ops import runner

    def progress(status: str, stats: Any) -> None:
        if args.verbose:
            print(f"loaded {dict(stats.rows)}", file=sys.stderr)

    emit(runner.load_forever(settings, args.catalog, on_progress=progress, serve=args.serve), args.format)
    return 0


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
        if args.period or args.customer or args.finalize or args.catalog:
            raise UserError(
                "--finalize-due finalizes every due period; it takes no --period, --customer, --finalize or --catalog"
            )
        done = invoice.finalize_due(client, settings.settlement_window)
        emit(
            {"settlement_window": str(settings.settlement_window), "finalized": done},
            args.format,
            "\n".join(f"{p}: {n} invoices finalized" for p, n in done.items()) or "no period is due",
        )
        return 0
    if not args.period:
        raise UserError("invoice needs --period YYYY-MM (or --finalize-due)")
    if args.catalog:
        from tallyflow.billing import shadow

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
    result = quote.quote(catalog.load(args.catalog), args.plan, args.meter, args.quantity, at, filters)
    emit(result, args.format, quote.render(result))
    return 0


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


def cmd_catalog(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow.core import catalog
    from tallyflow.land import catalog_store, clickhouse

    if args.action == "show":
        if args.file:
            raise UserError("catalog show takes no FILE: it shows the catalog in force")
        shown = catalog_store.in_force(clickhouse.reader(settings))
        emit(shown, args.format, catalog_store.render(shown))
        return 0
    if not args.file:
        raise UserError(f"catalog {args.action} needs the catalog FILE")
    if args.action == "validate":
        try:
            cat = catalog.load(args.file)
        except catalog.CatalogError as e:
            emit(
                {"file": args.file, "valid": False, "problems": e.problems},
                args.format,
                "\n".join(f"{args.file}: {problem}" for problem in e.problems),
            )
            return 1
        summary = {
            "file": args.file,
            "valid": True,
            "digest": cat.digest,
            "meters": len(cat.meters),
            "plan_versions": len(cat.plans),
            "subscriptions": len(cat.subscriptions),
            "grants": len(cat.grants),
        }
        emit(
            summary,
            args.format,
            f"{args.file}: valid (digest {cat.digest}; {len(cat.meters)} meters, "
            f"{len(cat.plans)} plan versions, {len(cat.subscriptions)} subscriptions, "
            f"{len(cat.grants)} grants)",
        )
        return 0
    cat = catalog.load(args.file)
    new = catalog_store.apply(clickhouse.ready(settings), cat, args.file)
    emit(
        {"file": args.file, "digest": cat.digest, "new": new},
        args.format,
        f"applied {args.file} (digest {cat.digest}{'' if new else ', stored before'}); it is the catalog in force",
    )
    return 0


def cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow.land import clickhouse

    columns, rows = clickhouse.run_sql(clickhouse.reader(settings), args.query)
    records = [dict(zip(columns, r, strict=True)) for r in rows]
    table = "\t".join(columns) + "\n" + "\n".join("\t".join(str(v) for v in r) for r in rows)
    emit(records, args.format, table)
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow.serve import server

    def ready(url: str) -> None:
        print(f"serving {url} (API docs {url}/docs, dashboard {url}/, metrics {url}/metrics); Ctrl-C stops")
        sys.stdout.flush()

    address = args.listen or args.address or "127.0.0.1:8900"
    if args.host or args.port:
        host, port = server.parse_address(address)
        address = f"{args.host or host}:{args.port or port}"
    server.serve_forever(settings, address, on_ready=ready)
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow.serve import tokens

    if args.value and args.action != "revoke":
        raise UserError(f"token {args.action} takes no TOKEN")
    if args.action == "create":
        if not args.customer:
            raise UserError("token create needs --customer C")
        made = tokens.create(settings, args.customer)
        emit(made, args.format, made["token"])
        return 0
    if args.action == "revoke":
        token = args.value or args.token
        if not token:
            raise UserError("token revoke needs the TOKEN (or the token's id from `tallyflow token list`)")
        done = tokens.revoke(settings, token)
        emit(done, args.format, f"revoked token {done['id']} of {done['customer']}")
        return 0
    listed = tokens.listing(settings)
    table = "\n".join(
        f"{t['id']}\t{t['customer']}\tcreated {t['created_at']}"
        + (f"\trevoked {t['revoked_at']}" if t["revoked_at"] else "")
        for t in listed
    )
    emit(listed, args.format, table or "no tokens")
    return 0

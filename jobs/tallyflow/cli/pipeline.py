"""`tallyflow stack`, `cluster`, `topics`, `run` and `load`: the services and the job, each command's
parser beside its handler."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tallyflow.cli.output import emit, format_arg
from tallyflow.errors import UserError
from tallyflow.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stack", help="start, stop or inspect the local Kafka broker (KRaft)")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument(
        "--security",
        choices=["plaintext", "sasl_ssl"],
        help="up: the broker's only listener; sasl_ssl makes a CA and certificate with keytool, "
        "SCRAM-SHA-512 users, and $TALLYFLOW_HOME/kafka/client.properties (default plaintext)",
    )
    format_arg(p)
    p.set_defaults(func=cmd_stack)

    p = sub.add_parser("cluster", help="start, stop or inspect a local Flink session cluster (PyFlink's distribution)")
    p.add_argument("action", choices=["up", "down", "status"])
    format_arg(p)
    p.set_defaults(func=cmd_cluster)

    p = sub.add_parser("topics", help="create or list the pipeline's Kafka topics (on any cluster)")
    p.add_argument("action", choices=["create", "list"])
    format_arg(p)
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("run", help="validate and apply the catalog, then run the metering job")
    p.add_argument("--catalog", required=True, help="catalog file (YAML or JSON)")
    p.add_argument(
        "--bounded", action="store_true", help="process what the topic holds now, land all of it, and return"
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start without the pipeline's Flink state (dedup, windows, balances) from the "
        "committed offsets; by default a run continues the newest checkpoint or savepoint",
    )
    p.add_argument("--verbose", action="store_true", help="print progress to stderr")
    p.add_argument(
        "--serve",
        metavar="HOST:PORT",
        help="also serve the API, dashboard and /metrics from this process (e.g. 127.0.0.1:8900)",
    )
    p.add_argument(
        "--cluster",
        metavar="URL",
        help="submit the job to this Flink cluster's REST API (TALLYFLOW_FLINK_CLUSTER) instead of a local MiniCluster",
    )
    p.add_argument(
        "--detach",
        action="store_true",
        help="with a cluster: submit the job and return once it runs (`tallyflow load` lands its output); "
        "nothing is submitted when this pipeline's job already runs there",
    )
    format_arg(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("load", help="land the output of a job running on a Flink cluster into ClickHouse")
    p.add_argument("--catalog", help="also apply this catalog (invoices read it from ClickHouse)")
    p.add_argument("--verbose", action="store_true", help="print progress to stderr")
    p.add_argument(
        "--serve", metavar="HOST:PORT", help="also serve the API, /healthz, /readyz and /metrics (the loader's probes)"
    )
    format_arg(p)
    p.set_defaults(func=cmd_load)


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

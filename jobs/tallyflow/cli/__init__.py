# PYTHON_ARGCOMPLETE_OK
"""The `tallyflow` command line. Mistakes get one line on stderr and exit code 2; failures of
the things it drives (a broker that does not answer, a bad catalog) exit 1; no tracebacks."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from tallyflow.cli import bench_command
from tallyflow.cli import commands as c
from tallyflow.cli.output import format_arg as _format_arg
from tallyflow.errors import UserError
from tallyflow.faults import InjectedCrash
from tallyflow.settings import Settings


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not the usage block
        print(f"tallyflow: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tallyflow", description="Usage-based billing on Kafka, PyFlink and ClickHouse.")
    parser.add_argument("--version", action="version", version=f"tallyflow {_version()}")
    parser.add_argument(
        "--format", dest="global_format", choices=["table", "json"], help="output format of any subcommand"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("stack", help="start, stop or inspect the local Kafka broker (KRaft)")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument(
        "--security",
        choices=["plaintext", "sasl_ssl"],
        help="up: the broker's only listener; sasl_ssl makes a CA and certificate with keytool, "
        "SCRAM-SHA-512 users, and $TALLYFLOW_HOME/kafka/client.properties (default plaintext)",
    )
    _format_arg(p)
    p.set_defaults(func=c.cmd_stack)

    p = sub.add_parser("cluster", help="start, stop or inspect a local Flink session cluster (PyFlink's distribution)")
    p.add_argument("action", choices=["up", "down", "status"])
    _format_arg(p)
    p.set_defaults(func=c.cmd_cluster)

    p = sub.add_parser("topics", help="create or list the pipeline's Kafka topics (on any cluster)")
    p.add_argument("action", choices=["create", "list"])
    _format_arg(p)
    p.set_defaults(func=c.cmd_topics)

    p = sub.add_parser("produce", help="publish usage events (JSON lines, or synthetic)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--file", help="JSON event per line (docs/catalog.md form); - for stdin")
    src.add_argument("--generate", type=int, metavar="N", help="publish N synthetic events")
    p.add_argument("--customers", type=int, default=5, help="synthetic customers (default 5)")
    p.add_argument("--duplicate-rate", type=float, default=0.0, help="share of events sent twice")
    p.add_argument("--late-rate", type=float, default=0.0, help="share of events sent hours late")
    p.add_argument("--period", help="month of the synthetic events, YYYY-MM (default: last month)")
    p.add_argument("--seed", type=int, default=7, help="generator seed (same seed, same event ids)")
    p.add_argument("--out", help="also write the synthetic events to this JSON-lines file")
    _format_arg(p)
    p.set_defaults(func=c.cmd_produce)

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
    _format_arg(p)
    p.set_defaults(func=c.cmd_run)

    p = sub.add_parser("load", help="land the output of a job running on a Flink cluster into ClickHouse")
    p.add_argument("--catalog", help="also apply this catalog (invoices read it from ClickHouse)")
    p.add_argument("--verbose", action="store_true", help="print progress to stderr")
    p.add_argument(
        "--serve", metavar="HOST:PORT", help="also serve the API, /healthz, /readyz and /metrics (the loader's probes)"
    )
    _format_arg(p)
    p.set_defaults(func=c.cmd_load)

    p = sub.add_parser("invoice", help="compute invoices for a billing period from ClickHouse")
    p.add_argument("--period", help="billing period, YYYY-MM")
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
    _format_arg(p)
    p.set_defaults(func=c.cmd_invoice)

    p = sub.add_parser("quote", help="price a quantity under a plan, with the tier breakdown")
    p.add_argument("--catalog", required=True, help="catalog file (YAML or JSON)")
    p.add_argument("--plan", required=True, help="plan id")
    p.add_argument("--meter", required=True, help="meter id")
    p.add_argument("--quantity", required=True, help="the metered quantity U (a decimal)")
    p.add_argument("--at", help="price with the version in force at this time (default: now)")
    p.add_argument("--filter", action="append", help="key=value: the slice of a grouped meter to price")
    _format_arg(p)
    p.set_defaults(func=c.cmd_quote)

    p = sub.add_parser(
        "bench",
        help="end-to-end throughput against a read-and-discard baseline, or credit drawdown latency (--latency)",
    )
    p.add_argument("--events", type=int, help="synthetic events to publish and process (throughput)")
    p.add_argument("--latency", action="store_true", help="measure publish -> balance update latency instead")
    p.add_argument(
        "--publish",
        action="store_true",
        help="publish --events synthetic events with produce --file and with a raw librdkafka producer",
    )
    p.add_argument(
        "--invoices",
        action="store_true",
        help="price a month's invoices over --events synthetic events in a throwaway store, against a plain GROUP BY",
    )
    p.add_argument("--rate", type=int, help="events per second to publish (--latency)")
    p.add_argument("--seconds", type=int, help="how long to publish at that rate, after the warm-up (--latency)")
    p.add_argument("--warmup", type=int, default=15, help="seconds published first and not counted (--latency)")
    p.add_argument("--customers", type=int, help="synthetic customers (default 100; --invoices: 10000)")
    p.add_argument("--span", default="1d", help="event time the events spread over (default 1d)")
    p.add_argument(
        "--concurrent-reads",
        type=float,
        default=0,
        metavar="R",
        help="another process reads the store R times a second while the pipeline runs (throughput)",
    )
    p.add_argument(
        "--restored-keys",
        type=int,
        default=0,
        metavar="K",
        help="first take K other events through the pipeline; the measured run restores that dedup state (throughput)",
    )
    _format_arg(p)
    p.set_defaults(func=bench_command.cmd_bench)

    p = sub.add_parser("grant", help="publish a prepaid credit grant (top-up) to the grants topic")
    p.add_argument("--customer", required=True, help="customer id")
    p.add_argument("--credits", required=True, help="credits granted (a positive decimal)")
    p.add_argument(
        "--grant-id", help="unique per customer; a resend with the same id is ignored (default: topup-<effective time>)"
    )
    p.add_argument("--priority", type=int, default=0, help="lower is consumed first (default 0)")
    p.add_argument("--effective-at", help="ISO 8601 time, whole seconds (default: now)")
    p.add_argument("--expires-at", help="ISO 8601 time, whole seconds (default: never)")
    _format_arg(p)
    p.set_defaults(func=c.cmd_grant)

    p = sub.add_parser("balance", help="a customer's credit grants: granted, consumed, remaining, expiry")
    p.add_argument("--customer", required=True, help="customer id")
    p.add_argument("--at", help="as of this ISO 8601 time (default: now)")
    _format_arg(p)
    p.set_defaults(func=c.cmd_balance)

    p = sub.add_parser(
        "reconcile",
        help="prove every event is counted once: events, windows, rated records, "
        "invoices and the credit ledger (exit 3 on a discrepancy, 1 when a service does not answer)",
    )
    p.add_argument("--period", required=True, help="billing period, YYYY-MM")
    _format_arg(p)
    p.set_defaults(func=c.cmd_reconcile)

    p = sub.add_parser(
        "catalog",
        help="validate a catalog file, apply it to ClickHouse without running the job, or show the catalog in force",
    )
    p.add_argument("action", choices=["validate", "apply", "show"])
    p.add_argument("file", nargs="?", help="catalog file (YAML or JSON), for validate and apply")
    _format_arg(p)
    p.set_defaults(func=c.cmd_catalog)

    p = sub.add_parser(
        "serve", help="serve the JSON API, the usage dashboard and /metrics (binds 127.0.0.1 by default)"
    )
    p.add_argument("listen", nargs="?", metavar="HOST:PORT", help="where to listen (default 127.0.0.1:8900)")
    p.add_argument("--address", "--serve", dest="address", metavar="HOST:PORT", help="the same, as an option")
    p.add_argument("--host", help="host to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8900)")
    _format_arg(p)
    p.set_defaults(func=c.cmd_serve)

    p = sub.add_parser("token", help="create, list or revoke the API's customer tokens")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("--customer", help="the customer the new token reads (create)")
    p.add_argument("value", nargs="?", metavar="TOKEN", help="the token, or its id, to revoke (revoke)")
    p.add_argument("--token", help="the same, as an option")
    _format_arg(p)
    p.set_defaults(func=c.cmd_token)

    p = sub.add_parser("sql", help="run a read query against tallyflow's ClickHouse (embedded or server)")
    p.add_argument("query", help='a SELECT statement, e.g. "SELECT count() FROM events FINAL"')
    _format_arg(p)
    p.set_defaults(func=c.cmd_sql)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tallyflow")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:  # shell completion: `eval "$(register-python-argcomplete tallyflow)"`
        import argcomplete

        argcomplete.autocomplete(parser)
    except ImportError:
        pass
    args = parser.parse_args(argv)
    if hasattr(args, "format"):
        args.format = args.format or args.global_format or "table"
    try:
        settings = Settings.from_env()
        return args.func(args, settings)
    except InjectedCrash:
        # TALLYFLOW_FAULT=loader-after-insert: die between an insert and its commit, like a kill.
        sys.stdout.flush()
        os._exit(137)
    except UserError as e:
        print(f"tallyflow: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tallyflow: interrupted", file=sys.stderr)
        return 130


def _reserve_stdout() -> None:
    """Keep file descriptor 1 for the command's own output. The JVM that PyFlink starts, and any
    other child, inherits it: a Java stack trace printed while a job shuts down once landed after
    the `--format json` document and broke every script reading it. Children now write to stderr."""
    try:
        out = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no stdout or stderr to speak of (a detached daemon): nothing to protect
        return
    line = 1 if sys.stdout.line_buffering else -1  # a terminal sees each line as it is printed
    sys.stdout = os.fdopen(out, "w", buffering=line, encoding=sys.stdout.encoding)


def console() -> NoReturn:
    """The `tallyflow` executable (and `python -m tallyflow.cli`)."""
    _reserve_stdout()
    sys.exit(main())


if __name__ == "__main__":
    console()

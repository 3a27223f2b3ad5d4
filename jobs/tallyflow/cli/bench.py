"""`tallyflow bench`: its four modes (end to end, --publish, --invoices, --latency) and their
progress line; the benchmarks themselves are in tools/."""

from __future__ import annotations

import argparse
from functools import partial
from types import ModuleType

from tallyflow.cli.output import emit, format_arg
from tallyflow.cli.types import integer, number
from tallyflow.errors import UserError
from tallyflow.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="end-to-end throughput against a read-and-discard baseline, or credit drawdown latency (--latency)",
    )
    p.add_argument("--events", type=integer, help="synthetic events to publish and process (throughput)")
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
    p.add_argument(
        "--contracts",
        choices=("none", "mixed"),
        default="none",
        help="--invoices: mixed = half of the customers anchored, some with coupons and taxes, and two "
        "dimensions (a model, a user id) on every event",
    )
    p.add_argument("--rate", type=integer, help="events per second to publish (--latency)")
    p.add_argument("--seconds", type=integer, help="how long to publish at that rate, after the warm-up (--latency)")
    p.add_argument("--warmup", type=integer, default=15, help="seconds published first and not counted (--latency)")
    p.add_argument("--customers", type=integer, help="synthetic customers (default 100; --invoices: 10000)")
    p.add_argument("--span", default="1d", help="event time the events spread over (default 1d)")
    p.add_argument(
        "--concurrent-reads",
        type=number,
        default=0,
        metavar="R",
        help="another process reads the store R times a second while the pipeline runs (throughput)",
    )
    p.add_argument(
        "--restored-keys",
        type=integer,
        default=0,
        metavar="K",
        help="first take K other events through the pipeline; the measured run restores that dedup state (throughput)",
    )
    format_arg(p)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow.settings import parse_duration
    from tallyflow.tools import bench

    if args.restored_keys < 0 or (args.restored_keys and (args.publish or args.invoices or args.latency)):
        raise UserError("--restored-keys K is for the throughput bench, and K must not be negative")
    if args.latency:
        from tallyflow.tools import latency

        if args.rate is None or args.seconds is None:
            raise UserError("--latency needs --rate R and --seconds S")
        result = latency.run(settings, args.rate, args.seconds, args.warmup)
        emit(result, args.format, latency.render(result))
        return 0
    if args.contracts != "none" and not args.invoices:
        raise UserError("--contracts is for the invoice bench (--invoices)")
    if args.events is None:
        raise UserError("bench needs --events N (throughput, or --invoices) or --latency --rate R --seconds S")
    if args.events <= 0 or (args.customers is not None and args.customers <= 0):
        raise UserError("--events and --customers must be positive")

    from tallyflow import progress
    from tallyflow.tools import invoice_bench, publish_bench

    # Each mode: its module, its progress line's phases, and how it runs given `on_phase`.
    module: ModuleType
    if args.publish:
        module, phases = publish_bench, 3 * publish_bench.ROUNDS
        start = partial(publish_bench.run, settings, args.events, args.customers or 100)
    elif args.invoices:
        module, phases = invoice_bench, 2 + 2 * invoice_bench.ROUNDS + 1
        start = partial(invoice_bench.run, args.events, args.customers or 10_000, contracts=args.contracts)
    else:
        module, phases = bench, 5 if args.restored_keys else 4
        start = partial(
            bench.run,
            settings,
            args.events,
            args.customers or 100,
            parse_duration(args.span, "--span"),
            concurrent_reads=args.concurrent_reads,
            restored_keys=args.restored_keys,
        )
    bar = progress.bar(args.format, "bench", total=phases, unit="phases")
    try:
        result = start(on_phase=lambda name: (bar.set_description_str(name), bar.update(1)))
    finally:
        bar.close()
    emit(result, args.format, module.render(result))
    return 0

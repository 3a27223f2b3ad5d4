"""`tallyflow catalog validate | apply | show`: its parser beside its handler."""

from __future__ import annotations

import argparse

from tallyflow.cli.output import emit, format_arg
from tallyflow.errors import UserError
from tallyflow.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "catalog",
        help="validate a catalog file, apply it to ClickHouse without running the job, or show the catalog in force",
    )
    p.add_argument("action", choices=["validate", "apply", "show"])
    p.add_argument("file", nargs="?", help="catalog file (YAML or JSON), for validate and apply")
    format_arg(p)
    p.set_defaults(func=cmd_catalog)


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

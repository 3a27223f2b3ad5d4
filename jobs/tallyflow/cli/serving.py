"""`tallyflow serve`, `token` and `sql`: the API and the read door into the store, each parser
beside its handler."""

from __future__ import annotations

import argparse
import sys

from tallyflow.cli.output import emit, format_arg
from tallyflow.cli.types import integer
from tallyflow.errors import UserError
from tallyflow.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="serve the JSON API, the usage dashboard and /metrics (binds 127.0.0.1 by default)"
    )
    p.add_argument("listen", nargs="?", metavar="HOST:PORT", help="where to listen (default 127.0.0.1:8900)")
    p.add_argument("--address", "--serve", dest="address", metavar="HOST:PORT", help="the same, as an option")
    p.add_argument("--host", help="host to bind (default 127.0.0.1)")
    p.add_argument("--port", type=integer, help="port to listen on (default 8900)")
    format_arg(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("token", help="create, list or revoke the API's customer tokens")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("--customer", help="the customer the new token reads (create)")
    p.add_argument(
        "--force", action="store_true", help="create a token for a customer the catalog in force does not know yet"
    )
    p.add_argument("value", nargs="?", metavar="TOKEN", help="the token, or its id, to revoke (revoke)")
    p.add_argument("--token", help="the same, as an option")
    format_arg(p)
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("sql", help="run a read query against tallyflow's ClickHouse (embedded or server)")
    p.add_argument("query", help='a SELECT statement, e.g. "SELECT count() FROM events FINAL"')
    format_arg(p)
    p.set_defaults(func=cmd_sql)


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
        made = tokens.create(settings, args.customer, known=None if args.force else _known_customers(settings))
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


def _known_customers(settings: Settings) -> set[str]:
    """The customers of the catalog in force (the store's), or one line saying why they are unknown."""
    from tallyflow.land import clickhouse

    try:
        rows = clickhouse.query(clickhouse.reader(settings), "serve/customers", {"customer": ""})
    except UserError as e:
        raise UserError(
            f"cannot check the customer against the catalog in force ({e}); --force skips the check"
        ) from None
    return {r["customer_id"] for r in rows}


def cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    from tallyflow.land import clickhouse

    columns, rows = clickhouse.run_sql(clickhouse.reader(settings), args.query)
    records = [dict(zip(columns, r, strict=True)) for r in rows]
    table = "\t".join(columns) + "\n" + "\n".join("\t".join(str(v) for v in r) for r in rows)
    emit(records, args.format, table)
    return 0

"""ClickHouse through clickhouse-connect only: embedded chdb (chdb:///path) or a server (http(s)://).

An embedded chdb store is locked by one process at a time, so the process that loads (`run`) is
also the one that answers; other commands get a one-line error telling them to use a server for
concurrent access.
"""

from __future__ import annotations

import logging
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from tallyflow.errors import UserError
from tallyflow.settings import REPO_ROOT, Settings

SQL_DIR = REPO_ROOT / "sql"
_clients: dict[str, Client] = {}
# Applied to every query: exact decimals and JSON input the way the job writes it.
QUERY_SETTINGS = {"date_time_input_format": "best_effort"}


def redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def connect(settings: Settings) -> Client:
    # The driver logs each failed attempt; tallyflow reports the failure once, as one line.
    logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)
    url = settings.clickhouse_url
    if url in _clients:
        return _clients[url]
    try:
        if url.startswith("chdb://"):
            path = Path(url[len("chdb://"):])
            path.mkdir(parents=True, exist_ok=True)
            client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
        elif url.startswith(("http://", "https://")):
            client = clickhouse_connect.get_client(dsn=url, connect_timeout=5, send_receive_timeout=300)
        else:
            raise UserError(f"TALLYFLOW_CLICKHOUSE_URL '{redacted(url)}' must start with chdb://, http:// or https://")
    except UserError:
        raise
    except Exception as e:  # the driver raises many types; all mean "not reachable"
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Cannot lock file" in msg:
            raise UserError(f"the chdb store {url} is in use by another process (a running `tallyflow run`?); "
                            "embedded ClickHouse serves one process: use a ClickHouse server for concurrent "
                            "access") from None
        raise UserError(f"ClickHouse at {redacted(url)} does not answer: {msg}") from None
    _clients[url] = client
    return client


def ready(settings: Settings) -> Client:
    """A client whose database has every table of sql/ddl/ (created or upgraded as needed)."""
    client = connect(settings)
    migrate(client)
    return client


def probe(settings: Settings) -> dict:
    try:
        version = connect(settings).server_version
        return {"answers": True, "version": version}
    except UserError as e:
        return {"answers": False, "error": str(e)}


@cache
def sql_text(name: str) -> str:
    """The text of sql/<name>.sql."""
    return (SQL_DIR / f"{name}.sql").read_text()


def migrate(client: Client) -> list[str]:
    """Runs every sql/ddl/*.sql in order (each idempotent: CREATE ... IF NOT EXISTS)."""
    done = []
    for path in sorted((SQL_DIR / "ddl").glob("*.sql")):
        client.command(_strip_comments(path.read_text()))
        done.append(path.stem)
    return done


def _strip_comments(sql: str) -> str:
    return re.sub(r"^\s*--.*$", "", sql, flags=re.M).strip().rstrip(";")


def run_sql(client: Client, sql: str) -> tuple[list[str], list[tuple]]:
    """An ad-hoc read query (the `tallyflow sql` command); ClickHouse errors become one line."""
    try:
        result = client.query(sql, settings={**QUERY_SETTINGS, "readonly": 2})
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"query failed: {first}") from None
    return list(result.column_names), list(result.result_rows)


def query(client: Client, name: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Runs sql/<name>.sql with server-side parameters; returns rows as dicts."""
    try:
        result = client.query(sql_text(name), parameters=parameters or {}, settings=QUERY_SETTINGS)
    except Exception as e:  # clickhouse-connect wraps server and chdb errors alike
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"sql/{name}.sql failed: {first}") from None
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

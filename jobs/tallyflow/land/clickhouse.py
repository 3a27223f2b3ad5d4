"""ClickHouse through clickhouse-connect only: embedded chdb (chdb:///path) or a server (http(s)://).

An embedded chdb store is locked by one process at a time. The process that holds it (`run`,
`load`, `serve`) answers other processes' reads (shared_store.py); read commands open a
`reader`, which never runs DDL, and only `ready` (run, load, catalog apply, finalizing) migrates.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from collections import namedtuple
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from tallyflow.errors import UserError
from tallyflow.land import replicated, shared_store, stand_in
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


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def connect(settings: Settings) -> Client:
    # The driver logs each failed attempt; tallyflow reports the failure once, as one line.
    logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)
    url = settings.clickhouse_url
    if url in _clients:
        return _clients[url]
    try:
        if url.startswith("chdb://"):
            path = Path(url[len("chdb://") :])
            path.mkdir(parents=True, exist_ok=True)
            with _quiet_stderr():  # chdb prints its own copy of a lock error; ours is one line
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
            raise UserError(
                f"the chdb store {url} is in use by another process (a running `tallyflow run`?); "
                "embedded ClickHouse serves one process: use a ClickHouse server for concurrent "
                "access"
            ) from None
        raise UserError(f"ClickHouse at {redacted(url)} does not answer: {msg}") from None
    _clients[url] = client
    return client


def _busy(e: UserError, settings: Settings) -> bool:
    """A store another process has open: chdb reports a lock, or an engine it cannot open."""
    busy = "in use by another process" in str(e) or "Unable to open the chdb engine" in str(e)
    return busy and settings.clickhouse_url.startswith("chdb://")


def _wait_for_store(settings: Settings, wait_s: float, holder: Any = None) -> Any:
    """connect(), waiting `wait_s` for a store another process has open for a moment; with
    `holder` (a function), the holder's reads as soon as it publishes them."""
    deadline = time.monotonic() + wait_s
    while True:
        remote = holder() if holder else None
        if remote is not None:
            return remote
        try:
            return connect(settings)
        except UserError as e:
            if not _busy(e, settings) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # bounded by the deadline


def ready(settings: Settings, wait_s: float = 10.0) -> Client:
    """A client whose database has every table of sql/ddl/ (created or upgraded as needed)."""
    client = _wait_for_store(settings, wait_s)
    migrate(client, settings.clickhouse_cluster)
    retention(client, settings)
    return client


# The tables that may hold what the pipeline refused to bill, with the time each row counts from.
RETAINED = {"rejects": "kafka_time", "duplicates": "event_time"}


def retention(client: Client, settings: Settings) -> None:
    """TALLYFLOW_REJECTS_TTL / TALLYFLOW_DUPLICATES_TTL: rows of those tables older than this are
    deleted by ClickHouse's merges (rejects keep the raw record bytes, personal data included).
    Unset: kept forever, and a TTL set earlier is removed."""
    on_cluster = f" ON CLUSTER `{settings.clickhouse_cluster}`" if settings.clickhouse_cluster else ""
    for table, column in RETAINED.items():
        ttl = settings.rejects_ttl if table == "rejects" else settings.duplicates_ttl
        live = client.query(
            "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
            parameters={"t": table},
        ).result_rows[0][0]
        if ttl is not None:
            seconds = int(ttl.total_seconds())
            client.command(
                f"ALTER TABLE {table}{on_cluster} MODIFY TTL toDateTime({column}) + INTERVAL {seconds} SECOND"
            )
        elif " TTL " in live:
            client.command(f"ALTER TABLE {table}{on_cluster} REMOVE TTL")


class ReadOnly:
    """What read commands query through: every query is one read-only SELECT (shared_store.guarded),
    on this process's connection or on the holder's. It has no `command` and no `insert`."""

    def __init__(self, inner: Any, settings: Settings):
        self.inner = inner
        self.url = settings.clickhouse_url
        self.limits = shared_store.read_limits(settings)

    def query(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> Any:
        # Reads need none of the insert settings; a read-only query may not change settings anyway.
        # The holder guards what it is sent itself (and never trusts a client to have done it).
        statement = _strip_comments(sql)
        if isinstance(self.inner, shared_store.RemoteReads):  # the holder guards, within its own limits
            return self.inner.query(statement, parameters=parameters or {}, limits=self.limits)
        return self.inner.query(shared_store.guarded(statement, self.limits), parameters=parameters or {})

    def command(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        raise UserError("refused: a read command does not write (only run, load and catalog apply do)")

    insert = command


def reader(settings: Settings) -> Client:
    """A read-only client for the read commands (invoice, balance, reconcile, sql, catalog show,
    serve): no migration, no DDL. In embedded mode, while another process holds the store, its
    queries go to that process and see what it has landed (up to its last loader batch)."""
    # A holder publishes its read address a moment after it opens the store; a reader's moment ends.
    client = _wait_for_store(settings, 15, lambda: shared_store.connect(settings))
    if isinstance(client, shared_store.RemoteReads):
        return cast(Client, ReadOnly(client, settings))
    try:
        found = client.query(
            "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'catalog_applied'"
        ).result_rows[0][0]
    except Exception as e:
        raise UserError(f"ClickHouse at {redacted(settings.clickhouse_url)} does not answer: {e}") from None
    if not found:
        raise UserError(
            f"ClickHouse at {redacted(settings.clickhouse_url)} has no tallyflow tables yet: "
            "`tallyflow run`, `load` or `catalog apply` creates them"
        )
    return cast(Client, ReadOnly(client, settings))


def shadow_reader(settings: Settings) -> Client:
    """The connection shadow pricing queries through: this process's own (no DDL is run), since
    its query reads the candidate catalog from `format()` table functions, which the read-only
    guard refuses. While another process holds the embedded store it cannot open it: one line."""
    if shared_store.connect(settings) is not None:
        raise UserError(
            "shadow pricing (`invoice --catalog`) needs the embedded store to itself: stop the running "
            "`tallyflow run` (or `serve`) first, or use a ClickHouse server"
        )
    reader(settings)  # the tables exist, or one line saying they do not
    return connect(settings)


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


def ddl(cluster: str | None = None) -> list[tuple[str, str]]:
    """sql/ddl/*.sql in order, as (name, statement); with a cluster name, in their ON CLUSTER,
    Replicated form (land/replicated.py)."""
    engines: dict[str, str] = {}
    out = []
    for path in sorted((SQL_DIR / "ddl").glob("*.sql")):
        statement = _strip_comments(path.read_text())
        out.append((path.stem, replicated.on_cluster(statement, cluster, engines) if cluster else statement))
    return out


def migrate(client: Client, cluster: str | None = None) -> list[str]:
    """Runs every sql/ddl/*.sql in order (each idempotent: CREATE ... IF NOT EXISTS). A table whose
    partition or sorting key changed since it was created is rebuilt under the new keys first
    (on one node; on a cluster that is refused, as a rebuild there is an operator's decision)."""
    live = {
        r[0]: (r[1], r[2])
        for r in client.query(
            "SELECT name, partition_key, sorting_key FROM system.tables WHERE database = currentDatabase()"
        ).result_rows
    }
    done = []
    for (name, statement), (_, local) in zip(ddl(cluster), ddl(), strict=True):
        table = _keys_changed(local, live)
        if table and cluster:
            raise UserError(
                f"table {table} was made with other partition or sorting keys than sql/ddl/{name}.sql; "
                "on a cluster, rebuild it by hand (docs/architecture.md)"
            )
        if table:
            _rebuild(client, table, statement)
        else:
            client.command(statement)
        done.append(name)
    return done


_CREATE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)\s*\(")
_PARTITION = re.compile(r"^PARTITION BY (.+)$", re.M)
_ORDER = re.compile(r"^ORDER BY \(?(.+?)\)?$", re.M)


def _keys_changed(statement: str, live: dict[str, tuple[str, str]]) -> str | None:
    """The table this CREATE makes, if it exists with other partition or sorting keys."""
    created = _CREATE.match(statement)
    if not created or created.group(1) not in live:
        return None
    partition = _PARTITION.search(statement)
    order = _ORDER.search(statement)
    want = (partition.group(1) if partition else "", order.group(1) if order else "")
    norm = lambda keys: tuple(re.sub(r"\s+", "", k) for k in keys)  # noqa: E731
    return created.group(1) if norm(want) != norm(live[created.group(1)]) else None


def _rebuild(client: Client, table: str, statement: str) -> None:
    """Moves a table's rows into a new table made by `statement` (ReplacingMergeTree collapses
    only inside one partition: a changed partition key needs the rows rewritten). Safe to repeat:
    the keyed tables collapse rows copied twice."""
    old = f"{table}__rebuild"
    client.command(f"RENAME TABLE {table} TO {old}")
    client.command(statement)
    columns = [
        r[0]
        for r in client.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
            "AND name IN (SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {o:String}) "
            "ORDER BY position",
            parameters={"t": table, "o": old},
        ).result_rows
    ]
    names = ", ".join(f"`{c}`" for c in columns)
    client.command(f"INSERT INTO {table} ({names}) SELECT {names} FROM {old}")
    client.command(f"DROP TABLE {old}")


def _strip_comments(sql: str) -> str:
    return re.sub(r"^\s*--.*$", "", sql, flags=re.M).strip().rstrip(";")


def run_sql(client: Client, sql: str) -> tuple[list[str], list[tuple]]:
    """An analyst's query (the `tallyflow sql` command) on a `reader`: one statement, run
    read-only, so it can neither change the store nor reach files, URLs or other servers through
    table functions; ClickHouse errors become one line. On its own connection the whole connection
    is made read-only first (chdb runs every statement of a multi-statement text, and this process
    asks nothing else afterwards), so SHOW and DESCRIBE work too; through the process that holds
    the store, the query runs as one guarded SELECT."""
    statement = one_statement(sql)
    inner = client.inner if isinstance(client, ReadOnly) else client
    limits = client.limits if isinstance(client, ReadOnly) else {}
    remote = isinstance(inner, shared_store.RemoteReads)
    try:
        if isinstance(inner, shared_store.RemoteReads):
            result: Any = inner.query(statement, limits=limits)  # the holder runs it as one guarded SELECT
        else:
            if limits:  # before readonly, which forbids changing them
                inner.command("SET " + ", ".join(f"{k} = {v!r}" for k, v in limits.items()))
            with contextlib.suppress(Exception):  # a server user may already be read-only: then it is
                inner.command("SET readonly = 1")
            result = inner.query(statement, settings={"readonly": 1})
    except UserError:
        raise
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "readonly mode" in first or "READONLY" in first:
            raise UserError(
                "refused: `tallyflow sql` runs read-only queries only (no writes, DDL, settings or "
                "file, url and remote table functions)"
            ) from None
        if remote and "Syntax error" in first:
            raise UserError(
                "refused: while another process holds the embedded store, `tallyflow sql` answers one "
                f"SELECT (or WITH ... SELECT) query: {first}"
            ) from None
        raise UserError(f"query failed: {first}") from None
    return list(result.column_names), [tuple(r) for r in result.result_rows]


def one_statement(sql: str) -> str:
    """The text's only statement (a trailing ';' allowed); a second statement is refused. Scans
    past string literals, quoted identifiers and comments, where a ';' does not end a statement."""
    i, n, end = 0, len(sql), None
    while i < n:
        c = sql[i]
        if c in "'\"`":
            i += 1
            while i < n and sql[i] != c:
                i += 2 if sql[i] == "\\" else 1
        elif sql.startswith(("--", "# ", "#!"), i):  # ClickHouse's line comments
            i = sql.find("\n", i) if sql.find("\n", i) >= 0 else n
        elif sql.startswith("/*", i):
            i = sql.find("*/", i + 2) + 1 if sql.find("*/", i + 2) >= 0 else n
        elif c == ";" and end is None:
            end = i
        elif end is not None and not c.isspace():
            raise UserError("refused: `tallyflow sql` takes one statement (found more after the first ';')")
        i += 1
    statement = sql[:end] if end is not None else sql
    if not statement.strip():
        raise UserError("refused: no statement given")
    return statement


def query(
    client: Client,
    name: str,
    parameters: dict[str, Any] | None = None,
    tables: dict[str, list[tuple]] | None = None,
    tuples: bool = False,
) -> list[Any]:
    """Runs sql/<name>.sql with server-side parameters; returns rows as dicts, or as named tuples
    (about a fifth of the cost a row: 50,000 invoice lines). `tables` stand in for stored tables
    for this query only (land/stand_in.py: shadow pricing with a candidate catalog)."""
    sql = sql_text(name)
    if tables:
        sql = stand_in.with_tables(client, _strip_comments(sql), tables)
    try:
        result = client.query(sql, parameters=parameters or {}, settings=QUERY_SETTINGS)
    except Exception as e:  # clickhouse-connect wraps server and chdb errors alike
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"sql/{name}.sql failed: {first}") from None
    if tuples:
        return list(map(namedtuple("row", result.column_names)._make, result.result_rows))  # type: ignore[attr-defined]
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

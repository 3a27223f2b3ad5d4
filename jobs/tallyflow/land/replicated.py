"""sql/ddl/ for a ClickHouse cluster (TALLYFLOW_CLICKHOUSE_CLUSTER=NAME): every statement runs
ON CLUSTER, every MergeTree becomes its Replicated twin under
/clickhouse/tables/{shard}/{database}/<table> with replica {replica} (the server's macros), and
`non_replicated_deduplication_window` becomes `replicated_deduplication_window`, so the loader's
insert deduplication tokens keep collapsing a replayed batch on any replica.

Readers query these tables directly, not through Distributed tables: tallyflow's layout is one
shard with any number of replicas (every replica holds every row), which a billing store's size
allows for a long time (docs/architecture.md, "ClickHouse beyond one node"). The ReplacingMergeTree
keys all begin with customer_id, so when one shard no longer suffices, the shard key is
cityHash64(customer_id): a customer's rows, and with them its FINAL collapsing and its invoice,
stay on one shard. That layout is not built here.
"""

from __future__ import annotations

import re

PATH = "/clickhouse/tables/{{shard}}/{{database}}/{table}"
_ENGINE = re.compile(r"ENGINE = (Replacing|Summing|Aggregating|Collapsing)?MergeTree(\(([^)]*)\))?")
_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)")
_AS_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+) AS (\w+)\s*$")


def on_cluster(statement: str, cluster: str, engines: dict[str, str] | None = None) -> str:
    """One sql/ddl statement (comments stripped) for the cluster. `engines` maps each table made
    so far to its engine clause (ENGINE ... to the end), which `CREATE TABLE t AS src` needs: a
    copied Replicated engine would name src's replication path."""
    quoted = f"`{cluster}`"
    if m := _AS_TABLE.match(statement):
        table, source = m.groups()
        if engines is None or source not in engines:
            raise ValueError(f"{table} copies {source}, whose engine is not known yet")
        return f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER {quoted} AS {source}\n" + _replicated(
            engines[source], table
        )
    if m := _CREATE_TABLE.match(statement):
        table = m.group(1)
        head, sep, tail = statement.partition("\nENGINE = ")
        engine = _replicated(sep.lstrip("\n") + tail, table)
        if engines is not None:
            engines[table] = sep.lstrip("\n") + tail
        return (
            head.replace(
                f"CREATE TABLE IF NOT EXISTS {table}", f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER {quoted}", 1
            )
            + "\n"
            + engine
        )
    for pattern in (r"^(ALTER TABLE \w+)", r"^(CREATE VIEW IF NOT EXISTS \w+)", r"^(CREATE OR REPLACE FUNCTION \w+)"):
        if re.match(pattern, statement):
            return re.sub(pattern, lambda x: f"{x.group(1)} ON CLUSTER {quoted}", statement, count=1)
    raise ValueError(f"no ON CLUSTER form for: {statement.splitlines()[0]}")


def _replicated(engine_clause: str, table: str) -> str:
    def engine(m: re.Match) -> str:
        args = [f"'{PATH.format(table=table)}'", "'{replica}'", *([m.group(3)] if m.group(3) else [])]
        return f"ENGINE = Replicated{m.group(1) or ''}MergeTree({', '.join(args)})"

    out = _ENGINE.sub(engine, engine_clause, count=1)
    return out.replace("non_replicated_deduplication_window", "replicated_deduplication_window")

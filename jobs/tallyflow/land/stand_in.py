"""Stand-in tables for one query: rows given in Python take the place of stored tables (shadow
pricing prices a candidate catalog this way, land/clickhouse.query)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client


def with_tables(client: Client, body: str, tables: dict[str, list[tuple]]) -> str:
    """`body` (a query without comments) with each of `tables` (name -> rows in the table's column
    order) as a WITH clause of the same name, which ClickHouse resolves before the stored table, so
    nothing stored is read for it or written."""
    if not body.startswith("WITH"):
        raise ValueError("only a query that starts with WITH can take stand-in tables")
    clauses = []
    for table, rows in tables.items():
        columns = client.query(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
            "AND table = {t:String} ORDER BY position",
            parameters={"t": table},
        ).result_rows
        structure = ", ".join(f"`{n}` {t}" for n, t in columns)
        data = "\n".join(
            json.dumps(dict(zip((n for n, _ in columns), row, strict=False)), default=_json_value) for row in rows
        )
        clauses.append(f"{table} AS (SELECT * FROM format(JSONEachRow, {_literal(structure)}, {_literal(data)}))")
    return "WITH\n    " + ",\n    ".join(clauses) + "," + body[len("WITH") :]


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _json_value(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    raise TypeError(type(v).__name__)

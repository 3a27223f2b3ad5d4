"""Each output row is defined once (core/rows.py): the DDL, the Python row types, the drawdown's
fields and the JVM router's documents agree with it, and the loader refuses a field a table does
not have instead of dropping it."""

from __future__ import annotations

import re

import pytest

from tallyflow.core import drawdown, rows
from tallyflow.core.alerts import UsageSignal
from tallyflow.core.rating import RatedRecord
from tallyflow.land import loader
from tallyflow.settings import REPO_ROOT

ROUTER = (REPO_ROOT / "jobs/jvm/src/main/java/io/tallyflow/route/RouteEvents.java").read_text()


def table_columns(client, table: str) -> tuple[str, ...]:
    return tuple(
        r[0]
        for r in client.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String}"
            " ORDER BY position",
            parameters={"t": table},
        ).result_rows
    )


@pytest.mark.parametrize("shape", rows.SHAPES.values(), ids=list(rows.SHAPES))
def test_each_table_has_exactly_its_rows_columns_and_the_loaders(clickhouse_client, shape):
    assert table_columns(clickhouse_client, shape.table) == shape.names + rows.LANDED_COLUMNS


def test_the_python_row_types_are_the_shapes():
    assert RatedRecord._fields == rows.RATED.names
    assert UsageSignal._fields == rows.USAGE_SIGNALS.names
    for shape in (rows.LEDGER, rows.SIGNALS):
        assert set(shape.names) <= set(drawdown.FIELDS)
        assert set(shape.of_kind("time", "long")) <= set(drawdown.LONG_FIELDS)
        assert set(shape.of_kind("int")) <= set(drawdown.INT_FIELDS)


def _router_keys(method: str) -> list[str]:
    """The JSON keys a RouteEvents method writes, in order (eventHead's first)."""
    start = re.search(rf"\n    private [\w\[\]]+ {method}\(", ROUTER)
    assert start, method
    body = ROUTER[start.start() :]
    body = body[: body.index("\n    }\n")]
    keys = re.findall(r'\\"(\w+)\\":', body)
    return (_router_keys("eventHead") if "eventHead(in)" in body else []) + keys


def test_the_routers_documents_are_the_shapes():
    assert _router_keys("eventJson") == list(rows.ACCEPTED.names)
    assert _router_keys("duplicateJson") == list(rows.DUPLICATES.names)


def test_the_loader_refuses_a_field_its_table_does_not_have(clickhouse_client):
    body = b'{"customer_id": "c", "meter_id": "m", "group_key": "", "quantityy": "1"}'
    with pytest.raises(Exception, match="Unknown field") as refused:
        clickhouse_client.raw_insert(
            "usage_windows", insert_block=body, fmt="JSONEachRow", settings=loader.INSERT_SETTINGS
        )
    assert loader._refused_document(refused.value)
    assert not loader._refused_document(ConnectionError("ClickHouse unreachable"))

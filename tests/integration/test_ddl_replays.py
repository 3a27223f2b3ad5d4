"""Every ReplacingMergeTree table of sql/ddl collapses a replay to one row, even when the replay
crosses a month boundary: replacing (background merges, OPTIMIZE, FINAL with partition-local
merging) works only inside one partition, so a table must be partitioned by values a replay
reproduces exactly."""

from __future__ import annotations

from datetime import timedelta

import pytest

pytestmark = pytest.mark.integration

# What a replay may change in a row besides its key: when it was loaded or emitted, and the Kafka
# coordinates of a copy written again by a later run (where they are not the key).
REPLAY_CHANGES = {"loaded_at", "emitted_at", "kafka_partition", "kafka_offset"}
# credit_signals is at-least-once: a signal sent again after a restart keeps only its (customer_id,
# seq); the event second it covers and every figure may differ.
EVERYTHING_BUT_THE_KEY = {"credit_signals"}


def _tables(client) -> list[tuple[str, list[str]]]:
    rows = client.query(
        "SELECT name, sorting_key FROM system.tables WHERE database = currentDatabase() "
        "AND engine = 'ReplacingMergeTree' AND name NOT LIKE '%\\\\_\\\\_%' ORDER BY name"
    ).result_rows
    return [(name, [k.strip() for k in key.split(",")]) for name, key in rows]


def _random_row(client, table: str, seed: int) -> dict:
    columns = client.query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
        "AND table = {t:String} ORDER BY position",
        parameters={"t": table},
    ).result_rows
    structure = ", ".join(f"`{n}` {t}" for n, t in columns).replace("'", "\\'")
    result = client.query(f"SELECT * FROM generateRandom('{structure}', {seed}, 8, 2) LIMIT 1")
    return dict(zip(result.column_names, result.result_rows[0], strict=True))


def test_the_check_covers_the_replaced_tables(clickhouse_client):
    names = {name for name, _ in _tables(clickhouse_client)}
    assert {"events", "duplicates", "credit_ledger", "credit_signals", "usage_windows", "rejects"} <= names


@pytest.mark.parametrize(
    "table",
    [
        "events",
        "late_events",
        "usage_windows",
        "usage_adjustments",
        "rated_records",
        "rejects",
        "duplicates",
        "credit_ledger",
        "credit_signals",
        "usage_signals",
    ],
)
def test_a_replay_across_a_month_boundary_collapses(clickhouse_client, table):
    client = clickhouse_client
    key = dict(_tables(client))[table]
    client.command(f"TRUNCATE TABLE {table}")
    first = _random_row(client, table, seed=11)
    if table in EVERYTHING_BUT_THE_KEY:
        replay = {**_random_row(client, table, seed=12), **{k: first[k] for k in key}}
    else:
        replay = dict(first)
        for column in REPLAY_CHANGES - set(key):
            if column in replay:
                replay[column] = replay[column] + (timedelta(days=40) if column.endswith("_at") else 1)
    client.insert(table, [list(first.values()), list(replay.values())], column_names=list(first))
    client.command(f"OPTIMIZE TABLE {table} FINAL")
    assert client.query(f"SELECT count() FROM {table}").result_rows[0][0] == 1

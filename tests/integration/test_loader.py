"""The loader with its Kafka consumer and ClickHouse writer passed in (real ones: the session's
broker and ClickHouse): it lands committed records once, and an injected crash between an insert
and its offset commit is an exception the process dies of, not an exit inside the loader; the
next loader lands the same records again and ClickHouse keeps them once."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import Producer

from tallyflow.faults import Fault, InjectedCrash
from tallyflow.land.loader import Loader, consumer
from tallyflow.settings import Settings
from tallyflow.wire import topics

pytestmark = pytest.mark.integration


@pytest.fixture
def pipeline(tallyflow) -> Settings:
    return replace(
        Settings.from_env(),
        topic_prefix=tallyflow.env["TALLYFLOW_TOPIC_PREFIX"],
        kafka_bootstrap=tallyflow.bootstrap,
        home=Path(tallyflow.env["TALLYFLOW_HOME"]),
    )


def publish_windows(settings: Settings, n: int) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap})
    for i in range(n):
        doc = {
            "customer_id": "loader-c",
            "meter_id": "calls",
            "group_key": "{}",
            "window_start": f"2026-10-05T{i:02d}:00:00.000Z",
            "window_end": f"2026-10-05T{i + 1:02d}:00:00.000Z",
            "quantity": "2",
            "max_quantity": "1",
            "event_count": 2,
        }
        producer.produce(settings.topic(topics.USAGE), key=b"loader-c", value=json.dumps(doc).encode(), partition=0)
    producer.flush(30)


def landed(client) -> int:
    return client.query("SELECT count() FROM usage_windows FINAL WHERE customer_id = 'loader-c'").result_rows[0][0]


def test_a_crash_between_insert_and_commit_lands_once(pipeline, clickhouse_client):
    publish_windows(pipeline, 5)
    crashing = replace(pipeline, fault=Fault("loader-after-insert", 1))
    loader = Loader(crashing, clickhouse_client, consumer(crashing))
    with pytest.raises(InjectedCrash):
        loader.drain()
    loader.close()
    assert landed(clickhouse_client) == 5  # inserted, offsets not committed
    again = Loader(pipeline, clickhouse_client, consumer(pipeline))
    again.drain()  # reads the batch again: its deduplication token (and the table key) keep one copy
    again.close()
    assert landed(clickhouse_client) == 5
    assert (
        clickhouse_client.query("SELECT count() FROM usage_windows WHERE customer_id = 'loader-c'").result_rows[0][0]
        == 5
    )

"""The chaos run's oracle, from the generator's manifest alone: what each customer's meters must
count, and how many records the job's accepted topic holds."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from confluent_kafka import KafkaError

from tallyflow.core import aggregations, catalog
from tallyflow.errors import UserError
from tallyflow.land.loader import rows_in
from tallyflow.settings import Settings
from tallyflow.wire import kafka_config, topics


def expected(manifest: list[dict], cat: catalog.Catalog) -> dict[tuple[str, str], tuple[int, Decimal]]:
    """Per customer and meter: events the meter counts and their quantity (as the windows count)."""
    out: dict[tuple[str, str], list] = defaultdict(lambda: [0, Decimal(0)])
    for e in manifest:
        for m in cat.meters:
            if m.event_type != e["event_type"]:
                continue
            q = aggregations.row_quantity(m, e)  # what the router emits for the event
            if q is None:
                continue
            acc = out[(e["customer_id"], m.id)]
            acc[0] += 1
            acc[1] += q
    return {k: (v[0], v[1]) for k, v in out.items()}


def accepted_records(pipeline: Settings) -> int:
    """Accepted documents a read_committed reader finds in the accepted topic (transaction markers
    and aborted records are not records; a record holds a block of documents, one a line)."""
    from confluent_kafka import Consumer, TopicPartition

    topic = pipeline.topic(topics.ACCEPTED)
    consumer = Consumer(
        {
            **kafka_config.librdkafka(pipeline),
            "group.id": f"{topic}-oracle",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "logger": topics.quiet_logger(),
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        count, open_partitions = 0, set(partitions)
        while open_partitions:
            for msg in consumer.consume(10_000, timeout=10):
                err = msg.error()
                if err is None:
                    count += rows_in(msg.value() or b"")
                elif err.code() == KafkaError._PARTITION_EOF:
                    open_partitions.discard(msg.partition())
                else:
                    raise UserError(f"reading {topic}: {msg.error()}")
        return count
    finally:
        consumer.close()

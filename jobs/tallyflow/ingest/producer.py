"""Publishing usage events: an idempotent Kafka producer, keyed by customer, Avro on the wire."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from confluent_kafka import KafkaException, Producer

from tallyflow.core import events
from tallyflow.errors import UserError
from tallyflow.settings import Settings
from tallyflow.wire import avro, kafka_config, registry, topics


@dataclass
class ProduceReport:
    sent: int = 0
    rejected: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"sent": self.sent, "rejected": self.rejected, "failed": self.failed}


class EventProducer:
    """Wraps a confluent-kafka producer with delivery accounting; use as a context manager."""

    def __init__(self, settings: Settings, topic: str | None = None):
        self.settings = settings
        self.topic = topic or settings.topic(topics.EVENTS)
        self.version = avro.latest()
        self.schema_id = self.version.id
        schemas = registry.of(settings)
        if schemas is not None:
            self.schema_id = schemas.register(f"{self.topic}-value", self.version.text)
        self.report = ProduceReport()
        if not topics.broker_answers(settings, timeout=5.0):
            raise UserError(f"Kafka at {settings.bootstrap} does not answer; run `tallyflow stack up`")
        self._producer = Producer(
            {
                "logger": topics.quiet_logger(),  # failures surface through delivery reports
                **kafka_config.librdkafka(settings),
                "enable.idempotence": True,  # broker-side dedup of retries: no duplicate from the producer itself
                "acks": "all",
                "linger.ms": 20,
                "batch.size": 1_000_000,
                "compression.type": "lz4",
                "message.timeout.ms": 60_000,
            }
        )

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

    def _delivered(self, err: object, _msg: object) -> None:
        if err is None:
            self.report.sent += 1
        else:
            self.report.failed += 1
            self.report.problems.append(f"delivery failed: {err}")

    def send(self, record: dict) -> None:
        value = avro.encode(record, self.version, self.schema_id)
        self.send_raw(record["customer_id"].encode(), value)

    def send_raw(self, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(self.topic, value=value, key=key, on_delivery=self._delivered)
                break
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain
            except KafkaException as e:
                raise UserError(f"cannot produce to {self.topic}: {e.args[0]}") from None
        self._producer.poll(0)

    def flush(self) -> None:
        remaining = self._producer.flush(120)
        if remaining:
            self.report.failed += remaining
            self.report.problems.append(f"{remaining} event(s) not delivered within 120 s")


def validated_lines(
    lines: Iterable[str], settings: Settings, report: ProduceReport, errors: TextIO = sys.stderr
) -> Iterator[dict]:
    now = datetime.now(UTC)
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield events.parse_line(
                line,
                max_quantity=settings.max_quantity,
                now=now,
                max_future_seconds=settings.max_future.total_seconds(),
            )
        except events.InvalidEvent as e:
            report.rejected += 1
            print(f"line {n}: {e}", file=errors)


def produce_file(settings: Settings, path: Path, on_progress: Callable[[int], None] | None = None) -> ProduceReport:
    """Publishes a JSON-lines file; `on_progress(records read)` every 10,000 records."""
    try:
        handle = sys.stdin if str(path) == "-" else path.open()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    with handle, EventProducer(settings) as p:
        for n, record in enumerate(validated_lines(handle, settings, p.report), start=1):
            p.send(record)
            if on_progress is not None and n % 10_000 == 0:
                on_progress(n)
    return p.report


def produce_records(settings: Settings, records: Iterable[dict]) -> ProduceReport:
    """Sends already-validated JSON events (dicts in the docs/catalog.md form), e.g. from the generator."""
    with EventProducer(settings) as p:
        for record in validated_lines((json.dumps(r) for r in records), settings, p.report):
            p.send(record)
    return p.report

"""Publishing usage events: an idempotent Kafka producer, keyed by customer, Avro on the wire."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from confluent_kafka import KafkaError, KafkaException, Producer

from tallyflow.core import events
from tallyflow.errors import UserError
from tallyflow.settings import Settings
from tallyflow.wire import avro, kafka_config, registry, topics


@dataclass
class ProduceReport:
    """What a producer did: records the broker acknowledged, events refused before sending (with
    their reasons in `problems`), and records the broker did not take."""

    sent: int = 0
    rejected: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"sent": self.sent, "rejected": self.rejected, "failed": self.failed}


class EventProducer:
    """Publishes usage events to the events topic: validated as the job validates them, Avro in
    the Confluent framing, keyed by customer, on an idempotent producer. A context manager; the
    delivery report (`report`) is complete once `flush()` (or the `with` block) returns.

        with EventProducer(Settings.from_env()) as p:
            p.send({"event_id": "e1", "customer_id": "c1", "event_type": "api_call",
                    "event_time": "2026-10-03T12:00:00Z", "values": {}, "dimensions": {}})
            refused = p.send_batch(events)   # [(index, reason), ...]; the others are sent
        print(p.report.sent, p.report.failed)

    `send` raises `events.InvalidEvent` for an event the job would reject; nothing is sent then.
    Delivery failures (after librdkafka's retries) are counted in `report.failed` with a reason.
    """

    POLL_EVERY = 1000  # records between serving delivery reports; the queue holds many more
    PRODUCER_CONFIG = {
        "enable.idempotence": True,  # broker-side dedup of retries: no duplicate from the producer itself
        "acks": "all",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "message.timeout.ms": 60_000,
        "queue.buffering.max.messages": 1_000_000,
    }

    def __init__(self, settings: Settings, topic: str | None = None):
        self.settings = settings
        self.topic = topic or settings.topic(topics.EVENTS)
        self.version = avro.latest()
        self.schema_id = self.version.id
        schemas = registry.of(settings)
        if schemas is not None:
            self.schema_id = schemas.register(f"{self.topic}-value", self.version.text)
        self.report = ProduceReport()
        self._produced = 0
        self._max_quantity = settings.max_quantity
        self._max_future_s = settings.max_future.total_seconds()
        self._max_record_bytes = settings.max_record_bytes
        if not topics.broker_answers(settings, timeout=5.0):
            raise UserError(f"Kafka at {settings.bootstrap} does not answer; run `tallyflow stack up`")
        self._producer = Producer(
            {
                "logger": topics.quiet_logger(),  # failures surface through delivery reports
                **kafka_config.librdkafka(settings),
                **self.PRODUCER_CONFIG,
                # A report per failed record only: the successes are counted at flush (produced
                # minus failed), which spares a Python callback per record.
                "delivery.report.only.error": True,
                "on_delivery": self._failed,
            }
        )
        self._produce = self._producer.produce

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

    def _failed(self, err: object, _msg: object) -> None:
        if err is not None:
            self.report.failed += 1
            if len(self.report.problems) < 100:
                self.report.problems.append(f"delivery failed: {err}")

    def send(self, event: dict) -> None:
        """Validates one event (the JSON form of docs/catalog.md) and sends it; raises
        events.InvalidEvent, sending nothing, when the job would reject it."""
        now = datetime.now(UTC)
        native = self.native_encoder(now)
        encoded = native.encode_record(event) if native is not None else None
        if encoded is None:
            self.send_valid(self._validate(event, now))
        else:
            self.send_raw(*encoded)

    def _validate(self, event: dict, now: datetime) -> dict:
        return events.validate(event, max_quantity=self._max_quantity, now=now, max_future_seconds=self._max_future_s)

    def native_encoder(self, now: datetime) -> avro.NativeEncoder | None:
        """The native path (wire/avro.native_encoder) with this producer's schema and limits."""
        return avro.native_encoder(
            self.version,
            self.schema_id,
            now=now,
            max_quantity=self._max_quantity,
            max_future_seconds=self._max_future_s,
        )

    def send_batch(self, batch: Iterable[dict]) -> list[tuple[int, str]]:
        """Validates and sends each event; returns the refused ones as (index, reason), which are
        also counted in `report.rejected`. The others are sent, in order."""
        refused = []
        now = datetime.now(UTC)
        native = self.native_encoder(now)
        fast = native.encode_record if native is not None else lambda _event: None
        validate, send_valid, send_raw = self._validate, self.send_valid, self.send_raw
        for i, event in enumerate(batch):
            encoded = fast(event)
            try:
                if encoded is not None:
                    send_raw(*encoded)
                    continue
                send_valid(validate(event, now))
            except events.InvalidEvent as e:
                refused.append((i, str(e)))
                self.report.rejected += 1
        return refused

    def encoded(self, record: dict) -> tuple[bytes, bytes]:
        """The Kafka key and value of a record that events.validate returned."""
        return record["customer_id"].encode(), avro.encode_event(record, self.version, self.schema_id)

    def send_valid(self, record: dict) -> None:
        """Sends a record that events.validate returned."""
        self.send_raw(*self.encoded(record))

    def send_raw(self, key: bytes | None, value: bytes) -> None:
        """Sends one encoded record; raises events.InvalidEvent, sending nothing, for a record the
        job (TALLYFLOW_MAX_RECORD_BYTES) or the broker would refuse as too large."""
        if len(value) > self._max_record_bytes:
            raise events.InvalidEvent(
                f"record of {len(value)} bytes exceeds the limit of {self._max_record_bytes} "
                "(TALLYFLOW_MAX_RECORD_BYTES)"
            )
        try:
            self._produce(self.topic, value, key)  # positional: the cheapest call, once per record
        except BufferError:
            self._send_when_queued(key, value)
        except KafkaException as e:
            if e.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE:
                raise events.InvalidEvent(f"record of {len(value)} bytes is too large for the broker") from None
            raise UserError(f"cannot produce to {self.topic}: {e.args[0]}") from None
        self._produced += 1
        if not self._produced % self.POLL_EVERY:
            self._producer.poll(0)

    def _send_when_queued(self, key: bytes | None, value: bytes) -> None:
        while True:
            self._producer.poll(0.1)  # local queue full: let deliveries drain
            try:
                self._produce(self.topic, value, key)
                return
            except BufferError:
                continue
            except KafkaException as e:
                raise UserError(f"cannot produce to {self.topic}: {e.args[0]}") from None

    def flush(self) -> ProduceReport:
        remaining = self._producer.flush(120)
        if remaining:
            self.report.failed += remaining
            self.report.problems.append(f"{remaining} event(s) not delivered within 120 s")
        # Every produced record was acknowledged, reported failed, or is still queued (counted above).
        self.report.sent = self._produced - self.report.failed
        return self.report


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
    """Publishes a JSON-lines file; `on_progress(records sent)` every 10,000 records. Canonical
    lines take the native encoder (wire/avro.native_encoder), every other line the Python path
    (events.parse_line, then avro.encode_event): the same verdicts, reasons and bytes."""
    try:
        handle = sys.stdin.buffer if str(path) == "-" else path.open("rb")
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    now = datetime.now(UTC)
    max_quantity, max_future_seconds = settings.max_quantity, settings.max_future.total_seconds()
    with handle, EventProducer(settings) as p:
        native = p.native_encoder(now)
        fast = native.encode if native is not None else lambda _line: None
        sent = 0
        for n, raw in enumerate(handle, start=1):
            try:  # each bad line is reported with its number; the lines after it are still sent
                encoded = fast(raw)
                if encoded is None:
                    line = raw.decode()
                    if not line.strip():
                        continue
                    record = events.parse_line(
                        line, now=now, max_quantity=max_quantity, max_future_seconds=max_future_seconds
                    )
                    encoded = p.encoded(record)
                p.send_raw(*encoded)
            except UnicodeDecodeError as e:
                p.report.rejected += 1
                print(f"line {n}: not UTF-8 text (byte {e.start + 1})", file=sys.stderr)
                continue
            except events.InvalidEvent as e:
                p.report.rejected += 1
                print(f"line {n}: {e}", file=sys.stderr)
                continue
            sent += 1
            if on_progress is not None and sent % 10_000 == 0:
                on_progress(sent)
    return p.report


def produce_records(settings: Settings, records: Iterable[dict]) -> ProduceReport:
    """Sends events in the JSON form (dicts as docs/catalog.md shows them), e.g. from the generator;
    the refused ones are counted in the report with their reasons."""
    with EventProducer(settings) as p:
        for i, reason in p.send_batch(records):
            if len(p.report.problems) < 100:
                p.report.problems.append(f"event {i + 1}: {reason}")
    return p.report

"""Lands the job's committed Kafka output in ClickHouse, idempotently.

Order of work for each batch of one partition: read (read_committed: only what a completed Flink
checkpoint committed) -> insert with a deduplication token naming the exact offset range ->
commit the consumer offset. A crash between insert and commit re-reads the range: the same
token makes ClickHouse drop the repeat, and every table's key (idempotency key or Kafka
coordinates, ReplacingMergeTree) collapses what a differently cut range would repeat.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import OffsetSpec

from tallyflow.errors import UserError
from tallyflow.faults import InjectedCrash
from tallyflow.land import metrics
from tallyflow.settings import Settings
from tallyflow.wire import kafka_config, topics

JSON_TABLES = {
    topics.ACCEPTED: "events",
    topics.USAGE: "usage_windows",
    topics.LATE: "late_events",
    topics.RATED: "rated_records",
    topics.ADJUSTMENTS: "usage_adjustments",
    topics.DUPLICATES: "duplicates",
    topics.LEDGER: "credit_ledger",
    topics.SIGNALS: "credit_signals",
    topics.USAGE_SIGNALS: "usage_signals",
}
REJECTS_COLUMNS = [
    "reason",
    "raw_key",
    "raw_value",
    "source_topic",
    "source_partition",
    "source_offset",
    "kafka_time",
    "dlq_partition",
    "dlq_offset",
]
INSERT_SETTINGS = {
    "date_time_input_format": "best_effort",
    # A field the table does not have is an error, never dropped (core/rows.py defines each row).
    "input_format_skip_unknown_fields": 0,
}


@dataclass
class LoadStats:
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    batches: int = 0
    retries: int = 0  # polls whose inserts failed and were read again

    def as_dict(self) -> dict:
        return {"rows": dict(self.rows), "batches": self.batches, "retries": self.retries}


def consumer(settings: Settings, group_suffix: str = topics.LOADER_GROUP) -> Consumer:
    """The loader's Kafka consumer: its own group, committed records only, offsets committed by hand."""
    return Consumer(
        {
            **kafka_config.librdkafka(settings),
            "logger": topics.quiet_logger(),
            "group.id": f"{settings.topic_prefix}{group_suffix}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": 64 * 1024 * 1024,
            "queued.max.messages.kbytes": 256 * 1024,
        }
    )


class Loader:
    """Lands the output topics through `kafka` (a consumer of its own group, see `consumer`) into
    `client` (the ClickHouse writer). Both are passed in, so a test can hand it real ones of its own."""

    def __init__(self, settings: Settings, client: Client, kafka: Consumer | None = None):
        self.settings = settings
        self.client = client
        self.stats = LoadStats()
        self._outage_since: float | None = None
        self._fault_started: float | None = None  # TALLYFLOW_FAULT=clickhouse-down: when inserts began failing
        self._table_of = {settings.topic(t): table for t, table in JSON_TABLES.items()}
        self._dlq = settings.topic(topics.DLQ)
        self._consumer = kafka if kafka is not None else consumer(settings)
        self._positions: dict[tuple[str, int], int] = {}
        self._admin = topics.admin(settings)
        self._assign()

    def _assign(self) -> None:
        names = [*self._table_of, self._dlq]
        try:
            meta = self._consumer.list_topics(timeout=10)
        except KafkaException as e:
            raise UserError(topics.failure(self.settings, e)) from None
        parts = []
        for name in names:
            if name not in meta.topics:
                raise UserError(f"topic {name} does not exist; run `tallyflow stack up`")
            parts += [TopicPartition(name, p) for p in meta.topics[name].partitions]
        committed = self._committed(parts)
        for tp in committed:
            if tp.offset < 0:
                tp.offset = OFFSET_BEGINNING
            else:
                self._positions[(tp.topic, tp.partition)] = tp.offset
        self._consumer.assign(committed)
        self._parts = [(tp.topic, tp.partition) for tp in committed]

    def _committed(self, parts: list[TopicPartition], wait_seconds: float = 60.0) -> list[TopicPartition]:
        # Right after a broker starts, the group coordinator may still be loading (NOT_COORDINATOR,
        # which librdkafka does not flag as retriable): retry every error until the deadline.
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                return self._consumer.committed(parts, timeout=10)
            except KafkaException as e:
                if time.monotonic() > deadline:
                    raise UserError(f"loader cannot read its committed offsets: {e.args[0].str()}") from None
                time.sleep(0.5)

    def close(self) -> None:
        self._consumer.close()

    def poll(self, timeout: float = 0.5, max_messages: int = 50_000) -> int:
        """Loads what one poll returns; returns the number of records landed."""
        msgs = self._consumer.consume(max_messages, timeout)
        batches: dict[tuple[str, int], list[Message]] = defaultdict(list)
        for m in msgs:
            err = m.error()
            if err is None:
                batches[_where(m)].append(m)
            elif err.code() == KafkaError._PARTITION_EOF:
                key = _where(m)
                self._positions[key] = max(self._positions.get(key, 0), _offset(m))
            else:
                raise UserError(f"loader cannot read {m.topic()}: {err.str()}")
        try:
            for (topic, partition), batch in batches.items():
                self._land(topic, partition, batch)
        except UserError:
            raise
        except Exception as e:  # ClickHouse did not take a batch: commit nothing, read it all again
            if _refused_document(e):
                raise UserError(f"the loader refused a record: {_first_line(e)}") from None
            self._rewind(batches, e)
            return 0
        self._outage_since = None
        if batches:
            self._maybe_crash()
            commits = [TopicPartition(t, p, _offset(b[-1]) + 1) for (t, p), b in batches.items()]
            self._consumer.commit(offsets=commits, asynchronous=False)
            metrics.committed()
            for tp in commits:
                self._positions[(tp.topic, tp.partition)] = max(
                    self._positions.get((tp.topic, tp.partition), 0), tp.offset
                )
        return sum(len(b) for b in batches.values())

    def _maybe_outage(self) -> None:
        """TALLYFLOW_FAULT=clickhouse-down:S (chaos runs): every insert fails for S seconds from the
        first one, as if ClickHouse were unreachable. (Embedded chdb cannot be cut from outside.)"""
        fault = self.settings.fault
        if fault is None or fault.kind != "clickhouse-down":
            return
        if self._fault_started is None:
            if not fault.fire_once(self.settings.home, self.settings.topic_prefix):
                return
            self._fault_started = time.monotonic()
        if time.monotonic() - self._fault_started < fault.n:
            raise ConnectionError(f"ClickHouse unreachable (TALLYFLOW_FAULT=clickhouse-down:{fault.n})")

    def _rewind(self, batches: dict[tuple[str, int], list[Message]], error: Exception) -> None:
        """An insert failed (ClickHouse unreachable, restarting, out of space): seek back to every
        batch's first record and retry with backoff; a batch that did land is dropped again by its
        deduplication token. Gives up after TALLYFLOW_LOADER_OUTAGE."""
        for (topic, partition), batch in batches.items():
            self._consumer.seek(TopicPartition(topic, partition, _offset(batch[0])))
            key = (topic, partition)
            self._positions[key] = min(self._positions.get(key, 0), _offset(batch[0]))
        now = time.monotonic()
        self._outage_since = self._outage_since or now
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if now - self._outage_since > self.settings.loader_outage.total_seconds():
            raise UserError(f"ClickHouse has refused inserts for {self.settings.loader_outage}: {first}")
        self.stats.retries += 1
        pause = min(5.0, 0.5 * 2 ** min(self.stats.retries, 4))
        metrics.retried(pause)
        time.sleep(pause)  # backoff while ClickHouse is away

    def _maybe_crash(self) -> None:
        """TALLYFLOW_FAULT=loader-after-insert:N (chaos runs): the process dies once after the N-th
        insert and before its offsets are committed, the loader's one failure window."""
        fault = self.settings.fault
        if fault is None or fault.kind != "loader-after-insert" or self.stats.batches < fault.n:
            return
        if fault.fire_once(self.settings.home, self.settings.topic_prefix):
            raise InjectedCrash(
                f"TALLYFLOW_FAULT=loader-after-insert:{fault.n} fired after insert {self.stats.batches}"
            )

    def _land(self, topic: str, partition: int, batch: list[Message]) -> None:
        self._maybe_outage()
        token = f"{topic}/{partition}/{_offset(batch[0])}-{_offset(batch[-1])}"
        settings = {**INSERT_SETTINGS, "insert_deduplication_token": token}
        started = time.perf_counter()
        if topic == self._dlq:
            table, rows = "rejects", len(batch)
            self.client.insert(table, [_reject_row(m) for m in batch], column_names=REJECTS_COLUMNS, settings=settings)
        else:
            table = self._table_of[topic]
            body = b"\n".join(with_coordinates(partition, _offset(m), m.value() or b"{}") for m in batch)
            rows = rows_in(body)
            self.client.raw_insert(table, insert_block=body, fmt="JSONEachRow", settings=settings)
        metrics.landed(table, rows, time.perf_counter() - started, batch[-1].value())
        self.stats.rows[table] += rows
        self.stats.batches += 1

    def end_offsets(self, wait_seconds: float = 30.0) -> dict[tuple[str, int], int]:
        """The committed end (last stable offset) of every output partition, in one request on the
        admin client's own connection (the consumer's connection is busy with long-poll fetches).
        Retries while a partition has no leader yet (a topic created a moment ago, a broker that
        just restarted) until the deadline."""
        request = {TopicPartition(t, p): OffsetSpec.latest() for t, p in self._parts}
        deadline = time.monotonic() + wait_seconds
        while True:
            futures = self._admin.list_offsets(
                request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=30
            )
            try:
                return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}
            except KafkaException as e:
                err = e.args[0]
                if not (err.retriable() or err.code() in _LEADERLESS) or time.monotonic() > deadline:
                    raise UserError(f"loader cannot read the end offsets: {err.str()}") from None
                time.sleep(0.5)  # backoff while the partition's leader is elected, bounded by the deadline

    def drain(self) -> None:
        """Lands everything committed to the output topics as of now."""
        ends = self.end_offsets()
        while not self.drained(ends):
            self.poll(timeout=0.2)

    def drained(self, ends: dict[tuple[str, int], int]) -> bool:
        """True when every partition has been read up to the given end offsets."""
        return all(self._positions.get(key, 0) >= end for key, end in ends.items())


# What a partition without a leader yet answers (librdkafka does not flag all of them retriable).
_LEADERLESS = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART)


def with_coordinates(partition: int, offset: int, value: bytes) -> bytes:
    """A record's JSON documents with its Kafka coordinates first in each ('{' -> '{"k":..,').
    A record holds one document, or (accepted) a block of them separated by newlines; a document
    never holds a raw newline (JsonBytes escapes it), so each "\n{" starts one. Every document
    of a block gets the block's coordinates: no table's key needs them to tell its rows apart
    (events: the idempotency key)."""
    prefix = b'{"kafka_partition":%d,"kafka_offset":%d,' % (partition, offset)
    return prefix + value[1:].replace(b"\n{", b"\n" + prefix)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _refused_document(error: Exception) -> bool:
    """A document with a field its table does not have (a row shape out of step with sql/ddl):
    reading it again cannot help, so it stops the loader, its offsets uncommitted."""
    return "Unknown field found while parsing" in str(error)


def rows_in(body: bytes) -> int:
    """The JSON documents in a JSONEachRow body (one a line)."""
    return body.count(b"\n") + 1 if body else 0


def _where(m: Message) -> tuple[str, int]:
    topic, partition = m.topic(), m.partition()
    assert topic is not None and partition is not None  # a record read from a partition has both
    return topic, partition


def _offset(m: Message) -> int:
    offset = m.offset()
    assert offset is not None
    return offset


def _reject_row(m: Message) -> list:
    raw = m.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    headers = {str(k): (v if isinstance(v, bytes) else b"").decode("utf-8", "replace") for k, v in pairs}
    kafka_time = headers.get("tallyflow.source.timestamp", "")
    try:
        t = datetime.fromisoformat(kafka_time).replace(tzinfo=UTC)
    except ValueError:
        t = datetime.fromtimestamp(m.timestamp()[1] / 1000, UTC)
    return [
        headers.get("tallyflow.reason", "unknown"),
        m.key() or b"",
        m.value() or b"",
        headers.get("tallyflow.source.topic", ""),
        int(headers.get("tallyflow.source.partition", "-1") or -1),
        int(headers.get("tallyflow.source.offset", "-1") or -1),
        t,
        _where(m)[1],
        _offset(m),
    ]

"""Topic names and their creation. Every name gets TALLYFLOW_TOPIC_PREFIX in front."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from tallyflow.errors import UserError
from tallyflow.settings import Settings
from tallyflow.wire import kafka_config

EVENTS = "events"  # UsageEvent, Confluent-framed Avro, keyed by customer (producers write here)
ACCEPTED = "accepted"  # deduplicated, valid events as JSON rows, in blocks of up to 512 KiB (the audit trail)
USAGE = "usage"  # windowed usage per customer, meter, group (JSON rows)
LATE = "late"  # accepted events that arrived behind the watermark (JSON rows)
DLQ = "dlq"  # rejected records: original key and bytes, reason in headers
RATED = "rated"  # what each window adds to its customer's period, priced (JSON rows)
ADJUSTMENTS = "adjustments"  # deltas of windows from events within the allowed lateness (JSON rows)
DUPLICATES = "duplicates"  # resent events: duplicates and conflicts (same id, other payload) (JSON rows)
GRANTS = "grants"  # CreditGrant top-ups, Confluent-framed Avro, keyed by customer (`tallyflow grant`)
LEDGER = "credit-ledger"  # credit movements: grants, draws, uncovered usage (JSON rows, exactly-once)
SIGNALS = "credit-signals"  # balance, alert, exhausted, restored (JSON rows, at-least-once: low latency)
USAGE_SIGNALS = "usage-signals"  # usage alerts and anomalies, once per threshold and period (JSON rows)

LOADER_GROUP = "loader"  # the loader's consumer group, after the prefix

ALL = (EVENTS, ACCEPTED, USAGE, LATE, DLQ, RATED, ADJUSTMENTS, DUPLICATES, GRANTS, LEDGER, SIGNALS, USAGE_SIGNALS)


def quiet_logger() -> logging.Logger:
    """librdkafka logs every reconnect attempt to stderr; tallyflow reports failures itself."""
    log = logging.getLogger("tallyflow.kafka")
    if not log.handlers:
        log.addHandler(logging.NullHandler())
        log.propagate = False
    return log


_admins: dict[str, AdminClient] = {}
_admins_lock = threading.Lock()


def admin(settings: Settings) -> AdminClient:
    """One admin client per configuration for the process's life. librdkafka may answer a request
    that timed out after all: a client destroyed meanwhile ended the process with a segfault (a
    lag read on a broker that had just started)."""
    # log_level 0: a broker that is down is reported once by the caller, not per reconnect attempt.
    config = {**kafka_config.librdkafka(settings), "socket.timeout.ms": 5000, "log_level": 0}
    key = json.dumps(config, sort_keys=True, default=str)
    with _admins_lock:
        if key not in _admins:
            _admins[key] = AdminClient(config)
        return _admins[key]


def metadata(settings: Settings, timeout: float = 10.0):
    """The cluster's metadata; a broker that refuses the credentials (or the TLS handshake) is
    reported at once, in one line, instead of after the timeout."""
    client = admin(settings)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
        except KafkaException as e:
            client.poll(0.2)  # serves error_cb, where librdkafka reports a refused login
            reason = kafka_config.refused(settings)
            if reason:
                raise UserError(reason) from None
            if time.monotonic() >= deadline:
                raise UserError(failure(settings, e)) from None


def broker_answers(settings: Settings, timeout: float = 3.0) -> bool:
    """Whether the broker answers; a broker that refuses the credentials is an error of its own."""
    try:
        metadata(settings, timeout)
        return True
    except UserError:
        if kafka_config.refused(settings):
            raise
        return False


def failure(settings: Settings, e: KafkaException) -> str:
    """One line for a failed Kafka call: refused credentials and TLS failures say so, and so does
    a broker whose port accepts connections but which will not talk to this client."""
    explained = kafka_config.explain(e, settings)
    if explained:
        return explained
    host, _, port = settings.bootstrap.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=2).close()
    except (OSError, ValueError):
        return f"Kafka at {settings.bootstrap} does not answer: {e.args[0]}"
    return (
        f"Kafka at {settings.bootstrap} accepts connections but refused this client "
        f"({kafka_config.of(settings).describe()}): does it need TLS or SASL? See TALLYFLOW_KAFKA_PROPERTIES"
    )


def existing(settings: Settings) -> list[str]:
    """The pipeline's topics the cluster has."""
    names = set(metadata(settings).topics)
    return sorted(settings.topic(t) for t in ALL if settings.topic(t) in names)


def require(settings: Settings, name: str) -> None:
    """A one-line error unless the topic exists (a producer never creates topics)."""
    if settings.topic(name) not in existing(settings):
        raise UserError(
            f"topic {settings.topic(name)} does not exist on {settings.bootstrap}; "
            "create the topics with `tallyflow stack up` or `tallyflow topics create`"
        )


def ensure_topics(settings: Settings) -> list[str]:
    """Creates the missing topics; returns the names created."""
    client = admin(settings)
    existing = set(metadata(settings).topics)
    wanted = [settings.topic(t) for t in ALL]
    new = [NewTopic(t, num_partitions=settings.partitions, replication_factor=-1) for t in wanted if t not in existing]
    if not new:
        return []
    for name, fut in client.create_topics(new, operation_timeout=30).items():
        try:
            fut.result()
        except KafkaException as e:
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise UserError(f"cannot create topic {name}: {e.args[0]}") from None
    return [t.topic for t in new]


def delete_topics(settings: Settings) -> None:
    """Deletes the prefix's topics (throwaway pipelines: the bench), best effort."""
    client = admin(settings)
    for fut in client.delete_topics([settings.topic(t) for t in ALL], operation_timeout=30).values():
        with contextlib.suppress(KafkaException):  # already gone, or the broker is down
            fut.result()


JOB_INPUTS = (EVENTS, GRANTS)


def input_ends(settings: Settings) -> dict[str, int]:
    """The committed end offset of every partition the job reads ("topic:partition" -> offset)."""
    return committed_ends(settings, JOB_INPUTS)


def committed_ends(settings: Settings, names: tuple[str, ...]) -> dict[str, int]:
    """The committed end offset (last stable offset) of every partition of these topics."""
    from confluent_kafka import IsolationLevel, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    client = admin(settings)
    try:
        meta = client.list_topics(timeout=10).topics
        request = {
            TopicPartition(settings.topic(t), p): OffsetSpec.latest()
            for t in names
            if settings.topic(t) in meta
            for p in meta[settings.topic(t)].partitions
        }
        futures = client.list_offsets(request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=30)
        return {f"{tp.topic}:{tp.partition}": f.result().offset for tp, f in futures.items()}
    except KafkaException as e:
        raise UserError(f"cannot read the end offsets of {', '.join(names)}: {e.args[0]}") from None


def records_in(settings: Settings, names: tuple[str, ...], timeout: float = 2.0) -> int | None:
    """How many records these topics hold (the sum of their partitions' end offsets, control
    records included), or None when the broker does not say within `timeout`."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    try:
        client = admin(settings)
        meta = client.list_topics(timeout=timeout).topics
        request = {
            TopicPartition(settings.topic(t), p): OffsetSpec.latest()
            for t in names
            if settings.topic(t) in meta
            for p in meta[settings.topic(t)].partitions
        }
        if not request:
            return 0
        futures = client.list_offsets(request, request_timeout=timeout)
        return sum(f.result().offset for f in futures.values())
    except KafkaException:
        return None


def unlanded(settings: Settings, names: tuple[str, ...], group: str) -> dict[str, tuple[int, int]]:
    """The partitions of these topics where a read_committed reader would find records the
    consumer group has not committed yet ("topic:partition" -> (committed, end))."""
    return behind(settings, committed_ends(settings, names), group)


def behind(settings: Settings, ends: dict[str, int], group: str) -> dict[str, tuple[int, int]]:
    """The partitions where the group's committed offset has not reached `ends` with records a
    read_committed reader would see ("topic:partition" -> (committed, end))."""
    done = group_positions(settings, group)
    short = {tp: (done.get(tp, 0), end) for tp, end in ends.items() if done.get(tp, 0) < end}
    # A commit marker at a partition's end takes an offset no reader sees: ask what is readable.
    return short if short and visible_records_between(settings, short) else {}


def group_positions(settings: Settings, group: str) -> dict[str, int]:
    """The offsets a consumer group has committed ("topic:partition" -> offset)."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    client = admin(settings)  # kept alive until the answer is in: a collected client cancels it
    try:
        futures = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
        result = next(iter(futures.values())).result()
    except KafkaException as e:
        raise UserError(f"cannot read the offsets of group {group}: {e.args[0]}") from None
    return {f"{tp.topic}:{tp.partition}": tp.offset for tp in result.topic_partitions if tp.offset >= 0}


def visible_records_between(settings: Settings, ranges: dict[str, tuple[int, int]], timeout: float = 10.0) -> bool:
    """Whether a read_committed reader finds a record in any [start, end) ("topic:partition" ->
    range). Transaction markers and aborted records take offsets no reader ever sees."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            **kafka_config.librdkafka(settings),
            "group.id": f"{settings.topic_prefix}probe",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "logger": quiet_logger(),
        }
    )
    try:
        consumer.assign(
            [
                TopicPartition(tp.rsplit(":", 1)[0], int(tp.rsplit(":", 1)[1]), start)
                for tp, (start, _) in ranges.items()
            ]
        )
        pending = set(ranges)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            tp = f"{msg.topic()}:{msg.partition()}"
            if tp not in ranges:
                continue
            if msg.error() is None and (msg.offset() or 0) < ranges[tp][1]:
                return True
            pending.discard(tp)  # the partition's end (EOF) or a record at or past the range's end
        return bool(pending)  # not sure in time: as if there were records
    finally:
        consumer.close()

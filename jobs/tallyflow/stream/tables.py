"""The job's Kafka tables: the events and grants sources (raw bytes, read by the job's consumer
group, committed records only) and the transactional sinks of every output topic. The job graph
(graph.py) reads and writes them by name only, so a test can hand it other tables."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from pyflink.table import StreamTableEnvironment

from tallyflow.core import rows
from tallyflow.core.catalog import Catalog
from tallyflow.errors import UserError
from tallyflow.settings import Settings, flink_interval
from tallyflow.stream.environment import JobOptions
from tallyflow.wire import kafka_config, registry, topics

UDF_CLASS = "io.tallyflow.decode.DecodeUsageEvent"
JOB_GROUP = "job"  # consumer group suffix of the job's Kafka source


@dataclass(frozen=True)
class Sources:
    """Tables the graph reads. events: k, v (BYTES), kafka_partition, kafka_offset, kafka_time,
    d (TF_DECODE(v)), event_time (rowtime, with a watermark), pt (proctime). grants: k, v,
    kafka_partition, kafka_offset."""

    events: str = "raw_events"
    grants: str = "raw_grants"


@dataclass(frozen=True)
class Sinks:
    """Tables the graph writes: accepted, late, duplicates take `v BYTES` (JSON documents); dlq
    takes k, v and headers; the others take the columns in SINK_COLUMNS."""

    accepted: str = "accepted_sink"
    late: str = "late_sink"
    duplicates: str = "duplicates_sink"
    dlq: str = "dlq_sink"
    usage: str = "usage_sink"
    adjustments: str = "adjustments_sink"
    rated: str = "rated_sink"
    ledger: str = "ledger_sink"
    signals: str = "signals_sink"
    usage_signals: str = "usage_signals_sink"


# The JSON sinks' columns, from the one definition of each row (core/rows.py).
SINK_COLUMNS = {
    name: rows.SHAPES[name].flink_columns()
    for name in ("usage", "adjustments", "rated", "usage_signals", "ledger", "signals")
}


def ddl(t_env: StreamTableEnvironment, statement: str) -> None:
    """A DDL statement, straight to the Java TableEnvironment: PyFlink's execute_sql first merges
    the job's jar lists again (dozens of py4j round trips a statement), which only the job's
    submission needs, and StatementSet.execute does that once."""
    t_env._j_tenv.executeSql(statement)


def kafka_sources(t_env: StreamTableEnvironment, settings: Settings, catalog: Catalog, options: JobOptions) -> Sources:
    """Declares the events and grants topics as the job's sources (and TF_DECODE, which the events
    source's computed columns call)."""
    ddl(t_env, f"CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS TF_DECODE AS '{UDF_CLASS}' LANGUAGE JAVA")
    sources = Sources()
    ddl(t_env, _events_source(settings, options, sources.events, decoder_config(settings, catalog)))
    ddl(
        t_env,
        f"""CREATE TEMPORARY TABLE {sources.grants} (
        k BYTES, v BYTES,
        kafka_partition INT METADATA FROM 'partition' VIRTUAL,
        kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL
    ) WITH ({_raw_source(settings, options, topics.GRANTS)})""",
    )
    return sources


def kafka_sinks(t_env: StreamTableEnvironment, settings: Settings) -> Sinks:
    """Declares a transactional Kafka sink per output topic (signals: at-least-once, so products
    see them without waiting for a checkpoint)."""
    sinks = Sinks()
    for table, topic in (
        (sinks.accepted, topics.ACCEPTED),
        (sinks.late, topics.LATE),
        (sinks.duplicates, topics.DUPLICATES),
    ):
        ddl(t_env, _bytes_sink(settings, table, topic))
    for name, topic in (
        ("usage", topics.USAGE),
        ("adjustments", topics.ADJUSTMENTS),
        ("rated", topics.RATED),
        ("ledger", topics.LEDGER),
        ("signals", topics.SIGNALS),
        ("usage_signals", topics.USAGE_SIGNALS),
    ):
        ddl(
            t_env,
            _json_sink(
                settings,
                getattr(sinks, name),
                topic,
                SINK_COLUMNS[name],
                guarantee="at-least-once" if name == "signals" else None,
            ),
        )
    ddl(
        t_env,
        f"""CREATE TEMPORARY TABLE {sinks.dlq} (
        k BYTES, v BYTES, headers MAP<STRING, BYTES> METADATA
    ) WITH (
        {_kafka_common(settings, settings.topic(topics.DLQ))},
        'key.format' = 'raw', 'key.fields' = 'k',
        'value.format' = 'raw', 'value.fields-include' = 'EXCEPT_KEY',
        {_delivery(settings, topics.DLQ)}
    )""",
    )
    return sinks


def decoder_config(settings: Settings, catalog: Catalog | None = None) -> str:
    """The settings literal TF_DECODE takes as its second argument. With
    TALLYFLOW_REQUIRE_KNOWN_CUSTOMER the catalog's customers travel inside it, so a TaskManager
    on another machine checks against what the submitting client loaded."""
    conf = {
        "max_future_ms": str(int(settings.max_future.total_seconds() * 1000)),
        "max_quantity": str(settings.max_quantity),
        "max_record_bytes": str(settings.max_record_bytes),
    }
    schemas = registry.of(settings)
    if schemas is not None:
        conf.update(schemas.decoder_options(settings))
    if catalog is not None and catalog.pseudonymize:
        if settings.pseudonym_key_file is None:
            raise UserError(
                f"the catalog pseudonymizes {', '.join(catalog.pseudonymize)}: set TALLYFLOW_PSEUDONYM_KEY_FILE "
                "to a file holding the secret key (the same on every TaskManager)"
            )
        conf.update(pseudonymize=",".join(catalog.pseudonymize), pseudonym_key_file=str(settings.pseudonym_key_file))
    pairs = [f"{k}={quote(v, safe='')}" for k, v in conf.items() if v]
    if settings.require_known_customer and catalog is not None:
        pairs.append("customers=" + quote("".join(f"{c}\n" for c in catalog.customers), safe=""))
    return "&".join(pairs)


def _kafka_common(settings: Settings, topic: str) -> str:
    return f"'connector' = 'kafka', 'topic' = '{topic}', {kafka_config.flink_options(settings)}"


def _guarantee(settings: Settings) -> str:
    # TALLYFLOW_UNSAFE_AT_LEAST_ONCE exists so the chaos run can show its oracle sees duplicates.
    return "at-least-once" if settings.unsafe_at_least_once else "exactly-once"


def _delivery(settings: Settings, topic_name: str, guarantee: str | None = None) -> str:
    """WITH options of a sink's delivery guarantee: exactly-once sinks write in Kafka transactions."""
    guarantee = guarantee or _guarantee(settings)
    if guarantee != "exactly-once":
        return f"'sink.delivery-guarantee' = '{guarantee}', 'properties.linger.ms' = '0'"
    # Records become visible at the checkpoint anyway: lingering a few ms fills large batches,
    # which costs the broker and the producer's network thread far fewer requests.
    return f"""'sink.delivery-guarantee' = 'exactly-once',
        'sink.transactional-id-prefix' = '{settings.topic_prefix}{topic_name}-sink',
        'properties.transaction.timeout.ms' = '900000',
        'properties.linger.ms' = '20', 'properties.batch.size' = '524288'"""


def _json_sink(settings: Settings, table: str, topic_name: str, columns: str, guarantee: str | None = None) -> str:
    return f"""CREATE TEMPORARY TABLE {table} ({columns}) WITH (
        {_kafka_common(settings, settings.topic(topic_name))},
        'format' = 'json',
        'json.encode.decimal-as-plain-number' = 'true',
        'json.timestamp-format.standard' = 'ISO-8601',
        {_delivery(settings, topic_name, guarantee)}
    )"""


def _bytes_sink(settings: Settings, table: str, topic_name: str) -> str:
    """A sink of documents RouteEvents already encoded (JSON, one per record)."""
    return f"""CREATE TEMPORARY TABLE {table} (v BYTES) WITH (
        {_kafka_common(settings, settings.topic(topic_name))},
        'format' = 'raw',
        {_delivery(settings, topic_name)}
    )"""


def _raw_source(settings: Settings, options: JobOptions, topic: str, extra: str = "") -> str:
    """WITH options of a raw-bytes Kafka source read by the job's consumer group, committed only."""
    # Only a job submitted on its own (metering_job.py --bounded) finishes at the ends; the runner
    # ends its bounded runs itself, with a savepoint the next run continues from.
    bounded = ", 'scan.bounded.mode' = 'latest-offset'" if options.bounded else ""
    return f"""{_kafka_common(settings, settings.topic(topic))},
        'properties.group.id' = '{settings.topic_prefix}{JOB_GROUP}',
        'properties.isolation.level' = 'read_committed',
        'properties.auto.offset.reset' = 'earliest',
        'scan.startup.mode' = 'group-offsets',
        'key.format' = 'raw', 'key.fields' = 'k',
        'value.format' = 'raw', 'value.fields-include' = 'EXCEPT_KEY'{extra}{bounded}"""


def _events_source(settings: Settings, options: JobOptions, table: str, decoder_conf: str) -> str:
    return f"""CREATE TEMPORARY TABLE {table} (
        k BYTES,
        v BYTES,
        kafka_partition INT METADATA FROM 'partition' VIRTUAL,
        kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL,
        kafka_time TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
        d AS TF_DECODE(v, '{decoder_conf}'),
        -- Rejects carry time 0 so they never advance the watermark.
        event_time AS COALESCE(TF_DECODE(v, '{decoder_conf}').event_time, TO_TIMESTAMP_LTZ(0, 3)),
        pt AS PROCTIME(),
        WATERMARK FOR event_time AS event_time - {flink_interval(settings.out_of_orderness)}
    ) WITH (
        {
        _raw_source(settings, options, topics.EVENTS, f", 'scan.watermark.emit.strategy' = '{settings.watermark_emit}'")
    }
    )"""

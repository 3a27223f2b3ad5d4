"""The metering job: a pure builder of Flink SQL over a TableEnvironment, plus its configuration.

Every per-event step runs in Flink's JVM operators (DESIGN.md, performance facts):

    Kafka events (raw bytes) -> TF_DECODE (JVM UDF: Confluent Avro decode + validation)
      -> ClassifyEvents (keyed JVM operator: dedup with state TTL = dedup horizon, conflicts,
         lateness against its watermark, metrics) -> one row per record with its kind
      -> RouteEvents (JVM: JSON documents for the sinks, one row per event and meter):
         reject -> dead-letter topic (original key and bytes, reason in headers)
         duplicate | conflict -> duplicates topic
         on_time | adjust | too_late -> accepted topic (every accepted event, with its lateness)
         too_late -> late topic
         meter rows: on_time -> hourly TUMBLE windows per customer, meter and group -> usage topic
                     adjust (window closed less than the allowed lateness ago) -> adjustments topic
      windows and adjustments -> rate-windows (keyed Python, per window) -> rated topic
      accepted credit-priced usage -> credit-batches (JVM micro-batches per customer, meter, second)
         + grants topic -> credit-drawdown (keyed Python, per customer) -> credit-ledger topic
         (exactly-once) and credit-signals topic (at-least-once: balance, alert, exhausted, restored)
All sinks are transactional Kafka sinks (exactly-once, committed on checkpoint); the loader
(loader.py) lands them in ClickHouse idempotently.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

from pyflink.table import StatementSet, StreamTableEnvironment, TableEnvironment

from tallyflow import checkpoints, topics
from tallyflow.catalog import Catalog, Meter
from tallyflow.settings import REPO_ROOT, Settings, flink_interval

UDF_CLASS = "io.tallyflow.udf.DecodeUsageEvent"
JOB_GROUP = "job"  # consumer group suffix of the job's Kafka source


@dataclass(frozen=True)
class JobOptions:
    bounded: bool = False
    name: str = "tallyflow-metering"
    checkpoint_dir: str | None = None
    resume_from: str | None = None  # a checkpoint or savepoint to restore (checkpoints.latest)
    credit_seeds: dict | None = None  # drawdown states from the ledger (balance.drawdown_seeds)


def jar_urls(settings: Settings) -> list[str]:
    jars = sorted((settings.jars_dir / "flink").glob("*.jar"))
    return [j.resolve().as_uri() for j in jars]


def configure(t_env: TableEnvironment, settings: Settings, options: JobOptions) -> None:
    """Job-wide configuration: jars, parallelism, checkpoints, restarts, state TTL."""
    conf = t_env.get_config()
    for key, value in {
        "pipeline.name": options.name,
        "pipeline.jars": ";".join(jar_urls(settings)),
        "parallelism.default": str(settings.parallelism),
        "python.execution-mode": "thread",
        "execution.checkpointing.interval": f"{int(settings.checkpoint_interval.total_seconds() * 1000)} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.dir": options.checkpoint_dir or checkpoints.root(settings).as_uri(),
        # Kept when the job is cancelled (or its process killed), so the next run can restore it.
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": str(settings.restart_attempts),
        "restart-strategy.fixed-delay.delay": "2 s",
        "state.backend.type": "rocksdb",
        "state.backend.incremental": "true",
        # Dedup state lives as long as the dedup horizon (processing time); windows clean themselves.
        "table.exec.state.ttl": f"{int(settings.dedup_horizon.total_seconds() * 1000)} ms",
        "table.exec.source.idle-timeout": f"{int(settings.idle_timeout.total_seconds() * 1000)} ms",
        "table.local-time-zone": "UTC",
        # Stable operator uids derived from the plan, so checkpoints restore onto the same job.
        "table.exec.uid.generation": "ALWAYS",
        # Mini-batch would turn the keep-first dedup into an updating stream (not insert-only),
        # which Kafka append sinks refuse; window aggregates buffer on their own anyway.
        "table.exec.mini-batch.enabled": "false",
        # Chained operators hand records on without a defensive copy: the planner's operators and
        # ours never keep an input object past the call (CreditBatcher copies what it buffers).
        "pipeline.object-reuse": "true",
    }.items():
        conf.set(key, value)
    if options.resume_from:
        conf.set("execution.state-recovery.path", options.resume_from)
    for key, value in settings.flink_conf:
        conf.set(key, value)


def decoder_config(settings: Settings, customers_file: str | None) -> str:
    """The settings literal TF_DECODE takes as its second argument."""
    conf = {
        "max_future_ms": str(int(settings.max_future.total_seconds() * 1000)),
        "max_quantity": str(settings.max_quantity),
        "max_record_bytes": str(settings.max_record_bytes),
        "registry": settings.schema_registry_url or "",
        "customers_file": customers_file or "",
    }
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in conf.items() if v)


def write_customers_file(settings: Settings, catalog: Catalog) -> str | None:
    """The customer registry the decoder checks against, when TALLYFLOW_REQUIRE_KNOWN_CUSTOMER is on."""
    if not settings.require_known_customer:
        return None
    path = settings.home / "customers" / f"{catalog.digest}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{c}\n" for c in catalog.customers))
    return path.resolve().as_uri()


def _kafka_common(settings: Settings, topic: str) -> str:
    return f"'connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{settings.bootstrap}'"


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


def _json_sink(settings: Settings, table: str, topic_name: str, columns: str,
               guarantee: str | None = None) -> str:
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


def _source(settings: Settings, options: JobOptions, decoder_conf: str) -> str:
    return f"""CREATE TEMPORARY TABLE raw_events (
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
        {_raw_source(settings, options, topics.EVENTS,
                     f", 'scan.watermark.emit.strategy' = '{settings.watermark_emit}'")}
    )"""


def meter_spec(catalog: Catalog) -> str:
    """The catalog's meters as RouteEvents reads them: a line per meter, tab-separated, percent-encoded
    (id, event_type, aggregation, value, group_by joined by commas)."""
    q = lambda v: quote(v or "", safe="")  # noqa: E731
    return "".join(f"{q(m.id)}\t{q(m.event_type)}\t{q(m.aggregation)}\t{q(m.value)}\t"
                   f"{','.join(q(g) for g in m.group_by)}\n" for m in catalog.meters)


def classify(t_env: StreamTableEnvironment, decoded, settings: Settings, catalog: Catalog) -> None:
    """Dedup, conflicts, lateness and metrics (jobs/jvm ClassifyEvents), then the sink records and
    one row per event and meter (RouteEvents), as the views `routed` and `meter_rows`."""
    from pyflink.java_gateway import get_gateway
    from pyflink.table import Table

    ms = lambda d: int(d.total_seconds() * 1000)  # noqa: E731
    routed = get_gateway().jvm.io.tallyflow.udf.Classifier.classify(
        t_env._j_tenv, decoded._j_table, ms(settings.dedup_horizon), ms(settings.allowed_lateness), ms(settings.window),
        meter_spec(catalog))
    t_env.create_temporary_view("routed", Table(routed.routed(), t_env))
    t_env.create_temporary_view("meter_rows", Table(routed.metered(), t_env))


def build(t_env: StreamTableEnvironment, settings: Settings, catalog: Catalog, options: JobOptions) -> StatementSet:
    """Declares sources, views and sinks on t_env and returns the statement set to execute."""
    configure(t_env, settings, options)
    t_env.execute_sql(f"CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS TF_DECODE AS '{UDF_CLASS}' LANGUAGE JAVA")
    t_env.execute_sql(_source(settings, options, decoder_config(settings, write_customers_file(settings, catalog))))
    decoded = t_env.sql_query("""
        SELECT COALESCE(d.error, CASE WHEN d.event_time <> event_time
                   THEN 'event_time crossed the future limit while decoding; resend' END) AS error,
               d.schema_id AS schema_id, d.event_id AS event_id, d.customer_id AS customer_id,
               d.event_type AS event_type, event_time, d.vals AS vals, d.dims AS dims,
               -- The original bytes matter only for a reject: carry them only there.
               CASE WHEN d.error IS NOT NULL THEN k END AS k, CASE WHEN d.error IS NOT NULL THEN v END AS v,
               kafka_partition, kafka_offset, kafka_time
        FROM raw_events""")
    classify(t_env, decoded, settings, catalog)
    t_env.execute_sql(_bytes_sink(settings, "accepted_sink", topics.ACCEPTED))
    t_env.execute_sql(_bytes_sink(settings, "late_sink", topics.LATE))
    t_env.execute_sql(_bytes_sink(settings, "duplicates_sink", topics.DUPLICATES))
    t_env.execute_sql(_json_sink(settings, "usage_sink", topics.USAGE, """customer_id STRING, meter_id STRING,
        group_key STRING, window_start TIMESTAMP_LTZ(3), window_end TIMESTAMP_LTZ(3),
        quantity DECIMAL(38, 12), max_quantity DECIMAL(38, 12), event_count BIGINT"""))
    t_env.execute_sql(f"""CREATE TEMPORARY TABLE dlq_sink (
        k BYTES, v BYTES, headers MAP<STRING, BYTES> METADATA
    ) WITH (
        {_kafka_common(settings, settings.topic(topics.DLQ))},
        'key.format' = 'raw', 'key.fields' = 'k',
        'value.format' = 'raw', 'value.fields-include' = 'EXCEPT_KEY',
        {_delivery(settings, topics.DLQ)}
    )""")

    events_topic = settings.topic(topics.EVENTS)
    stmts = t_env.create_statement_set()
    for sink in ("accepted", "late", "duplicates"):
        stmts.add_insert_sql(f"INSERT INTO {sink}_sink SELECT v FROM routed WHERE sink = '{sink}'")
    stmts.add_insert_sql(f"""INSERT INTO dlq_sink
        SELECT k, v, MAP[
            'tallyflow.reason', ENCODE(reason, 'UTF-8'),
            'tallyflow.source.topic', ENCODE('{events_topic}', 'UTF-8'),
            'tallyflow.source.partition', ENCODE(CAST(kafka_partition AS STRING), 'UTF-8'),
            'tallyflow.source.offset', ENCODE(CAST(kafka_offset AS STRING), 'UTF-8'),
            'tallyflow.source.timestamp', ENCODE(CAST(kafka_time AS STRING), 'UTF-8')
        ] FROM routed WHERE sink = 'dlq'""")
    if catalog.meters:
        _windows(t_env, settings, catalog, stmts)
    if credit_meters(catalog):
        _credits(t_env, settings, catalog, options, stmts)
    return stmts


def _fault(settings: Settings) -> tuple[int, str] | None:
    """TALLYFLOW_FAULT=drawdown-after:N (tests and chaos runs): the drawdown fails once."""
    fault = settings.fault
    if fault is None or fault.kind != "drawdown-after":
        return None
    marker = fault.marker(settings.home, settings.topic_prefix)
    marker.parent.mkdir(parents=True, exist_ok=True)
    return fault.n, str(marker)


def credit_meters(catalog: Catalog) -> list[Meter]:
    ids = {m for p in catalog.plans if p.credits for m, _ in p.credits.rates}
    return [m for m in catalog.meters if m.id in ids]


def _credits(t_env: StreamTableEnvironment, settings: Settings, catalog: Catalog, options: JobOptions,
             stmts: StatementSet) -> None:
    """Real-time drawdown: credit-priced usage of every accepted event (lateness does not matter:
    credits follow event time) -> JVM micro-batches per customer, meter and second -> with the
    grants topic, the keyed Python drawdown (credits.py) -> ledger (exactly-once) and signals
    (at-least-once, so a product sees them without waiting for a checkpoint)."""
    from pyflink.common import Types
    from pyflink.java_gateway import get_gateway
    from pyflink.table import Table

    from tallyflow import credits

    plans = {p.id for p in catalog.plans if p.credits}
    customers = sorted({s.customer for s in catalog.subscriptions if s.plan in plans})
    if not customers:
        return
    in_list = ", ".join("'" + c.replace("'", "''") + "'" for c in customers)  # SQL string literals
    meter_list = ", ".join("'" + m.id.replace("'", "''") + "'" for m in credit_meters(catalog))
    # Every accepted event, whatever its lateness: credits follow event time.
    usage = t_env.sql_query(f"""
        SELECT customer_id, meter_id, qty, CAST(rowtime AS TIMESTAMP_LTZ(3)) AS event_time FROM meter_rows
        WHERE meter_id IN ({meter_list}) AND customer_id IN ({in_list})""")
    flush_ms = int(settings.credit_flush / timedelta(milliseconds=1))
    batches = Table(get_gateway().jvm.io.tallyflow.udf.CreditBatcher.batch(t_env._j_tenv, usage._j_table, flush_ms),
                    t_env)
    t_env.create_temporary_view("credit_batches", batches)
    t_env.execute_sql(f"""CREATE TEMPORARY TABLE raw_grants (
        k BYTES, v BYTES,
        kafka_partition INT METADATA FROM 'partition' VIRTUAL,
        kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL
    ) WITH ({_raw_source(settings, options, topics.GRANTS)})""")
    inputs = t_env.to_data_stream(t_env.sql_query("""
        SELECT record, customer_id, meter_id, event_second, quantity, event_count, first_event_time,
               last_event_time, CAST(NULL AS BYTES) AS payload, CAST(NULL AS INT) AS source_partition,
               CAST(NULL AS BIGINT) AS source_offset
        FROM credit_batches
        UNION ALL
        SELECT 'grant', COALESCE(DECODE(k, 'UTF-8'), ''), CAST(NULL AS STRING), CAST(0 AS BIGINT),
               CAST(NULL AS STRING), CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), v,
               kafka_partition, kafka_offset
        FROM raw_grants"""))
    out = (inputs
           .key_by(lambda r: r.customer_id or "", key_type=Types.STRING())
           .process(credits.drawdown_function(catalog, options.credit_seeds, _fault(settings)),
                    output_type=credits.output_type())
           .name("credit-drawdown").uid("credit-drawdown"))
    t_env.create_temporary_view("credit_out", t_env.from_data_stream(out))
    ts = "TO_TIMESTAMP_LTZ({0}, 3)"
    dec = "CAST({0} AS DECIMAL(38, 12))"
    t_env.execute_sql(_json_sink(settings, "ledger_sink", topics.LEDGER, """customer_id STRING, seq BIGINT,
        kind STRING, grant_id STRING, meter_id STRING, event_time TIMESTAMP_LTZ(3), quantity DECIMAL(38, 12),
        credits DECIMAL(38, 12), priority INT, effective_at TIMESTAMP_LTZ(3), expires_at TIMESTAMP_LTZ(3),
        plan_id STRING, version INT, first_event_time TIMESTAMP_LTZ(3), last_event_time TIMESTAMP_LTZ(3),
        emitted_at TIMESTAMP_LTZ(3)"""))
    stmts.add_insert_sql(f"""INSERT INTO ledger_sink
        SELECT customer_id, seq, kind, grant_id, meter_id, {ts.format('event_time')}, {dec.format('quantity')},
               {dec.format('credits')}, priority, {ts.format('effective_at')}, {ts.format('expires_at')}, plan_id,
               version, {ts.format('first_event_time')}, {ts.format('last_event_time')}, {ts.format('emitted_at')}
        FROM credit_out WHERE `stream` = 'ledger'""")
    # Signals do not wait for a checkpoint: at-least-once, each with its customer's seq.
    t_env.execute_sql(_json_sink(settings, "signals_sink", topics.SIGNALS, """customer_id STRING, seq BIGINT,
        kind STRING, event_time TIMESTAMP_LTZ(3), balance DECIMAL(38, 12), granted DECIMAL(38, 12),
        consumed DECIMAL(38, 12), threshold DECIMAL(38, 12), grant_id STRING, reason STRING, plan_id STRING,
        first_event_time TIMESTAMP_LTZ(3), last_event_time TIMESTAMP_LTZ(3), emitted_at TIMESTAMP_LTZ(3)""",
        guarantee="at-least-once"))
    stmts.add_insert_sql(f"""INSERT INTO signals_sink
        SELECT customer_id, seq, kind, {ts.format('event_time')}, {dec.format('balance')}, {dec.format('granted')},
               {dec.format('consumed')}, {dec.format('threshold')}, grant_id, reason, plan_id,
               {ts.format('first_event_time')}, {ts.format('last_event_time')}, {ts.format('emitted_at')}
        FROM credit_out WHERE `stream` = 'signal'""")
    grants_topic = settings.topic(topics.GRANTS)
    stmts.add_insert_sql(f"""INSERT INTO dlq_sink
        SELECT ENCODE(customer_id, 'UTF-8'), payload, MAP[
            'tallyflow.reason', ENCODE(reason, 'UTF-8'),
            'tallyflow.source.topic', ENCODE('{grants_topic}', 'UTF-8'),
            'tallyflow.source.partition', ENCODE(CAST(source_partition AS STRING), 'UTF-8'),
            'tallyflow.source.offset', ENCODE(CAST(source_offset AS STRING), 'UTF-8')
        ] FROM credit_out WHERE `stream` = 'dlq'""")


def _windows(t_env: StreamTableEnvironment, settings: Settings, catalog: Catalog, stmts: StatementSet) -> None:
    """Hourly windows per customer, meter and group, adjustments from events within the allowed
    lateness, and the rating of both.

    Windows and adjustments leave the planner as one DataStream (one translation reading
    `meter_rows`; every further translation would convert each row again): the rater takes it
    as is, and the usage and adjustment sinks read it back (a few rows per window, cheap).
    """
    from pyflink.common import Types

    from tallyflow import rating

    size = flink_interval(settings.window)
    t_env.execute_sql("""CREATE TEMPORARY VIEW metered AS
        SELECT customer_id, meter_id, group_key, qty, rowtime AS event_time FROM meter_rows WHERE kind = 'on_time'""")
    # Within the allowed lateness, each late event adjusts its window: a delta with a version
    # number per window (1, 2, ...), never an overwrite of what the window reported.
    t_env.execute_sql("""CREATE TEMPORARY VIEW adjusting_metered AS
        SELECT customer_id, meter_id, group_key, qty, window_start, event_id, pt FROM meter_rows
        WHERE kind = 'adjust'""")
    # Decimals and times cross into Python as strings: exact, and free of PyFlink's legacy types.
    usage = t_env.to_data_stream(t_env.sql_query(f"""
        SELECT 'window' AS record, customer_id, meter_id, group_key, CAST(window_start AS STRING) AS window_start,
               CAST(window_end AS STRING) AS window_end, CAST(SUM(qty) AS STRING) AS quantity,
               CAST(MAX(qty) AS STRING) AS max_quantity, COUNT(*) AS event_count,
               CAST(NULL AS BIGINT) AS version, CAST(NULL AS STRING) AS event_id
        FROM TABLE(TUMBLE(TABLE metered, DESCRIPTOR(event_time), {size}))
        GROUP BY customer_id, meter_id, group_key, window_start, window_end
        UNION ALL
        SELECT 'adjustment', customer_id, meter_id, group_key, CAST(window_start AS STRING),
               CAST(window_start + {size} AS STRING), CAST(qty AS STRING), CAST(qty AS STRING), CAST(1 AS BIGINT),
               COUNT(*) OVER (PARTITION BY customer_id, meter_id, group_key, window_start ORDER BY pt
                              ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), event_id
        FROM adjusting_metered"""))
    t_env.create_temporary_view("usage_records", t_env.from_data_stream(usage))
    t_env.execute_sql(_json_sink(settings, "adjustments_sink", topics.ADJUSTMENTS, """customer_id STRING,
        meter_id STRING, group_key STRING, window_start TIMESTAMP_LTZ(3), window_end TIMESTAMP_LTZ(3),
        version BIGINT, quantity DECIMAL(38, 12), max_quantity DECIMAL(38, 12), event_count BIGINT, event_id STRING"""))
    as_time = "TO_TIMESTAMP_LTZ(UNIX_TIMESTAMP({0}, 'yyyy-MM-dd HH:mm:ss.SSS') * 1000 + CAST(RIGHT({0}, 3) AS INT), 3)"
    stmts.add_insert_sql(f"""INSERT INTO usage_sink
        SELECT customer_id, meter_id, group_key, {as_time.format('window_start')}, {as_time.format('window_end')},
               CAST(quantity AS DECIMAL(38, 12)), CAST(max_quantity AS DECIMAL(38, 12)), event_count
        FROM usage_records WHERE record = 'window'""")
    stmts.add_insert_sql(f"""INSERT INTO adjustments_sink
        SELECT customer_id, meter_id, group_key, {as_time.format('window_start')}, {as_time.format('window_end')},
               version, CAST(quantity AS DECIMAL(38, 12)), CAST(max_quantity AS DECIMAL(38, 12)), event_count, event_id
        FROM usage_records WHERE record = 'adjustment'""")
    t_env.execute_sql(_json_sink(settings, "rated_sink", topics.RATED, ", ".join(
        f"`{f}` {'INT' if f == 'version' else 'BOOLEAN' if f == 'provisional' else 'STRING'}" for f in rating.FIELDS)))
    rated = (usage
             .key_by(lambda w: "\x1f".join((w.customer_id, w.meter_id, w.group_key, w.window_start[:7])),
                     key_type=Types.STRING())
             .process(rating.rate_windows(catalog), output_type=rating.output_type())
             .name("rate-windows").uid("rate-windows"))
    stmts.add_insert("rated_sink", t_env.from_data_stream(rated))


# Read by the state backend and the local MiniCluster from the environment's configuration (set on
# a job's table config they are silently ignored); on a Flink cluster, put them in its config.yaml.
# Nearly every dedup lookup is a miss (a new event). Without these, once the dedup state outgrew
# the block cache (2.5M events), every lookup reloaded a whole SST index block: measured 2,177
# events/s instead of 27,000.
ENVIRONMENT_OPTIONS = {
    "state.backend.rocksdb.use-bloom-filter": "true",  # a miss is answered without a data block
    "state.backend.rocksdb.memory.partitioned-index-filters": "true",  # cache 4 KiB index pieces
    "taskmanager.memory.managed.size": "512m",  # RocksDB's block cache and write buffers (local)
}


def create_environment() -> StreamTableEnvironment:
    """A streaming table environment on the local MiniCluster (or the cluster `flink run` gives)."""
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import EnvironmentSettings

    _python_path_for_embedded_workers()
    env = StreamExecutionEnvironment.get_execution_environment()
    # Into the environment's own configuration: an environment created from a Configuration
    # instead lost the job's checkpoint restore (the chaos test saw windows counted twice).
    j_conf = env._j_stream_execution_environment.getConfiguration()
    for key, value in ENVIRONMENT_OPTIONS.items():
        j_conf.setString(key, value)
    t_env = StreamTableEnvironment.create(env, EnvironmentSettings.in_streaming_mode())
    t_env.get_config().set("python.executable", sys.executable)
    return t_env


def _python_path_for_embedded_workers() -> None:
    """Thread mode runs Python inside the JVM (pemja), which does not see a virtualenv's
    site-packages; the local JVM inherits this process's PYTHONPATH, so name them there."""
    import site

    paths = [*site.getsitepackages(), str(REPO_ROOT / "jobs")]
    current = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *([current] if current else [])])

"""The metering job: a pure builder of Flink SQL over a TableEnvironment, plus its configuration.

Every per-event step runs in Flink's JVM operators (Python operators measured 20-50x slower, see README):

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
      accepted credit-priced usage -> credit-batches (JVM: a row per customer and flush, summed per meter, second)
         + grants topic -> credit-drawdown (keyed Python, per customer) -> credit-ledger topic
         (exactly-once) and credit-signals topic (at-least-once: balance, alert, exhausted, restored)
All sinks are transactional Kafka sinks (exactly-once, committed on checkpoint); the loader
(loader.py) lands them in ClickHouse idempotently.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from pyflink.table import StatementSet, StreamTableEnvironment

from tallyflow.core import aggregations, rows
from tallyflow.core.catalog import Catalog, Meter
from tallyflow.settings import Settings, flink_interval
from tallyflow.stream.environment import JobOptions, configure, restart_operator_numbering
from tallyflow.stream.keys import among, keyed
from tallyflow.stream.tables import Sinks, Sources, ddl, kafka_sinks, kafka_sources
from tallyflow.wire import topics


def meter_spec(catalog: Catalog) -> str:
    """The catalog's meters as RouteEvents reads them: a line per meter, tab-separated, percent-encoded
    (id, event_type, the aggregation's per-event rule from core/aggregations.py, value, group_by
    joined by commas)."""
    q = lambda v: quote(v or "", safe="")  # noqa: E731
    return "".join(
        f"{q(m.id)}\t{q(m.event_type)}\t{q(aggregations.of(m).per_event)}\t{q(m.value)}\t"
        f"{','.join(q(g) for g in m.group_by)}\n"
        for m in catalog.meters
    )


def classify(t_env: StreamTableEnvironment, decoded, settings: Settings, catalog: Catalog) -> None:
    """Dedup, conflicts, lateness and metrics (jobs/jvm ClassifyEvents), then the sink records and
    one row per event and meter (RouteEvents), as the views `routed` and `meter_rows`."""
    from pyflink.java_gateway import get_gateway
    from pyflink.table import Table

    ms = lambda d: int(d.total_seconds() * 1000)  # noqa: E731
    routed = get_gateway().jvm.io.tallyflow.classify.Classifier.classify(
        t_env._j_tenv,
        decoded._j_table,
        ms(settings.dedup_horizon),
        ms(settings.allowed_lateness),
        ms(settings.window),
        meter_spec(catalog),
    )
    t_env.create_temporary_view("routed", Table(routed.routed(), t_env))
    t_env.create_temporary_view("meter_rows", Table(routed.metered(), t_env))


def kafka_job(t_env: StreamTableEnvironment, settings: Settings, catalog: Catalog, options: JobOptions) -> StatementSet:
    """The metering job on the pipeline's Kafka topics: configuration, sources, sinks, graph."""
    configure(t_env, settings, options)
    return build(
        t_env,
        settings,
        catalog,
        options,
        kafka_sources(t_env, settings, catalog, options),
        kafka_sinks(t_env, settings),
    )


def build(
    t_env: StreamTableEnvironment,
    settings: Settings,
    catalog: Catalog,
    options: JobOptions,
    sources: Sources,
    sinks: Sinks,
) -> StatementSet:
    """The job graph over the given source and sink tables; returns the statement set to execute."""
    restart_operator_numbering(t_env)
    decoded = t_env.sql_query(f"""
        SELECT COALESCE(d.error, CASE WHEN d.event_time <> event_time
                   THEN 'event_time crossed the future limit while decoding; resend' END) AS error,
               d.schema_id AS schema_id, d.event_id AS event_id, d.customer_id AS customer_id,
               d.event_type AS event_type, event_time, d.vals AS vals, d.dims AS dims,
               -- The original bytes matter only for a reject: carry them only there.
               CASE WHEN d.error IS NOT NULL THEN k END AS k, CASE WHEN d.error IS NOT NULL THEN v END AS v,
               kafka_partition, kafka_offset, kafka_time
        FROM {sources.events}""")
    classify(t_env, decoded, settings, catalog)
    events_topic = settings.topic(topics.EVENTS)
    stmts = t_env.create_statement_set()
    for sink in ("accepted", "late", "duplicates"):
        stmts.add_insert_sql(f"INSERT INTO {getattr(sinks, sink)} SELECT v FROM routed WHERE sink = '{sink}'")
    stmts.add_insert_sql(f"""INSERT INTO {sinks.dlq}
        SELECT k, v, MAP[
            'tallyflow.reason', ENCODE(reason, 'UTF-8'),
            'tallyflow.source.topic', ENCODE('{events_topic}', 'UTF-8'),
            'tallyflow.source.partition', ENCODE(CAST(kafka_partition AS STRING), 'UTF-8'),
            'tallyflow.source.offset', ENCODE(CAST(kafka_offset AS STRING), 'UTF-8'),
            'tallyflow.source.timestamp', ENCODE(CAST(kafka_time AS STRING), 'UTF-8')
        ] FROM routed WHERE sink = 'dlq'""")
    if catalog.meters:
        _windows(t_env, settings, catalog, stmts, sinks)
    if credit_meters(catalog):
        _credits(t_env, settings, catalog, options, stmts, sources, sinks)
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


def _credits(
    t_env: StreamTableEnvironment,
    settings: Settings,
    catalog: Catalog,
    options: JobOptions,
    stmts: StatementSet,
    sources: Sources,
    sinks: Sinks,
) -> None:
    """Real-time drawdown: credit-priced usage of every accepted event (lateness does not matter:
    credits follow event time) -> JVM micro-batches, one row per customer and flush, summed per
    meter and second -> with the grants topic, the keyed Python drawdown (stream/credits.py, one
    call per customer and flush) -> ledger (exactly-once) and signals
    (at-least-once, so a product sees them without waiting for a checkpoint)."""
    from pyflink.java_gateway import get_gateway
    from pyflink.table import Table

    from tallyflow.stream import credits

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
    batches = Table(
        get_gateway().jvm.io.tallyflow.credits.CreditBatcher.batch(t_env._j_tenv, usage._j_table, flush_ms), t_env
    )
    t_env.create_temporary_view("credit_batches", batches)
    inputs = t_env.to_data_stream(
        t_env.sql_query(f"""
        SELECT record, customer_id, batch, CAST(NULL AS BYTES) AS payload, CAST(NULL AS INT) AS source_partition,
               CAST(NULL AS BIGINT) AS source_offset
        FROM credit_batches
        UNION ALL
        SELECT 'grant', COALESCE(DECODE(k, 'UTF-8'), ''), CAST(NULL AS STRING), v, kafka_partition, kafka_offset
        FROM {sources.grants}""")
    )
    out = (
        keyed(inputs, "key-credit-inputs", "customer_id")
        .process(
            credits.drawdown_function(catalog, options.credit_seeds, _fault(settings)),
            output_type=credits.output_type(),
        )
        .name("credit-drawdown")
        .uid("credit-drawdown")
    )
    t_env.create_temporary_view("credit_out", t_env.from_data_stream(out))
    stmts.add_insert_sql(f"INSERT INTO {sinks.ledger} {_credit_projection(rows.LEDGER, 'ledger')}")
    # Signals do not wait for a checkpoint: at-least-once, each with its customer's seq.
    stmts.add_insert_sql(f"INSERT INTO {sinks.signals} {_credit_projection(rows.SIGNALS, 'signal')}")
    grants_topic = settings.topic(topics.GRANTS)
    stmts.add_insert_sql(f"""INSERT INTO {sinks.dlq}
        SELECT ENCODE(customer_id, 'UTF-8'), payload, MAP[
            'tallyflow.reason', ENCODE(reason, 'UTF-8'),
            'tallyflow.source.topic', ENCODE('{grants_topic}', 'UTF-8'),
            'tallyflow.source.partition', ENCODE(CAST(source_partition AS STRING), 'UTF-8'),
            'tallyflow.source.offset', ENCODE(CAST(source_offset AS STRING), 'UTF-8')
        ] FROM credit_out WHERE `stream` = 'dlq'""")


def _credit_projection(shape: rows.Shape, stream: str) -> str:
    """The drawdown's output (epoch milliseconds and decimal strings) as the sink's row shape."""
    cast = {"time": "TO_TIMESTAMP_LTZ(`{0}`, 3)", "decimal": "CAST(`{0}` AS DECIMAL(38, 12))"}
    columns = ", ".join(cast.get(kind, "`{0}`").format(name) for name, kind in shape.columns)
    return f"SELECT {columns} FROM credit_out WHERE `stream` = '{stream}'"


def _windows(
    t_env: StreamTableEnvironment, settings: Settings, catalog: Catalog, stmts: StatementSet, sinks: Sinks
) -> None:
    """Hourly windows per customer, meter and group, adjustments from events within the allowed
    lateness, and the rating of both.

    Windows and adjustments leave the planner as one DataStream (one translation reading
    `meter_rows`; every further translation would convert each row again): the rater takes it
    as is, and the usage and adjustment sinks read it back (a few rows per window, cheap).
    """
    from tallyflow.core.rating import rated_meters
    from tallyflow.stream import rating

    size = flink_interval(settings.window)
    ddl(
        t_env,
        """CREATE TEMPORARY VIEW metered AS
        SELECT customer_id, meter_id, group_key, qty, rowtime AS event_time FROM meter_rows WHERE kind = 'on_time'""",
    )
    # Within the allowed lateness, each late event adjusts its window: a delta with a version
    # number per window (1, 2, ...), never an overwrite of what the window reported.
    ddl(
        t_env,
        """CREATE TEMPORARY VIEW adjusting_metered AS
        SELECT customer_id, meter_id, group_key, qty, window_start, event_id, pt FROM meter_rows
        WHERE kind = 'adjust'""",
    )
    # Decimals and times cross into Python as strings: exact, and free of PyFlink's legacy types.
    usage = t_env.to_data_stream(
        t_env.sql_query(f"""
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
        FROM adjusting_metered""")
    )
    t_env.create_temporary_view("usage_records", t_env.from_data_stream(usage))
    as_time = "TO_TIMESTAMP_LTZ(UNIX_TIMESTAMP({0}, 'yyyy-MM-dd HH:mm:ss.SSS') * 1000 + CAST(RIGHT({0}, 3) AS INT), 3)"
    stmts.add_insert_sql(f"""INSERT INTO {sinks.usage}
        SELECT customer_id, meter_id, group_key, {as_time.format("window_start")}, {as_time.format("window_end")},
               CAST(quantity AS DECIMAL(38, 12)), CAST(max_quantity AS DECIMAL(38, 12)), event_count
        FROM usage_records WHERE record = 'window'""")
    stmts.add_insert_sql(f"""INSERT INTO {sinks.adjustments}
        SELECT customer_id, meter_id, group_key, {as_time.format("window_start")}, {as_time.format("window_end")},
               version, CAST(quantity AS DECIMAL(38, 12)), CAST(max_quantity AS DECIMAL(38, 12)), event_count, event_id
        FROM usage_records WHERE record = 'adjustment'""")
    rated_usage = among(usage, "rated-meters", ("customer_id", "meter_id"), rated_meters(catalog))
    rated = (
        # One key holds a customer's meter and group across its periods: a period counted from a
        # billing anchor spans two calendar months (core/rating.py keeps each period's positions).
        keyed(rated_usage, "key-windows", "customer_id", "meter_id", "group_key")
        .process(rating.rate_windows(catalog), output_type=rating.output_type())
        .name("rate-windows")
        .uid("rate-windows")
    )
    stmts.add_insert(sinks.rated, t_env.from_data_stream(rated))
    _alerts(t_env, catalog, stmts, sinks, usage, rated)


def _alerts(t_env: StreamTableEnvironment, catalog: Catalog, stmts: StatementSet, sinks: Sinks, usage, rated) -> None:
    """Usage alerts from the rated records (per customer) and spike detection on the closed
    windows (per customer, meter and group), when a plan asks for them: keyed Python per record
    or window (stream/alerts.py) -> the usage-signals topic (exactly-once: each signal once)."""
    from tallyflow.core import alerts as core_alerts
    from tallyflow.stream import alerts

    usage_alerts, spikes = alerts.enabled(catalog)
    alerted, spiking = core_alerts.customers_with(catalog, False), core_alerts.customers_with(catalog, True)

    out = []
    if usage_alerts:
        out.append(
            keyed(
                among(rated, "alerted-customers", ("customer_id",), {(c,) for c in alerted}),
                "key-rated-records",
                "customer_id",
            )
            .process(alerts.usage_alerts(catalog), output_type=alerts.output_type())
            .name("usage-alerts")
            .uid("usage-alerts")
        )
    if spikes:
        out.append(
            keyed(
                among(usage, "closed-windows", ("record", "customer_id"), {("window", c) for c in spiking}),
                "key-closed-windows",
                "customer_id",
                "meter_id",
                "group_key",
            )
            .process(alerts.spikes(catalog), output_type=alerts.output_type())
            .name("usage-anomalies")
            .uid("usage-anomalies")
        )
    if out:
        signals = out[0].union(*out[1:]) if len(out) > 1 else out[0]
        stmts.add_insert(sinks.usage_signals, t_env.from_data_stream(signals))

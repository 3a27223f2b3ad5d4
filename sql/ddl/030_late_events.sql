-- late_events: accepted events that arrived behind the watermark, so no hourly window counted
-- them. They are in `events` too (on_time = 0) and so are billed in their own period; this table
-- is the late-events output for review and reconciliation.
-- Engine: ReplacingMergeTree on the idempotency key, like `events`; readers use FINAL.
-- PARTITION BY month of event time, like `events`.
CREATE TABLE IF NOT EXISTS late_events
(
    customer_id      String,
    event_id         String,
    event_type       LowCardinality(String),
    event_time       DateTime64(3, 'UTC'),
    `values`         Map(String, Decimal(38, 12)),
    dimensions       Map(String, String),
    schema_id        UInt32,
    on_time          UInt8,
    lateness         LowCardinality(String),
    source_partition Int32,
    source_offset    Int64,
    kafka_partition  UInt32,
    kafka_offset     UInt64,
    loaded_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (customer_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000

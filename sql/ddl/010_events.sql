-- events: every valid, deduplicated usage event, as accepted by the job (the audit trail).
-- Invoices are computed from this table, so any invoice can be rebuilt from the raw events.
-- Engine: ReplacingMergeTree keyed by the idempotency key (customer_id, event_id). The stream
--   deduplicates within its horizon; the table key makes a replayed load, or a resend after the
--   horizon, collapse to one row as well. Readers use FINAL.
-- PARTITION BY month of event time: billing periods are calendar months (UTC), so an invoice
--   reads one partition, and replacing works per partition (an event keeps its month).
-- lateness: on_time (counted by its hourly window), adjust (behind the watermark but within the
-- allowed lateness: counted by a usage_adjustments row) or too_late (in late_events only).
-- on_time = 1 exactly when lateness = 'on_time'. source_partition/offset: where the job read it.
CREATE TABLE IF NOT EXISTS events
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

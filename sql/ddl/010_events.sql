-- events: every valid, deduplicated usage event, as accepted by the job (the audit trail).
-- Invoices are computed from this table, so any invoice can be rebuilt from the raw events.
-- Engine: ReplacingMergeTree keyed by the idempotency key (customer_id, event_id). The stream
--   deduplicates within its horizon; the table key makes a replayed load, or a resend after the
--   horizon, collapse to one row as well. Readers use FINAL.
-- PARTITION BY month of event time: billing periods are calendar months (UTC), so an invoice
--   reads one partition, and replacing works per partition (an event keeps its month).
-- on_time = 0 marks events that arrived behind the watermark (they skipped the hourly windows).
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
    kafka_partition  UInt32,
    kafka_offset     UInt64,
    loaded_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (customer_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000

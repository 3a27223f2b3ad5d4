-- duplicates: every resent event the job did not accept again: duplicates (same customer_id,
-- event_id and payload as the first copy) and conflicts (same id, different payload; stored for
-- review, never billed). Counted in reconciliation: records in = accepted + duplicates + rejects.
-- Engine: ReplacingMergeTree keyed by the resent record's coordinates in the events topic, so a
--   replayed load collapses. Readers use FINAL.
-- ORDER BY (customer_id, event_id, ...): review a customer's resends. PARTITION BY the month of
--   the event time: a replay of the same record reproduces it exactly (replacing works only inside
--   one partition, so an arrival time such as loaded_at would keep both copies of a replay that
--   crosses a month boundary).
CREATE TABLE IF NOT EXISTS duplicates
(
    customer_id      String,
    event_id         String,
    event_type       LowCardinality(String),
    event_time       DateTime64(3, 'UTC'),
    conflict         UInt8,
    payload_hash     Int64,
    source_partition Int32,
    source_offset    Int64,
    kafka_partition  UInt32,
    kafka_offset     UInt64,
    loaded_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (customer_id, event_id, source_partition, source_offset)
SETTINGS non_replicated_deduplication_window = 1000

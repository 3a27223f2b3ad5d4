-- credit_ledger: every credit movement the job made, immutable: `grant` (a run-time top-up, +credits),
-- `draw` (usage covered by one grant: customer, meter, event second, quantity, credits) and
-- `uncovered` (usage no grant covered: overage or paused). Catalog grants are in catalog_grants.
-- Written by the job's exactly-once ledger topic; the invoice and `tallyflow balance` read it.
-- Engine: ReplacingMergeTree whose key ends with the entry's Kafka coordinates in the ledger topic:
--   a replayed load (the same record read again) collapses, and nothing else does, so an entry
--   once written is never replaced, even by an entry that reuses its seq (reconcile flags that).
--   seq is the customer's entry number, kept in checkpointed state and continued from this table
--   by a job that starts without state. Readers use FINAL.
-- ORDER BY (customer_id, seq, ...): per-customer history in order. PARTITION BY month of
--   event_time: billing periods (a grant's event_time is its effective_at); a replayed load
--   carries the same record, so the same event_time.
CREATE TABLE IF NOT EXISTS credit_ledger
(
    customer_id      String,
    seq              UInt64,
    kind             LowCardinality(String),
    grant_id         String,
    meter_id         LowCardinality(String),
    event_time       DateTime64(3, 'UTC'),
    quantity         Decimal(38, 12),
    credits          Decimal(38, 12),
    priority         Int32,
    effective_at     Nullable(DateTime64(3, 'UTC')),
    expires_at       Nullable(DateTime64(3, 'UTC')),
    plan_id          String,
    version          UInt32,
    first_event_time Nullable(DateTime64(3, 'UTC')),
    last_event_time  Nullable(DateTime64(3, 'UTC')),
    emitted_at       DateTime64(3, 'UTC'),
    kafka_partition  UInt32,
    kafka_offset     UInt64,
    loaded_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (customer_id, seq, kafka_partition, kafka_offset)
SETTINGS non_replicated_deduplication_window = 1000

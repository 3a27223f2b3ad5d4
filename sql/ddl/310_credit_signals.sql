-- credit_signals: what the job told products in real time: `balance` after each draw or grant,
-- `alert` at a plan's alert_thresholds, `exhausted` when the balance reaches zero, `restored`
-- after a top-up, `grant_ignored` for a resent grant id. The topic is at-least-once (no wait for
-- a checkpoint: latency), so after a job restart a seq may arrive twice.
-- Engine: ReplacingMergeTree on (customer_id, seq): the last copy of a seq wins. Readers use FINAL.
-- ORDER BY (customer_id, seq): per-customer timeline. Not partitioned: replacing works only inside
--   one partition, and nothing but the key is reproduced by a replay (a signal sent again after a
--   restart has a new emitted_at, and may cover another event second), so any partition
--   expression could keep both copies. The table is small (a few rows per customer per second).
CREATE TABLE IF NOT EXISTS credit_signals
(
    customer_id      String,
    seq              UInt64,
    kind             LowCardinality(String),
    event_time       Nullable(DateTime64(3, 'UTC')),
    balance          Nullable(Decimal(38, 12)),
    granted          Nullable(Decimal(38, 12)),
    consumed         Nullable(Decimal(38, 12)),
    threshold        Nullable(Decimal(38, 12)),
    grant_id         String,
    reason           String,
    plan_id          String,
    first_event_time Nullable(DateTime64(3, 'UTC')),
    last_event_time  Nullable(DateTime64(3, 'UTC')),
    emitted_at       DateTime64(3, 'UTC'),
    kafka_partition  UInt32,
    kafka_offset     UInt64,
    loaded_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (customer_id, seq)
SETTINGS non_replicated_deduplication_window = 1000

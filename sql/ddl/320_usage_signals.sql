-- usage_signals: postpaid usage alerts and anomalies from the stream (jobs/tallyflow/core/alerts.py):
-- `included_usage` when a charge's period-to-date quantity reaches a fraction of its included
-- units, `spend` when the period's usage amounts reach an amount, `anomaly` when a closed window
-- is over its trailing baseline times the plan's factor. Exactly-once topic; a signal fires once.
-- Engine: ReplacingMergeTree on (customer_id, period, signal_key): signal_key names what fired
--   (kind, charge or series, threshold; an anomaly also its window), so a replay collapses.
-- ORDER BY (customer_id, period, signal_key): a customer's alerts of a period, read by the API.
-- Not partitioned: replacing works only inside one partition, and the table is small.
CREATE TABLE IF NOT EXISTS usage_signals
(
    customer_id     String,
    period          String,
    kind            LowCardinality(String),
    signal_key      String,
    subject         String,
    threshold       Decimal(38, 12),
    observed        Decimal(38, 12),
    `limit`         Decimal(38, 12),
    baseline        Nullable(Decimal(38, 12)),
    plan_id         String,
    currency        LowCardinality(String),
    window_start    DateTime64(3, 'UTC'),
    window_end      DateTime64(3, 'UTC'),
    kafka_partition UInt32,
    kafka_offset    UInt64,
    loaded_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (customer_id, period, signal_key)
SETTINGS non_replicated_deduplication_window = 1000

CREATE TABLE IF NOT EXISTS usage_signals ON CLUSTER `billing`
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/usage_signals', '{replica}')
ORDER BY (customer_id, period, signal_key)
SETTINGS replicated_deduplication_window = 1000

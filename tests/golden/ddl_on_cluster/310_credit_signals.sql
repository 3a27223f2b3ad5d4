CREATE TABLE IF NOT EXISTS credit_signals ON CLUSTER `billing`
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/credit_signals', '{replica}')
ORDER BY (customer_id, seq)
SETTINGS replicated_deduplication_window = 1000

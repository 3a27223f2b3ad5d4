CREATE TABLE IF NOT EXISTS credit_ledger ON CLUSTER `billing`
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/credit_ledger', '{replica}')
PARTITION BY toYYYYMM(event_time)
ORDER BY (customer_id, seq, kafka_partition, kafka_offset)
SETTINGS replicated_deduplication_window = 1000

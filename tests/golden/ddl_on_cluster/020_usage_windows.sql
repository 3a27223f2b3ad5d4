CREATE TABLE IF NOT EXISTS usage_windows ON CLUSTER `billing`
(
    customer_id      String,
    meter_id         LowCardinality(String),
    group_key        String,
    window_start     DateTime64(3, 'UTC'),
    window_end       DateTime64(3, 'UTC'),
    quantity         Decimal(38, 12),
    max_quantity     Decimal(38, 12),
    event_count      UInt64,
    kafka_partition  UInt32,
    kafka_offset     UInt64,
    loaded_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/usage_windows', '{replica}')
PARTITION BY toYYYYMM(window_start)
ORDER BY (customer_id, meter_id, window_start, group_key, kafka_partition, kafka_offset)
SETTINGS replicated_deduplication_window = 1000

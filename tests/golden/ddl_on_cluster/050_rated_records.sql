CREATE TABLE IF NOT EXISTS rated_records ON CLUSTER `billing`
(
    customer_id      String,
    period           String,
    plan_id          String,
    version          UInt32,
    segment_start    DateTime64(3, 'UTC'),
    meter_id         LowCardinality(String),
    filter_text      String,
    model            LowCardinality(String),
    window_start     DateTime64(3, 'UTC'),
    window_end       DateTime64(3, 'UTC'),
    quantity         Decimal(38, 12),
    position         Decimal(38, 12),
    amount           Decimal(76, 24),
    provisional      UInt8,
    currency         LowCardinality(String),
    kafka_partition  UInt32,
    kafka_offset     UInt64,
    loaded_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/rated_records', '{replica}')
PARTITION BY toYYYYMM(window_start)
ORDER BY (customer_id, period, meter_id, window_start, filter_text, kafka_partition, kafka_offset)
SETTINGS replicated_deduplication_window = 1000

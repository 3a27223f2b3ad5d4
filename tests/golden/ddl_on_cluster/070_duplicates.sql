CREATE TABLE IF NOT EXISTS duplicates ON CLUSTER `billing`
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/duplicates', '{replica}')
PARTITION BY toYYYYMM(event_time)
ORDER BY (customer_id, event_id, source_partition, source_offset)
SETTINGS replicated_deduplication_window = 1000

CREATE TABLE IF NOT EXISTS rejects ON CLUSTER `billing`
(
    reason           String,
    raw_key          String,
    raw_value        String,
    source_topic     String,
    source_partition Int32,
    source_offset    Int64,
    kafka_time       DateTime64(3, 'UTC'),
    dlq_partition    UInt32,
    dlq_offset       UInt64,
    loaded_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/rejects', '{replica}')
PARTITION BY toYYYYMM(kafka_time)
ORDER BY (dlq_partition, dlq_offset)
SETTINGS replicated_deduplication_window = 1000

CREATE TABLE IF NOT EXISTS events ON CLUSTER `billing`
(
    customer_id      String,
    event_id         String,
    event_type       LowCardinality(String),
    event_time       DateTime64(3, 'UTC'),
    `values`         Map(String, Decimal(38, 12)),
    dimensions       Map(String, String),
    schema_id        UInt32,
    on_time          UInt8,
    lateness         LowCardinality(String),
    source_partition Int32,
    source_offset    Int64,
    kafka_partition  UInt32,
    kafka_offset     UInt64,
    loaded_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events', '{replica}')
PARTITION BY toYYYYMM(event_time)
ORDER BY (customer_id, event_id)
SETTINGS replicated_deduplication_window = 1000

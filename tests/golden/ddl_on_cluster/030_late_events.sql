CREATE TABLE IF NOT EXISTS late_events ON CLUSTER `billing` AS events
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/late_events', '{replica}')
PARTITION BY toYYYYMM(event_time)
ORDER BY (customer_id, event_id)
SETTINGS replicated_deduplication_window = 1000

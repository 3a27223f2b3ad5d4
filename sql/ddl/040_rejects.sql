-- rejects: every record the job refused, with the reason and the original bytes, as read from
-- the dead-letter topic. Nothing is dropped silently: counts in equal accepted + duplicates +
-- rejects.
-- Engine: ReplacingMergeTree keyed by the record's coordinates in the dead-letter topic, so a
--   replayed load collapses; readers use FINAL.
-- PARTITION BY month of arrival (the Kafka timestamp): a reject may have no valid event time.
CREATE TABLE IF NOT EXISTS rejects
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
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(kafka_time)
ORDER BY (dlq_partition, dlq_offset)
SETTINGS non_replicated_deduplication_window = 1000

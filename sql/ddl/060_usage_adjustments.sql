-- usage_adjustments: what late events within the allowed lateness add to windows that already
-- reported: one row per event and meter, a delta with a version number per window (1, 2, ...),
-- referencing the window it corrects by (customer_id, meter_id, group_key, window_start). A
-- window's total is its usage_windows row plus its adjustments; nothing is overwritten.
-- Engine: ReplacingMergeTree whose key ends with the row's Kafka coordinates: a replayed load
--   collapses, nothing else does. Readers use FINAL.
-- ORDER BY the window key, then version: reads a window's history in order.
-- PARTITION BY month of the window, like usage_windows.
CREATE TABLE IF NOT EXISTS usage_adjustments
(
    customer_id      String,
    meter_id         LowCardinality(String),
    group_key        String,
    window_start     DateTime64(3, 'UTC'),
    window_end       DateTime64(3, 'UTC'),
    version          UInt32,
    quantity         Decimal(38, 12),
    max_quantity     Decimal(38, 12),
    event_count      UInt64,
    event_id         String,
    kafka_partition  UInt32,
    kafka_offset     UInt64,
    loaded_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (customer_id, meter_id, group_key, window_start, version, kafka_partition, kafka_offset)
SETTINGS non_replicated_deduplication_window = 1000

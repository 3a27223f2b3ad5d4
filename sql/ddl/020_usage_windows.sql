-- usage_windows: what each event-time window (default one hour, UTC) metered, per customer,
-- meter and group. For dashboards, drawdown and reconciliation; invoices read `events`, because
-- non-additive meters (max, unique_count, percentiles) must not be summed from windows.
-- Engine: ReplacingMergeTree whose key ends with the row's Kafka coordinates in the job's
--   output topic: exactly-once output never repeats a coordinate, so a replayed load collapses
--   and nothing else does. Readers use FINAL.
-- ORDER BY starts with (customer_id, meter_id, window_start): the dashboard and invoice access path.
-- PARTITION BY month of the window: matches billing periods.
CREATE TABLE IF NOT EXISTS usage_windows
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
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (customer_id, meter_id, window_start, group_key, kafka_partition, kafka_offset)
SETTINGS non_replicated_deduplication_window = 1000

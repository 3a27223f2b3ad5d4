-- rated_records: what each closed window added to its customer's period, priced by the job
-- (jobs/tallyflow/core/rating.py) from the period-to-date position; provisional for volume and
-- staircase. Per customer, period and charge segment, the amounts add up to the charge's
-- amount for the usage the windows metered (late events are priced at invoice time).
-- Engine: ReplacingMergeTree whose key ends with the Kafka coordinates in the job's output
--   topic: a replayed load collapses, nothing else does. Readers use FINAL.
-- ORDER BY (customer_id, period, meter_id, window_start, ...): per-customer period views.
-- PARTITION BY month of the window: a customer's own period (anchored, weekly, ...) is named by
--   its start and would make a partition per anchor day; the calendar month bounds their number.
CREATE TABLE IF NOT EXISTS rated_records
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
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (customer_id, period, meter_id, window_start, filter_text, kafka_partition, kafka_offset)
SETTINGS non_replicated_deduplication_window = 1000

CREATE TABLE IF NOT EXISTS invoice_lines_finalized ON CLUSTER `billing`
(
    customer_id      String,
    period           String,
    finalized_at     DateTime64(3, 'UTC'),
    line_no          UInt32,
    corrected_period String,
    line_type        LowCardinality(String),
    meter_id         String,
    filter_text      String,
    segment_start    String,
    quantity         Decimal(76, 24),
    amount           Decimal(38, 12)
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/invoice_lines_finalized', '{replica}')
ORDER BY (customer_id, period, line_no)

-- invoice_lines_finalized: the lines of each finalized invoice, for corrections and
-- reconciliation. corrected_period is empty for a period's own lines and names the earlier
-- period for a correction line.
-- Engine: MergeTree, append-only, written with its invoice (same finalized_at; readers match it).
-- ORDER BY (customer_id, period, line_no); no partitioning (small).
CREATE TABLE IF NOT EXISTS invoice_lines_finalized
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
ENGINE = MergeTree
ORDER BY (customer_id, period, line_no)

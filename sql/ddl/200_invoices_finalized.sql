-- invoices_finalized: invoices as issued by `tallyflow invoice --finalize`, never changed after.
-- The document is the JSON invoice exactly as printed; catalog_digest is the catalog it was priced
-- with, so a later recomputation (for corrections) prices the period the same way.
-- Engine: MergeTree, append-only; finalizing checks for an existing row first, and readers take
--   the earliest row per (customer_id, period) (argMin on finalized_at), so even a racing second
--   finalization can never replace the first.
-- ORDER BY (customer_id, period): the lookup path. No partitioning: one row per customer a month.
CREATE TABLE IF NOT EXISTS invoices_finalized
(
    customer_id    String,
    period         String,
    finalized_at   DateTime64(3, 'UTC'),
    catalog_digest String,
    currency       LowCardinality(String),
    total          Decimal(38, 12),
    document       String
)
ENGINE = MergeTree
ORDER BY (customer_id, period)

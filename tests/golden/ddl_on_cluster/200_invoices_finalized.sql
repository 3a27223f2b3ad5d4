CREATE TABLE IF NOT EXISTS invoices_finalized ON CLUSTER `billing`
(
    customer_id    String,
    period         String,
    finalized_at   DateTime64(3, 'UTC'),
    catalog_digest String,
    currency       LowCardinality(String),
    total          Decimal(38, 12),
    document       String
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/invoices_finalized', '{replica}')
ORDER BY (customer_id, period)

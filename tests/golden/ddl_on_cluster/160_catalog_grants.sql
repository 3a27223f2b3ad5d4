CREATE TABLE IF NOT EXISTS catalog_grants ON CLUSTER `billing`
(
    catalog_digest String,
    customer_id    String,
    grant_id       String,
    credits        Decimal(38, 12),
    priority       Int32,
    effective_at   DateTime64(3, 'UTC'),
    expires_at     Nullable(DateTime64(3, 'UTC'))
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/catalog_grants', '{replica}')
ORDER BY (catalog_digest, customer_id, grant_id)

CREATE TABLE IF NOT EXISTS catalog_applied ON CLUSTER `billing`
(
    catalog_digest String,
    applied_at     DateTime64(3, 'UTC'),
    source         String,
    document       String
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/catalog_applied', '{replica}')
ORDER BY applied_at

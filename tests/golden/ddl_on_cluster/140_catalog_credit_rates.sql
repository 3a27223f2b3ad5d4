CREATE TABLE IF NOT EXISTS catalog_credit_rates ON CLUSTER `billing`
(
    catalog_digest String,
    plan_id        String,
    version        UInt32,
    meter_id       String,
    credits_per_unit Decimal(38, 12)
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/catalog_credit_rates', '{replica}')
ORDER BY (catalog_digest, plan_id, version, meter_id)

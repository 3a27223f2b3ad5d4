CREATE TABLE IF NOT EXISTS catalog_plans ON CLUSTER `billing`
(
    catalog_digest     String,
    plan_id            String,
    version            UInt32,
    effective_from     DateTime64(3, 'UTC'),
    apply              LowCardinality(String),
    currency           LowCardinality(String),
    minor_units        UInt8,
    base_fee           Decimal(38, 12),
    minimum_commitment Nullable(Decimal(38, 12)),
    credit_price       Nullable(Decimal(38, 12)),
    on_exhausted       LowCardinality(String),
    overage_multiplier Decimal(38, 12)
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/catalog_plans', '{replica}')
ORDER BY (catalog_digest, plan_id, version)

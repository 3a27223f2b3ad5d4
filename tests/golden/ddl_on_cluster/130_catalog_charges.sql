CREATE TABLE IF NOT EXISTS catalog_charges ON CLUSTER `billing`
(
    catalog_digest  String,
    plan_id         String,
    version         UInt32,
    charge_index    UInt32,
    meter_id        String,
    filter          Map(String, String),
    model           LowCardinality(String),
    included_units  Decimal(38, 12),
    unit_price      Nullable(Decimal(38, 12)),
    package_size    Nullable(Decimal(38, 12)),
    package_price   Nullable(Decimal(38, 12)),
    tier_up_to      Array(Nullable(Decimal(38, 12))),
    tier_unit_price Array(Decimal(38, 12)),
    tier_flat_fee   Array(Decimal(38, 12)),
    step_up_to      Array(Nullable(Decimal(38, 12))),
    step_price      Array(Decimal(38, 12))
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/catalog_charges', '{replica}')
ORDER BY (catalog_digest, plan_id, version, charge_index)

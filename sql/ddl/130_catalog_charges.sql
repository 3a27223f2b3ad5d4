-- catalog_charges: the usage charges of every plan version; tiers and steps as parallel arrays
-- (bounds NULL = unbounded), so the invoice SQL prices them with array functions.
-- Engine: MergeTree, written once per new catalog digest; ORDER BY (catalog_digest, plan_id,
-- version, charge_index) keeps a plan's charges in catalog order; no partitioning (tiny).
CREATE TABLE IF NOT EXISTS catalog_charges
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
ENGINE = MergeTree
ORDER BY (catalog_digest, plan_id, version, charge_index)

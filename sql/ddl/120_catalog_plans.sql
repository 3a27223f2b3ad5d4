-- catalog_plans: every plan version of each applied catalog, with its fees and credit terms.
-- Engine: MergeTree, written once per new catalog digest; ORDER BY (catalog_digest, plan_id,
-- version) is the version-in-force lookup; no partitioning (tiny).
CREATE TABLE IF NOT EXISTS catalog_plans
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
ENGINE = MergeTree
ORDER BY (catalog_digest, plan_id, version)

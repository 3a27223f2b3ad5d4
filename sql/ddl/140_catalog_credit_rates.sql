-- catalog_credit_rates: credits consumed per unit of a credit-priced meter, per plan version.
-- Engine: MergeTree, written once per new catalog digest; ORDER BY the lookup key; tiny.
CREATE TABLE IF NOT EXISTS catalog_credit_rates
(
    catalog_digest String,
    plan_id        String,
    version        UInt32,
    meter_id       String,
    credits_per_unit Decimal(38, 12)
)
ENGINE = MergeTree
ORDER BY (catalog_digest, plan_id, version, meter_id)

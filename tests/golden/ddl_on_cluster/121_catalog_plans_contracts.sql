ALTER TABLE catalog_plans ON CLUSTER `billing`
    ADD COLUMN IF NOT EXISTS billing_period LowCardinality(String) DEFAULT 'month',
    ADD COLUMN IF NOT EXISTS price_key String DEFAULT '',
    ADD COLUMN IF NOT EXISTS base_fee_override Bool DEFAULT false,
    ADD COLUMN IF NOT EXISTS minimum_override Bool DEFAULT false

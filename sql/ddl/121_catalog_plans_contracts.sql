-- Upgrades a catalog_plans table made before period lengths and overrides: the plan's
-- billing_period, and per subscription with overrides a copy of every version with them applied
-- (price_key names the subscription; '' = the list price), with which fees they replaced.
-- (IF NOT EXISTS makes this a no-op on a table that has them.)
ALTER TABLE catalog_plans
    ADD COLUMN IF NOT EXISTS billing_period LowCardinality(String) DEFAULT 'month',
    ADD COLUMN IF NOT EXISTS price_key String DEFAULT '',
    ADD COLUMN IF NOT EXISTS base_fee_override Bool DEFAULT false,
    ADD COLUMN IF NOT EXISTS minimum_override Bool DEFAULT false

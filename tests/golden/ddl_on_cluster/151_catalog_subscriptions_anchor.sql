ALTER TABLE catalog_subscriptions ON CLUSTER `billing`
    ADD COLUMN IF NOT EXISTS billing_anchor Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS price_key String DEFAULT ''

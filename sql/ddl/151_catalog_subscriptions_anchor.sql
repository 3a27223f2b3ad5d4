-- Upgrades a catalog_subscriptions table made before billing anchors and overrides: the instant
-- periods count from (NULL: calendar periods) and the key of the subscription's own prices.
-- (IF NOT EXISTS makes this a no-op on a table that has them.)
ALTER TABLE catalog_subscriptions
    ADD COLUMN IF NOT EXISTS billing_anchor Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS price_key String DEFAULT ''

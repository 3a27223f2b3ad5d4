-- Upgrades a catalog_charges table made before overrides: the charges of a subscription's own
-- copy of its plan (price_key; '' = the list price), and whether an override priced each.
-- (IF NOT EXISTS makes this a no-op on a table that has them.)
ALTER TABLE catalog_charges
    ADD COLUMN IF NOT EXISTS price_key String DEFAULT '',
    ADD COLUMN IF NOT EXISTS override Bool DEFAULT false

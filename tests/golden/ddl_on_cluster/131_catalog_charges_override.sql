ALTER TABLE catalog_charges ON CLUSTER `billing`
    ADD COLUMN IF NOT EXISTS price_key String DEFAULT '',
    ADD COLUMN IF NOT EXISTS override Bool DEFAULT false

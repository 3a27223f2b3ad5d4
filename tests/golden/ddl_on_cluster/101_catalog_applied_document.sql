ALTER TABLE catalog_applied ON CLUSTER `billing`
    ADD COLUMN IF NOT EXISTS document String AFTER source

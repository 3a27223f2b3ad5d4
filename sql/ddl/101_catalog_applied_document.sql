-- Upgrades a catalog_applied table created before `tallyflow catalog show` existed: the catalog's
-- canonical JSON (the text its digest is computed from), so the catalog in force can be printed.
-- (A new table already has the column; IF NOT EXISTS makes this a no-op there.)
ALTER TABLE catalog_applied
    ADD COLUMN IF NOT EXISTS document String AFTER source

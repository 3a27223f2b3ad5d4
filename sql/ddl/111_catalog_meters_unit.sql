-- Upgrades a catalog_meters table made before time_weighted meters: the unit their integral is
-- counted in (second | minute | hour | day; '' for other aggregations).
-- (IF NOT EXISTS makes this a no-op on a table that has it.)
ALTER TABLE catalog_meters
    ADD COLUMN IF NOT EXISTS unit LowCardinality(String) DEFAULT ''

ALTER TABLE catalog_meters ON CLUSTER `billing`
    ADD COLUMN IF NOT EXISTS unit LowCardinality(String) DEFAULT ''

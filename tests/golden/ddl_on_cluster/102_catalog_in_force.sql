CREATE VIEW IF NOT EXISTS catalog_in_force ON CLUSTER `billing` AS
SELECT argMax(catalog_digest, applied_at) AS catalog_digest
FROM catalog_applied

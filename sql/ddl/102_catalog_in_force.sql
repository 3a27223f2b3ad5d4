-- catalog_in_force: the digest of the catalog in force, the one applied last (`run --catalog` or
-- `catalog apply`). Every query that prices or checks against "the current catalog" reads it
-- here, so the rule has one home.
-- No engine, ORDER BY or PARTITION: a view over catalog_applied (a few rows).
CREATE VIEW IF NOT EXISTS catalog_in_force AS
SELECT argMax(catalog_digest, applied_at) AS catalog_digest
FROM catalog_applied

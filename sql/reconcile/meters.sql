-- reconcile/meters: the meters of the catalog applied last, with their aggregation.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
SELECT meter_id, aggregation
FROM catalog_meters
WHERE catalog_digest = (SELECT argMax(catalog_digest, applied_at) FROM catalog_applied)

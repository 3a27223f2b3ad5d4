-- reconcile/meters: the meters of the catalog applied last, with their aggregation.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
SELECT meter_id, aggregation
FROM catalog_meters
WHERE catalog_digest = (SELECT catalog_digest FROM catalog_in_force)

-- reconcile/catalog_grants: the grants of the catalog applied last.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
SELECT customer_id, grant_id, toString(credits) AS credits, effective_at, expires_at
FROM catalog_grants
WHERE catalog_digest = (SELECT catalog_digest FROM catalog_in_force)

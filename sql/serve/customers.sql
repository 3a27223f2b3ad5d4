-- serve/customers: the customers of the catalog in force with their subscriptions, for the API's
-- customer list (and its 404s). Parameter: customer ('' for every customer).
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
WITH (SELECT catalog_digest FROM catalog_in_force) AS digest
SELECT customer_id, plan_id, start, `end`
FROM catalog_subscriptions
WHERE catalog_digest = digest AND ({customer:String} = '' OR customer_id = {customer:String})
ORDER BY customer_id, start

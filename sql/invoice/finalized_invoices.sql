-- finalized_invoices: the first finalized document of each customer for one period (see
-- sql/ddl/200_invoices_finalized.sql). Parameters: period ('YYYY-MM'), customer ('' = all).
-- No engine, ORDER BY or PARTITION here: a read-only query.
SELECT customer_id,
       argMin(document, finalized_at) AS document,
       argMin(catalog_digest, finalized_at) AS catalog_digest,
       min(finalized_at) AS first_finalized_at
FROM invoices_finalized
WHERE period = {period:String}
  AND ({customer:String} = '' OR customer_id = {customer:String})
GROUP BY customer_id
ORDER BY customer_id

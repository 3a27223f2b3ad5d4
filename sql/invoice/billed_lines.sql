-- billed_lines: what finalized invoices have billed so far for each earlier period of each
-- customer (its own lines, plus correction lines of later invoices), per line key, with the
-- catalog digest the period was first finalized with, so the recomputation for corrections
-- prices it the same way. Parameters: before (periods that start before it), customer ('' = all).
-- Only the first finalized document of a period counts (argMin), like finalized_invoices.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
WITH firsts AS (
    SELECT customer_id, period, min(finalized_at) AS first_at, argMin(catalog_digest, finalized_at) AS digest
    FROM invoices_finalized
    WHERE ({customer:String} = '' OR customer_id = {customer:String})
    GROUP BY customer_id, period
)
SELECT l.customer_id AS customer_id,
       if(l.corrected_period = '', l.period, l.corrected_period) AS billed_period,
       l.billed_start AS billed_start,
       f2.digest AS digest,
       l.line_type AS line_type, l.meter_id AS meter_id, l.filter_text AS filter_text, l.ref AS ref,
       l.segment_start AS segment_start,
       sum(l.quantity) AS quantity, sum(l.amount) AS amount
FROM invoice_lines_finalized AS l
INNER JOIN firsts AS f ON f.customer_id = l.customer_id AND f.period = l.period AND f.first_at = l.finalized_at
INNER JOIN firsts AS f2 ON f2.customer_id = l.customer_id
    AND f2.period = if(l.corrected_period = '', l.period, l.corrected_period)
WHERE l.billed_start < {before:DateTime64(3, 'UTC')}
GROUP BY customer_id, billed_period, billed_start, digest, line_type, meter_id, filter_text, ref, segment_start
ORDER BY customer_id, billed_start

-- billed_lines: what finalized invoices before a period have already billed, per customer,
-- billed period (a period's own lines, and corrections of it on later invoices), and line.
-- Only the first finalization of each (customer, period) counts. Parameters: before ('YYYY-MM'),
-- customer ('' = all). No engine, ORDER BY or PARTITION here: a read-only query.
WITH firsts AS (
    SELECT customer_id, period, min(finalized_at) AS first_at, argMin(catalog_digest, finalized_at) AS digest
    FROM invoices_finalized
    WHERE period < {before:String}
      AND ({customer:String} = '' OR customer_id = {customer:String})
    GROUP BY customer_id, period
)
SELECT l.customer_id AS customer_id,
       if(l.corrected_period = '', l.period, l.corrected_period) AS billed_period,
       f2.digest AS digest,
       l.line_type AS line_type, l.meter_id AS meter_id, l.filter_text AS filter_text,
       l.segment_start AS segment_start,
       sum(l.quantity) AS quantity, sum(l.amount) AS amount
FROM invoice_lines_finalized AS l
INNER JOIN firsts AS f ON f.customer_id = l.customer_id AND f.period = l.period AND f.first_at = l.finalized_at
INNER JOIN firsts AS f2 ON f2.customer_id = l.customer_id
    AND f2.period = if(l.corrected_period = '', l.period, l.corrected_period)
GROUP BY customer_id, billed_period, digest, line_type, meter_id, filter_text, segment_start
ORDER BY customer_id, billed_period

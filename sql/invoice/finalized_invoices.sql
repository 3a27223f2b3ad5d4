-- finalized_invoices: the stored document of every finalized invoice of the selected periods
-- (jobs/tallyflow/core/periods.py Selection: those starting in [sel_start, sel_end), named
-- sel_name when it is not ''; or, sel_mode 'contains', the one containing sel_start). The first
-- stored document wins (argMin on finalized_at), so a racing second finalize changes nothing.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
SELECT customer_id, period,
       min(period_start) AS period_start,
       argMin(period_end, finalized_at) AS period_end,
       argMin(document, finalized_at) AS document,
       argMin(catalog_digest, finalized_at) AS catalog_digest,
       min(finalized_at) AS first_finalized_at
FROM (
    SELECT * FROM invoices_finalized
    WHERE ({customer:String} = '' OR customer_id = {customer:String})
      AND if({sel_mode:String} = 'contains',
             period_start <= {sel_start:DateTime64(3, 'UTC')} AND {sel_start:DateTime64(3, 'UTC')} < period_end,
             period_start >= {sel_start:DateTime64(3, 'UTC')} AND period_start < {sel_end:DateTime64(3, 'UTC')}
                 AND ({sel_name:String} = '' OR period = {sel_name:String}))
)
GROUP BY customer_id, period
ORDER BY customer_id, period_start

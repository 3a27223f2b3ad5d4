-- unsettled_periods: the billing periods that hold usage (accepted events or credit ledger
-- entries) and have a subscribed customer without a finalized invoice; the settlement window
-- decides which of them are due (jobs/tallyflow/billing/invoice.py, finalize_due).
-- Reads the tables' month partitions (system.parts), not their rows, so it costs the same
-- however many events a period holds.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
WITH
    (SELECT catalog_digest FROM catalog_in_force) AS digest,
    periods AS (
        SELECT DISTINCT concat(substring(partition, 1, 4), '-', substring(partition, 5, 2)) AS period,
               toDateTime64(concat(period, '-01 00:00:00'), 3, 'UTC') AS period_start,
               period_start + INTERVAL 1 MONTH AS period_end
        FROM system.parts
        WHERE database = currentDatabase() AND table IN ('events', 'credit_ledger') AND active
          AND match(partition, '^[0-9]{6}$')
    )
SELECT p.period AS period, p.period_end AS period_end, uniqExact(s.customer_id) AS open_customers
FROM periods AS p
INNER JOIN catalog_subscriptions AS s ON s.catalog_digest = digest
LEFT ANTI JOIN (SELECT DISTINCT period, customer_id FROM invoices_finalized) AS f
    ON f.period = p.period AND f.customer_id = s.customer_id
WHERE s.start < p.period_end AND ifNull(s.`end`, p.period_end) > p.period_start
GROUP BY p.period, p.period_end
ORDER BY p.period

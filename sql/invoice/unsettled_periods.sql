-- unsettled_periods: the months (YYYY-MM) in which some subscription's period starts that has
-- ended by {due} (a period's end plus the settlement window has passed) and still has no
-- finalized invoice for that customer; jobs/tallyflow/billing/invoice.py finalize_due finalizes
-- the periods starting in each. Only periods that overlap the months holding usage (accepted
-- events or credit ledger entries) count: it reads the tables' month partitions (system.parts),
-- not their rows, so it costs the same however many events a period holds. Periods are each
-- subscription's own (sql/ddl/000..006).
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
WITH
    (SELECT catalog_digest FROM catalog_in_force) AS digest,
    months AS (
        SELECT DISTINCT toDateTime64(concat(substring(partition, 1, 4), '-', substring(partition, 5, 2), '-01 00:00:00'),
                                     3, 'UTC') AS month_start
        FROM system.parts
        WHERE database = currentDatabase() AND table IN ('events', 'credit_ledger') AND active
          AND match(partition, '^[0-9]{6}$')
    ),
    (SELECT min(month_start) FROM months) AS usage_from,
    (SELECT addMonths(max(month_start), 1) FROM months) AS usage_to,
    periods AS (
        SELECT customer_id, ps, pe
        FROM (
            SELECT s.customer_id AS customer_id, s.start AS sub_from, s.`end` AS sub_to, l.length AS length,
                   tf_period_months(length) AS months, tf_period_anchor(s.billing_anchor, length) AS a,
                   tf_period_index(usage_from, months, a) AS k0,
                   k0 + arrayJoin(range(toUInt64(greatest(0, tf_period_index(usage_to, months, a) - k0 + 1)))) AS k,
                   tf_period_start(k, months, a) AS ps, tf_period_start(k + 1, months, a) AS pe
            FROM catalog_subscriptions AS s
            INNER JOIN (
                SELECT plan_id, any(billing_period) AS length FROM catalog_plans
                WHERE catalog_digest = digest AND price_key = '' GROUP BY plan_id
            ) AS l ON l.plan_id = s.plan_id
            WHERE s.catalog_digest = digest AND (SELECT count() FROM months) > 0
        )
        WHERE ps < usage_to AND pe > usage_from AND pe <= {due:DateTime64(3, 'UTC')}
          AND sub_from < pe AND ifNull(sub_to, pe) > ps
    )
SELECT formatDateTime(p.ps, '%Y-%m', 'UTC') AS month, max(p.pe) AS period_end, uniqExact(p.customer_id) AS open_customers
FROM periods AS p
LEFT ANTI JOIN (SELECT DISTINCT customer_id, period_start FROM invoices_finalized) AS f
    ON f.customer_id = p.customer_id AND f.period_start = p.ps
GROUP BY month
ORDER BY month

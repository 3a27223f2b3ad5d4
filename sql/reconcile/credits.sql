-- reconcile/credits: per customer and credit-priced meter, the credits the period's accepted
-- events imply (quantity x the rate of the plan version in force at each event, chosen as the
-- invoice chooses it) against what the ledger drew or recorded as uncovered for that period.
-- Parameters: period_start, period_end.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
WITH
    {period_start:DateTime64(3, 'UTC')} AS ps,
    {period_end:DateTime64(3, 'UTC')} AS pe,
    (SELECT catalog_digest FROM catalog_in_force) AS digest,
    versioned AS (
        -- Each event with its subscription's plan version in force at its time.
        SELECT e.customer_id AS customer_id, e.event_id AS event_id, any(e.event_type) AS event_type,
               any(e.`values`) AS vals, any(s.plan_id) AS plan_id,
               tf_version_in_force(groupArray(p.version), groupArray(p.effective_from), groupArray(p.apply), ps,
                                   any(e.event_time)) AS version
        FROM (SELECT * FROM events FINAL WHERE event_time >= ps AND event_time < pe) AS e
        INNER JOIN catalog_subscriptions AS s ON s.customer_id = e.customer_id AND s.catalog_digest = digest
        INNER JOIN catalog_plans AS p ON p.plan_id = s.plan_id AND p.price_key = '' AND p.catalog_digest = digest
        WHERE e.event_time >= s.start AND (s.`end` IS NULL OR e.event_time < s.`end`)
        GROUP BY e.customer_id, e.event_id
    ),
    implied AS (
        SELECT v.customer_id AS customer_id, r.meter_id AS meter_id,
               sum(toDecimal256(if(m.aggregation = 'count', toDecimal128(1, 12), v.vals[m.value_key]), 12)
                   * toDecimal256(r.credits_per_unit, 12)) AS credits
        FROM versioned AS v
        INNER JOIN catalog_credit_rates AS r
            ON r.plan_id = v.plan_id AND r.version = v.version AND r.catalog_digest = digest
        INNER JOIN catalog_meters AS m
            ON m.meter_id = r.meter_id AND m.event_type = v.event_type AND m.catalog_digest = digest
        WHERE m.aggregation = 'count' OR mapContains(v.vals, m.value_key)
        GROUP BY customer_id, meter_id
    ),
    ledger AS (
        SELECT customer_id, meter_id, toDecimal256(sum(credits), 12) AS credits
        FROM credit_ledger FINAL
        WHERE kind IN ('draw', 'uncovered') AND event_time >= ps AND event_time < pe
        GROUP BY customer_id, meter_id
    )
SELECT if(i.customer_id = '', l.customer_id, i.customer_id) AS customer_id,
       if(i.meter_id = '', l.meter_id, i.meter_id) AS meter_id,
       toString(i.credits) AS implied_credits, toString(l.credits) AS ledger_credits
FROM implied AS i
FULL OUTER JOIN ledger AS l ON l.customer_id = i.customer_id AND l.meter_id = i.meter_id
ORDER BY customer_id, meter_id

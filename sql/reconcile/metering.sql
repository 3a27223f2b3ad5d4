-- reconcile/metering: every accepted event of the period is in exactly one place. Per customer
-- and meter (of the catalog applied last), the events `events` holds are metered by lateness
-- class and set against where the job put them: on_time -> usage_windows, adjust ->
-- usage_adjustments, too_late -> late_events. Counts and quantities (SUM of what each event
-- contributes) must match. Parameters: period_start, period_end, and aggregations / per_event:
-- parallel arrays giving what the job's router emits per event of each aggregation (one |
-- one_if_dimension | value), from the registry in jobs/tallyflow/core/aggregations.py, so this
-- query names no aggregation itself.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
WITH
    {period_start:DateTime64(3, 'UTC')} AS ps,
    {period_end:DateTime64(3, 'UTC')} AS pe,
    (SELECT catalog_digest FROM catalog_in_force) AS digest,
    meters AS (
        SELECT meter_id, event_type, aggregation, value_key FROM catalog_meters WHERE catalog_digest = digest
    ),
    metered AS (
        -- What each event contributes to its meter, as the job's windows count it.
        SELECT e.customer_id AS customer_id, m.meter_id AS meter_id, e.source AS source,
               count() AS n,
               sum(if(rule = 'value', e.`values`[m.value_key], toDecimal128(1, 12))) AS q
        FROM (
            SELECT customer_id, event_type, `values`, dimensions, lateness AS source
            FROM events FINAL WHERE event_time >= ps AND event_time < pe
            UNION ALL
            SELECT customer_id, event_type, `values`, dimensions, 'late_events' AS source
            FROM late_events FINAL WHERE event_time >= ps AND event_time < pe
        ) AS e
        INNER JOIN meters AS m ON m.event_type = e.event_type
        WHERE multiIf((transform(m.aggregation, {aggregations:Array(String)}, {per_event:Array(String)}, '') AS rule)
                          = 'one', 1,
                      rule = 'one_if_dimension', mapContains(e.dimensions, m.value_key),
                      mapContains(e.`values`, m.value_key))
        GROUP BY customer_id, meter_id, source
    ),
    outputs AS (
        SELECT customer_id, meter_id, 'usage_windows' AS source, sum(event_count) AS n, sum(quantity) AS q
        FROM usage_windows FINAL WHERE window_start >= ps AND window_start < pe GROUP BY customer_id, meter_id
        UNION ALL
        SELECT customer_id, meter_id, 'usage_adjustments', sum(event_count), sum(quantity)
        FROM usage_adjustments FINAL WHERE window_start >= ps AND window_start < pe GROUP BY customer_id, meter_id
    ),
    pairs AS (
        SELECT 'on_time' AS cls, 'usage_windows' AS output UNION ALL
        SELECT 'adjust', 'usage_adjustments' UNION ALL
        SELECT 'too_late', 'late_events'
    ),
    keys AS (
        SELECT DISTINCT customer_id, meter_id FROM metered
        UNION DISTINCT
        SELECT DISTINCT customer_id, meter_id FROM outputs
    )
SELECT k.customer_id AS customer_id, k.meter_id AS meter_id, p.cls AS lateness, p.output AS output,
       ifNull(ev.n, 0) AS events_count, toString(ifNull(ev.q, toDecimal128(0, 12))) AS events_quantity,
       ifNull(if(p.output = 'late_events', lt.n, o.n), 0) AS output_count,
       toString(ifNull(if(p.output = 'late_events', lt.q, o.q), toDecimal128(0, 12))) AS output_quantity
FROM keys AS k
CROSS JOIN pairs AS p
LEFT JOIN metered AS ev ON ev.customer_id = k.customer_id AND ev.meter_id = k.meter_id AND ev.source = p.cls
LEFT JOIN metered AS lt ON lt.customer_id = k.customer_id AND lt.meter_id = k.meter_id AND lt.source = 'late_events'
LEFT JOIN outputs AS o ON o.customer_id = k.customer_id AND o.meter_id = k.meter_id AND o.source = p.output
SETTINGS join_use_nulls = 1

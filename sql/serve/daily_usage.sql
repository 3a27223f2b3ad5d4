-- serve/daily_usage: one customer's usage per UTC day and meter (of the catalog in force), from the
-- accepted events themselves (every lateness class, so the days add up to what invoices bill).
-- quantity follows the meter's aggregation over the day: count and sum add up, max is the day's
-- maximum, unique_count counts distinct values, latest is the day's last value, p95/p99 the day's
-- percentile (exact). Parameters: customer, from_day, to_day (inclusive).
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
WITH
    (SELECT catalog_digest FROM catalog_in_force) AS digest,
    meters AS (
        SELECT meter_id, event_type, aggregation, value_key FROM catalog_meters WHERE catalog_digest = digest
    )
SELECT toDate(e.event_time) AS day, m.meter_id AS meter_id, any(m.aggregation) AS aggregation,
       count() AS events,
       toString(multiIf(
           any(m.aggregation) = 'count', toDecimal128(count(), 12),
           any(m.aggregation) = 'sum', sum(e.`values`[m.value_key]),
           any(m.aggregation) = 'max', max(e.`values`[m.value_key]),
           any(m.aggregation) = 'unique_count', toDecimal128(uniqExactIf(e.dimensions[m.value_key],
                                                            mapContains(e.dimensions, m.value_key)), 12),
           any(m.aggregation) = 'latest', argMax(e.`values`[m.value_key], e.event_time),
           any(m.aggregation) = 'p95', toDecimal128(quantileExact(0.95)(e.`values`[m.value_key]), 12),
           toDecimal128(quantileExact(0.99)(e.`values`[m.value_key]), 12))) AS quantity
FROM events AS e FINAL
INNER JOIN meters AS m ON m.event_type = e.event_type
WHERE e.customer_id = {customer:String}
  AND e.event_time >= toDateTime64({from_day:Date}, 3, 'UTC')
  AND e.event_time < toDateTime64({to_day:Date} + 1, 3, 'UTC')
  AND (m.aggregation IN ('count', 'unique_count') OR mapContains(e.`values`, m.value_key))
GROUP BY day, meter_id
ORDER BY day, meter_id

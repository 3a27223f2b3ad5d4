-- serve/daily_usage: one customer's usage per UTC day and meter (of the catalog in force), from the
-- accepted events themselves (every lateness class, so the days add up to what invoices bill).
-- quantity is the meter's period rule applied to the day's events: the aggregation registry of
-- jobs/tallyflow/core/aggregations.py arrives as parallel arrays (aggregations, period_rules,
-- levels), so this query names no aggregation; the rules are the invoice's
-- (sql/invoice/invoice_lines.sql): latest breaks ties on event time by the larger event id, a
-- quantile is the element at index floor(level x n) of the sorted values, and an aggregation
-- without a rule is refused, never priced as another. A time_weighted meter's day is the integral
-- of its resources' levels over the day (the invoice's rule, the level before the day carried
-- in), so a day without events still has usage while a level holds. Parameters: customer,
-- from_day, to_day (inclusive), and the registry.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
WITH
    (SELECT catalog_digest FROM catalog_in_force) AS digest,
    meters AS (
        SELECT meter_id, event_type, aggregation, value_key, group_by,
               transform(aggregation, {aggregations:Array(String)}, {period_rules:Array(String)}, '') AS rule,
               transform(aggregation, {aggregations:Array(String)}, {levels:Array(Float64)}, toFloat64(0)) AS level,
               transform(unit, {time_units:Array(String)}, {unit_ms:Array(UInt64)}, toUInt64(1)) AS unit_ms
        FROM catalog_meters WHERE catalog_digest = digest
    ),
    levels AS (
        -- time_weighted meters: every level reported up to the last day's end, by resource, time
        -- and event id (the earlier ones carry into the first day).
        SELECT m.meter_id AS meter_id, any(m.aggregation) AS aggregation, any(m.unit_ms) AS unit_ms,
               arraySort(x -> (x.1, x.2, x.3), groupArray((arrayMap(k -> e.dimensions[k], m.group_by), e.event_time,
                   e.event_id, toDecimal256(e.`values`[m.value_key], 12)))) AS points
        FROM events AS e FINAL
        INNER JOIN meters AS m ON m.event_type = e.event_type
        WHERE e.customer_id = {customer:String} AND m.rule = 'time_weighted'
          AND e.event_time < toDateTime64({to_day:Date} + 1, 3, 'UTC') AND mapContains(e.`values`, m.value_key)
        GROUP BY m.meter_id
    )
SELECT day, meter_id, aggregation, events, quantity
FROM (
    SELECT day, meter_id, aggregation,
           toUInt64(arrayCount(x -> toDate(x.2) = day, points)) AS events,
           toDateTime64(day, 3, 'UTC') AS day_start, day_start + INTERVAL 1 DAY AS day_end,
           toString(toDecimal128(arraySum(i -> points[i].4 * toDecimal256(greatest(0, dateDiff('millisecond',
               greatest(points[i].2, day_start),
               least(if(i < length(points) AND points[i + 1].1 = points[i].1, points[i + 1].2, day_end), day_end))), 0),
               arrayEnumerate(points)) / toDecimal256(unit_ms, 0), 12)) AS quantity
    FROM levels
    ARRAY JOIN arrayMap(d -> {from_day:Date} + d, range(toUInt64(dateDiff('day', {from_day:Date}, {to_day:Date}) + 1))) AS day
    WHERE events > 0 OR quantity != '0'
    UNION ALL

    SELECT toDate(e.event_time) AS day, m.meter_id AS meter_id, any(m.aggregation) AS aggregation,
           count() AS events, any(m.rule) AS day_rule,
           arraySort(groupArrayIf(e.`values`[m.value_key], m.rule = 'quantile')) AS sorted,
           toString(multiIf(
               day_rule = 'count', toDecimal128(count(), 12),
               day_rule = 'sum', sum(e.`values`[m.value_key]),
               day_rule = 'max', max(e.`values`[m.value_key]),
               day_rule = 'distinct', toDecimal128(uniqExact(e.dimensions[m.value_key]), 12),
               day_rule = 'latest', argMax(e.`values`[m.value_key], (e.event_time, e.event_id)),
               day_rule = 'quantile',
                   sorted[least(toUInt64(floor(any(m.level) * length(sorted))) + 1, length(sorted))],
               toDecimal128(throwIf(day_rule = '', 'an aggregation without a period rule'), 12))) AS quantity
    FROM events AS e FINAL
    INNER JOIN meters AS m ON m.event_type = e.event_type
    WHERE e.customer_id = {customer:String} AND m.rule != 'time_weighted'
      AND e.event_time >= toDateTime64({from_day:Date}, 3, 'UTC')
      AND e.event_time < toDateTime64({to_day:Date} + 1, 3, 'UTC')
      -- An event without the meter's value (or, for distinct, its dimension) is not the meter's.
      AND multiIf(m.rule = 'count', true,
                  m.rule = 'distinct', mapContains(e.dimensions, m.value_key),
                  mapContains(e.`values`, m.value_key))
    GROUP BY day, meter_id
)
ORDER BY day, meter_id

-- tf_period_start: the start of period k of a subscription whose periods have `length` and count
-- from `anchor` (NULL: calendar periods); period k ends where period k + 1 starts. The SQL home of
-- tallyflow.core.periods.period_k's bounds (tests/vectors/periods.json).
-- No engine, ORDER BY or PARTITION: a function, replaced on every migration.
CREATE OR REPLACE FUNCTION tf_period_start AS (k, length, anchor) ->
    if(length = 'week',
       addMilliseconds(ifNull(anchor, toDateTime64('1970-01-05 00:00:00', 3, 'UTC')), k * 604800000),
       addMonths(ifNull(anchor, toDateTime64('1970-01-01 00:00:00', 3, 'UTC')),
                 k * multiIf(length = 'month', 1, length = 'quarter', 3, 12)))

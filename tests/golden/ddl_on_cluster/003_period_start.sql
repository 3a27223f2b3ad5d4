CREATE OR REPLACE FUNCTION tf_period_start ON CLUSTER `billing` AS (k, length, anchor) ->
    if(length = 'week',
       addMilliseconds(ifNull(anchor, toDateTime64('1970-01-05 00:00:00', 3, 'UTC')), k * 604800000),
       addMonths(ifNull(anchor, toDateTime64('1970-01-01 00:00:00', 3, 'UTC')),
                 k * multiIf(length = 'month', 1, length = 'quarter', 3, 12)))

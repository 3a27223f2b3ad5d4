CREATE OR REPLACE FUNCTION tf_period_index ON CLUSTER `billing` AS (t, length, anchor) ->
    if(length = 'week',
       intDiv(dateDiff('millisecond', ifNull(anchor, toDateTime64('1970-01-05 00:00:00', 3, 'UTC')), t), 604800000)
           - if(dateDiff('millisecond', ifNull(anchor, toDateTime64('1970-01-05 00:00:00', 3, 'UTC')), t) % 604800000 < 0, 1, 0),
       intDiv(((toYear(t) - toYear(ifNull(anchor, toDateTime64('1970-01-01 00:00:00', 3, 'UTC')))) * 12
                  + toMonth(t) - toMonth(ifNull(anchor, toDateTime64('1970-01-01 00:00:00', 3, 'UTC')))
                  - if(addMonths(ifNull(anchor, toDateTime64('1970-01-01 00:00:00', 3, 'UTC')),
                                 (toYear(t) - toYear(ifNull(anchor, toDateTime64('1970-01-01 00:00:00', 3, 'UTC')))) * 12
                                 + toMonth(t) - toMonth(ifNull(anchor, toDateTime64('1970-01-01 00:00:00', 3, 'UTC'))))
                         > t, 1, 0)
                  + 12000 * multiIf(length = 'month', 1, length = 'quarter', 3, 12)),
              multiIf(length = 'month', 1, length = 'quarter', 3, 12)) - 12000)

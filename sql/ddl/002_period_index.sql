-- tf_period_index: k such that period k of a subscription contains instant t (docs/catalog.md,
-- Periods). The SQL home of the rule whose Python home is tallyflow.core.periods.period_index;
-- tests/vectors/periods.json holds both to the same answers.
--   Periods count from `anchor` (NULL: calendar periods, counted from 1970-01-01, or from Monday
--   1970-01-05 for weeks) in whole weeks or in 1, 3 or 12 months; a month after an anchor on the
--   31st is clipped to the month's last day (addMonths), and the next one returns to the 31st.
-- Arguments: the instant, the length (week | month | quarter | year), the anchor or NULL.
-- No engine, ORDER BY or PARTITION: a function, replaced on every migration.
CREATE OR REPLACE FUNCTION tf_period_index AS (t, length, anchor) ->
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

-- tf_period_anchor: what a subscription's periods count from: its billing anchor, or (NULL) for
-- calendar periods 1970-01-01, or Monday 1970-01-05 for weeks.
-- No engine, ORDER BY or PARTITION: a function, replaced on every migration.
CREATE OR REPLACE FUNCTION tf_period_anchor AS (anchor, length) ->
    ifNull(anchor, toDateTime64(if(length = 'week', '1970-01-05 00:00:00', '1970-01-01 00:00:00'), 3, 'UTC'))

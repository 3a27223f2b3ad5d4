CREATE OR REPLACE FUNCTION tf_period_anchor ON CLUSTER `billing` AS (anchor, length) ->
    ifNull(anchor, toDateTime64(if(length = 'week', '1970-01-05 00:00:00', '1970-01-01 00:00:00'), 3, 'UTC'))

CREATE OR REPLACE FUNCTION tf_period_start ON CLUSTER `billing` AS (k, months, anchor) ->
    if(months = 0, addMilliseconds(anchor, k * 604800000), addMonths(anchor, k * months))

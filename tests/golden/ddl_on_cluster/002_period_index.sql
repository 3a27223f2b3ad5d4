CREATE OR REPLACE FUNCTION tf_period_index ON CLUSTER `billing` AS (t, months, anchor) ->
    if(months = 0,
       intDiv(dateDiff('millisecond', anchor, t) + 52178 * 604800000, 604800000) - 52178,

       intDiv(tf_months_between(t, anchor) + 12000 * greatest(months, 1), greatest(months, 1)) - 12000)

CREATE OR REPLACE FUNCTION tf_months_between ON CLUSTER `billing` AS (t, anchor) ->
    (toYear(t) - toYear(anchor)) * 12 + toMonth(t) - toMonth(anchor)
        - if(addMonths(anchor, (toYear(t) - toYear(anchor)) * 12 + toMonth(t) - toMonth(anchor)) > t, 1, 0)

-- tf_months_between: the whole months from `anchor` to instant t, counted as addMonths counts
-- them (a month after the 31st is the month's last day): the largest m with addMonths(anchor, m)
-- at or before t. Used by tf_period_index (sql/ddl/002_period_index.sql).
-- No engine, ORDER BY or PARTITION: a function, replaced on every migration.
CREATE OR REPLACE FUNCTION tf_months_between AS (t, anchor) ->
    (toYear(t) - toYear(anchor)) * 12 + toMonth(t) - toMonth(anchor)
        - if(addMonths(anchor, (toYear(t) - toYear(anchor)) * 12 + toMonth(t) - toMonth(anchor)) > t, 1, 0)

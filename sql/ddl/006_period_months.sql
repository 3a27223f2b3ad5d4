-- tf_period_months: how many months a period of this length has (0: a week is 7 days).
-- No engine, ORDER BY or PARTITION: a function, replaced on every migration.
CREATE OR REPLACE FUNCTION tf_period_months AS (length) ->
    multiIf(length = 'week', 0, length = 'month', 1, length = 'quarter', 3, 12)

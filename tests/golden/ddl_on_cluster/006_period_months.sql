CREATE OR REPLACE FUNCTION tf_period_months ON CLUSTER `billing` AS (length) ->
    multiIf(length = 'week', 0, length = 'month', 1, length = 'quarter', 3, 12)

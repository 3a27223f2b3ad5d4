-- tf_period_start: the start of period k of a subscription whose periods have `months` months
-- (0: a week) and count from `anchor` (sql/ddl/005_period_anchor.sql); period k ends where
-- period k + 1 starts. The SQL home of tallyflow.core.periods.period_k's bounds
-- (tests/vectors/periods.json).
-- No engine, ORDER BY or PARTITION: a function, replaced on every migration.
CREATE OR REPLACE FUNCTION tf_period_start AS (k, months, anchor) ->
    if(months = 0, addMilliseconds(anchor, k * 604800000), addMonths(anchor, k * months))

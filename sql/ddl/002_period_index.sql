-- tf_period_index: k such that period k of a subscription contains instant t (docs/catalog.md,
-- Periods). The SQL home of the rule whose Python home is tallyflow.core.periods.period_index;
-- tests/vectors/periods.json holds both to the same answers.
--   Periods count from `anchor` (sql/ddl/005_period_anchor.sql: the billing anchor, or for
--   calendar periods 1970-01-01, or Monday 1970-01-05 for weeks) in whole weeks (months = 0) or
--   in 1, 3 or 12 months; a month after an anchor on the 31st is clipped to the month's last day
--   (addMonths), and the next one returns to the 31st. Floor division: intDiv truncates, so a
--   multiple of the divisor is added first (anchors lie within 1000 years of t).
-- Arguments: the instant, the months a period has (0: a week), the anchor.
-- No engine, ORDER BY or PARTITION: a function, replaced on every migration.
CREATE OR REPLACE FUNCTION tf_period_index AS (t, months, anchor) ->
    if(months = 0,
       intDiv(dateDiff('millisecond', anchor, t) + 52178 * 604800000, 604800000) - 52178,
       -- (both branches are evaluated: the month one divides by at least 1)
       intDiv(tf_months_between(t, anchor) + 12000 * greatest(months, 1), greatest(months, 1)) - 12000)

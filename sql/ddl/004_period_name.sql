-- tf_period_name: a period's name from its start (docs/catalog.md, Periods): the start date for
-- an anchored period (2026-10-15), else 2026-W42 (ISO week), 2026-10, 2026-Q4 or 2026. The SQL
-- home of tallyflow.core.periods.period_k's name (tests/vectors/periods.json).
-- No engine, ORDER BY or PARTITION: a function, replaced on every migration.
CREATE OR REPLACE FUNCTION tf_period_name AS (start, length, anchored) ->
    multiIf(anchored, formatDateTime(start, '%Y-%m-%d', 'UTC'),
            length = 'week', formatDateTime(start, '%G-W%V', 'UTC'),
            length = 'month', formatDateTime(start, '%Y-%m', 'UTC'),
            length = 'quarter', concat(toString(toYear(start)), '-Q', toString(toQuarter(start))),
            toString(toYear(start)))

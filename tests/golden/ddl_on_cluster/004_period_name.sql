CREATE OR REPLACE FUNCTION tf_period_name ON CLUSTER `billing` AS (start, length, anchored) ->
    multiIf(anchored, formatDateTime(start, '%Y-%m-%d', 'UTC'),
            length = 'week', formatDateTime(start, '%G-W%V', 'UTC'),
            length = 'month', formatDateTime(start, '%Y-%m', 'UTC'),
            length = 'quarter', concat(toString(toYear(start)), '-Q', toString(toQuarter(start))),
            toString(toYear(start)))

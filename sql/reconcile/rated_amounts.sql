-- reconcile/rated_amounts: what the job's rated records add up to, per customer, charge and
-- segment (a segment starts inside one customer period: its amounts are that period's), over the
-- windows in [rated_from, rated_to) (the periods the reconciled month's invoices cover), with
-- the quantity of the windows of the calendar month [period_start, period_end) beside it.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
SELECT r.customer_id AS customer_id, r.meter_id AS meter_id, r.filter_text AS filter_text,
       r.segment_start AS segment_start, toString(sum(r.amount)) AS rated_amount,
       toString(sumIf(r.quantity, r.window_start >= {period_start:DateTime64(3, 'UTC')}
                                  AND r.window_start < {period_end:DateTime64(3, 'UTC')})) AS rated_quantity
FROM rated_records AS r FINAL
WHERE r.window_start >= {rated_from:DateTime64(3, 'UTC')} AND r.window_start < {rated_to:DateTime64(3, 'UTC')}
GROUP BY customer_id, meter_id, filter_text, segment_start
ORDER BY customer_id, meter_id, filter_text, segment_start

-- reconcile/rated_amounts: per customer, charge (meter and filter) and plan segment, what the
-- job's rated records add up to for the period (amount and quantity). Parameters: period.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
SELECT r.customer_id AS customer_id, r.meter_id AS meter_id, r.filter_text AS filter_text,
       r.segment_start AS segment_start, toString(sum(r.amount)) AS rated_amount,
       toString(sum(r.quantity)) AS rated_quantity
FROM rated_records AS r FINAL
WHERE r.period = {period:String}
GROUP BY customer_id, meter_id, filter_text, segment_start
ORDER BY customer_id, meter_id, filter_text, segment_start

-- signal_state: per customer, the last signal number and whether the last exhausted/restored
-- signal said exhausted; seeds a job that starts without Flink state (see drawdown_state.sql).
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
SELECT customer_id,
       max(seq) AS max_seq,
       argMaxIf(kind, seq, kind IN ('exhausted', 'restored')) = 'exhausted' AS exhausted
FROM credit_signals FINAL
GROUP BY customer_id
ORDER BY customer_id

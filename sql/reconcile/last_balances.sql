-- reconcile/last_balances: each customer's last balance signal: its entry number, the time it is
-- about and the balance it announced.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
SELECT customer_id, max(seq) AS last_seq, argMax(event_time, seq) AS at,
       toString(argMax(balance, seq)) AS balance
FROM credit_signals FINAL
WHERE kind = 'balance'
GROUP BY customer_id
ORDER BY customer_id

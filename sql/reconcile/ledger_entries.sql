-- reconcile/ledger_entries: per customer, the credit ledger's entries against its distinct entry
-- numbers. The job numbers each customer's entries once (continued from this table by a job that
-- starts without state), so the two are equal; an entry number used twice means a job started
-- without continuing the ledger, and its second set of draws is listed here instead of replacing
-- the first (credit_ledger keys entries by their Kafka coordinates).
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
SELECT customer_id, count() AS entries, uniqExact(seq) AS entry_numbers
FROM credit_ledger FINAL
GROUP BY customer_id
ORDER BY customer_id

-- reconcile/ledger_before: one customer's ledger entries numbered below a signal's.
-- Parameters: customer, seq.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
SELECT seq, kind, grant_id, toString(credits) AS credits, effective_at, expires_at
FROM credit_ledger FINAL
WHERE customer_id = {customer:String} AND seq < {seq:UInt64}
ORDER BY seq

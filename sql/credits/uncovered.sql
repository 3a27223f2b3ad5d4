-- uncovered: credit-priced usage of one customer that no grant covered (billed as overage or,
-- on pause plans, not billed), per meter, from the ledger. Parameters: customer.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
SELECT meter_id, sum(quantity) AS quantity, sum(credits) AS credits
FROM credit_ledger FINAL
WHERE customer_id = {customer:String} AND kind = 'uncovered'
GROUP BY meter_id
ORDER BY meter_id

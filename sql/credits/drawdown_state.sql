-- drawdown_state: what the drawdown had done per customer and grant, from the ledger, to seed a
-- job that starts without Flink state (a fresh `tallyflow run`): each run-time grant with its
-- terms, credits drawn per grant (catalog grants included), the last entry number and the last
-- event second drawn for. One row per (customer, grant_id); grant_id '' carries customer totals.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
SELECT customer_id,
       grant_id,
       anyIf(credits, kind = 'grant') AS granted,
       anyIf(priority, kind = 'grant') AS priority,
       anyIf(effective_at, kind = 'grant') AS effective_at,
       anyIf(expires_at, kind = 'grant') AS expires_at,
       countIf(kind = 'grant') AS is_top_up,
       sumIf(credits, kind = 'draw') AS drawn,
       max(seq) AS max_seq,
       maxIf(event_time, kind IN ('draw', 'uncovered')) AS last_usage
FROM credit_ledger FINAL
GROUP BY customer_id, grant_id
ORDER BY customer_id, grant_id

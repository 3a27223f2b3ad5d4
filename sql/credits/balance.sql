-- balance: every credit grant of one customer as of a time: granted, consumed (the ledger's
-- draws), remaining and status (scheduled | active | expired at that time). Catalog grants come
-- from the catalog applied last, run-time top-ups from the ledger's grant entries.
-- Parameters: customer, at.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
WITH
    {at:DateTime64(3, 'UTC')} AS at_time,
    (SELECT catalog_digest FROM catalog_in_force) AS digest,
    grants AS (
        SELECT grant_id, 'catalog' AS source, credits, priority, effective_at, expires_at
        FROM catalog_grants
        WHERE catalog_digest = digest AND customer_id = {customer:String}
        UNION ALL
        SELECT grant_id, 'top-up' AS source, credits, priority, assumeNotNull(effective_at), expires_at
        FROM credit_ledger FINAL
        WHERE customer_id = {customer:String} AND kind = 'grant'
    ),
    draws AS (
        SELECT grant_id, sum(credits) AS consumed
        FROM credit_ledger FINAL
        WHERE customer_id = {customer:String} AND kind = 'draw'
        GROUP BY grant_id
    )
SELECT g.grant_id AS grant_id, g.source AS source, g.priority AS priority, g.effective_at AS effective_at,
       g.expires_at AS expires_at, g.credits AS granted, ifNull(d.consumed, toDecimal128(0, 12)) AS consumed,
       g.credits - consumed AS remaining,
       multiIf(at_time < g.effective_at, 'scheduled',
               g.expires_at IS NOT NULL AND at_time >= g.expires_at, 'expired', 'active') AS status
FROM grants AS g
LEFT JOIN draws AS d ON d.grant_id = g.grant_id
ORDER BY g.priority, isNull(g.expires_at), g.expires_at, g.effective_at, g.grant_id

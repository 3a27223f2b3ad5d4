-- catalog_grants: prepaid credit grants declared in the catalog (run-time top-ups arrive on
-- the grants topic). Engine: MergeTree, written once per new catalog digest; ORDER BY
-- (catalog_digest, customer_id, grant_id) is the per-customer lookup; no partitioning (small).
CREATE TABLE IF NOT EXISTS catalog_grants
(
    catalog_digest String,
    customer_id    String,
    grant_id       String,
    credits        Decimal(38, 12),
    priority       Int32,
    effective_at   DateTime64(3, 'UTC'),
    expires_at     Nullable(DateTime64(3, 'UTC'))
)
ENGINE = MergeTree
ORDER BY (catalog_digest, customer_id, grant_id)

-- catalog_subscriptions: which customer follows which plan id, and when.
-- Engine: MergeTree, written once per new catalog digest; ORDER BY (catalog_digest, customer_id,
-- start) is the per-customer lookup; no partitioning (small).
CREATE TABLE IF NOT EXISTS catalog_subscriptions
(
    catalog_digest String,
    customer_id    String,
    plan_id        String,
    start          DateTime64(3, 'UTC'),
    `end`          Nullable(DateTime64(3, 'UTC'))
)
ENGINE = MergeTree
ORDER BY (catalog_digest, customer_id, start)

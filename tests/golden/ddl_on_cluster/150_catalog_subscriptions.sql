CREATE TABLE IF NOT EXISTS catalog_subscriptions ON CLUSTER `billing`
(
    catalog_digest String,
    customer_id    String,
    plan_id        String,
    start          DateTime64(3, 'UTC'),
    `end`          Nullable(DateTime64(3, 'UTC'))
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/catalog_subscriptions', '{replica}')
ORDER BY (catalog_digest, customer_id, start)

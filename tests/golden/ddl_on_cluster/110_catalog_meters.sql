CREATE TABLE IF NOT EXISTS catalog_meters ON CLUSTER `billing`
(
    catalog_digest String,
    meter_id       String,
    event_type     String,
    aggregation    LowCardinality(String),
    value_key      String,
    group_by       Array(String)
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/catalog_meters', '{replica}')
ORDER BY (catalog_digest, meter_id)

-- catalog_meters: the meters of each applied catalog (docs/catalog.md).
-- Engine: MergeTree, written once per new catalog digest; ORDER BY (catalog_digest, meter_id)
-- is the lookup path; no partitioning (tiny).
CREATE TABLE IF NOT EXISTS catalog_meters
(
    catalog_digest String,
    meter_id       String,
    event_type     String,
    aggregation    LowCardinality(String),
    value_key      String,
    group_by       Array(String)
)
ENGINE = MergeTree
ORDER BY (catalog_digest, meter_id)

ALTER TABLE late_events ON CLUSTER `billing`
    ADD COLUMN IF NOT EXISTS lateness LowCardinality(String) AFTER on_time,
    ADD COLUMN IF NOT EXISTS source_partition Int32 AFTER lateness,
    ADD COLUMN IF NOT EXISTS source_offset Int64 AFTER source_partition

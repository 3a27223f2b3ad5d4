-- Upgrades a late_events table created before lateness classes and source coordinates existed.
ALTER TABLE late_events
    ADD COLUMN IF NOT EXISTS lateness LowCardinality(String) AFTER on_time,
    ADD COLUMN IF NOT EXISTS source_partition Int32 AFTER lateness,
    ADD COLUMN IF NOT EXISTS source_offset Int64 AFTER source_partition

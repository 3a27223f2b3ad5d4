-- late_events: accepted events that arrived too late for their window (behind the watermark and
-- past the allowed lateness), so neither a window nor an adjustment counted them. They are in
-- `events` too (lateness = 'too_late') and so are billed in their own period; this table is the
-- late-events output for review and reconciliation.
-- Same structure, engine (ReplacingMergeTree on the idempotency key; readers use FINAL), ORDER BY
-- and PARTITION BY (month of event time) as `events`, copied from it so the two never drift.
CREATE TABLE IF NOT EXISTS late_events AS events

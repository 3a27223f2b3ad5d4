-- serve/pipeline_counts: what the pipeline has landed, for the admin dashboard: accepted events by
-- lateness class, duplicates and conflicts, rejects, and the newest load time of each.
-- No parameters. FINAL: a replayed batch is counted once.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
SELECT * FROM (
SELECT 'accepted' AS what, lateness AS detail, count() AS n, max(loaded_at) AS last_loaded FROM events FINAL GROUP BY lateness
UNION ALL
SELECT if(conflict = 1, 'conflicts', 'duplicates'), '', count(), max(loaded_at) FROM duplicates FINAL GROUP BY conflict
UNION ALL
SELECT 'rejects', reason, count(), max(loaded_at) FROM rejects FINAL GROUP BY reason
)
ORDER BY what, detail

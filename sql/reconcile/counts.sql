-- reconcile/counts: how many accepted events of the period fell in each lateness class, how many
-- resends were duplicates and conflicts (by event time), and how many records were rejected
-- (all time: a reject may have no valid event time). Parameters: period_start, period_end.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
WITH
    {period_start:DateTime64(3, 'UTC')} AS ps,
    {period_end:DateTime64(3, 'UTC')} AS pe
SELECT 'accepted_' || lateness AS name, count() AS n
FROM events FINAL WHERE event_time >= ps AND event_time < pe GROUP BY lateness
UNION ALL
SELECT if(conflict, 'conflicts', 'duplicates'), count()
FROM duplicates FINAL WHERE event_time >= ps AND event_time < pe GROUP BY conflict
UNION ALL
SELECT 'late_events', count() FROM late_events FINAL WHERE event_time >= ps AND event_time < pe
UNION ALL
SELECT 'rejects_all_time', count() FROM rejects FINAL

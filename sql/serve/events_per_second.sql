-- serve/events_per_second: accepted events landed per second over the last `seconds` seconds (by
-- load time), the admin dashboard's "events in" rate. Parameter: seconds.
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
SELECT toStartOfSecond(loaded_at) AS second, count() AS n
FROM events
WHERE loaded_at >= now64(3) - toIntervalSecond({seconds:UInt32})
GROUP BY second
ORDER BY second

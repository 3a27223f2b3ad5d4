-- serve/alerts: what the stream signalled for one customer: usage alerts and anomalies
-- (usage_signals) and the credit alerts (credit_signals: alert, exhausted, restored), newest first.
-- Parameters: customer ('' for every customer), since (only signals of windows/events from then).
-- No engine, ORDER BY or PARTITION here: a read-only query over sql/ddl tables.
SELECT * FROM (
SELECT customer_id, period, kind, subject, toString(threshold) AS threshold, toString(observed) AS observed,
       toString(`limit`) AS limit_value, if(baseline IS NULL, '', toString(baseline)) AS baseline, currency,
       window_start AS at, 'usage' AS source
FROM usage_signals FINAL
WHERE ({customer:String} = '' OR customer_id = {customer:String}) AND window_start >= {since:DateTime64(3, 'UTC')}
UNION ALL
SELECT customer_id, formatDateTime(assumeNotNull(ifNull(event_time, emitted_at)), '%Y-%m') AS period, kind,
       'credits' AS subject, if(threshold IS NULL, '', toString(threshold)), if(balance IS NULL, '', toString(balance)),
       '', '', '', assumeNotNull(ifNull(event_time, emitted_at)), 'credits'
FROM credit_signals FINAL
WHERE ({customer:String} = '' OR customer_id = {customer:String}) AND kind IN ('alert', 'exhausted', 'restored')
  AND ifNull(event_time, emitted_at) >= {since:DateTime64(3, 'UTC')}
)
ORDER BY at DESC
LIMIT 500

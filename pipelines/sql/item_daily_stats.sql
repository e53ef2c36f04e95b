-- table: item_daily_stats
-- description: impressions and clicks per item and day (the day of the impression).
-- inputs: impressions, clicks
-- rule rows: 1 .. 100000000
-- rule unique: item_id, day
-- rule not_null: item_id, day, impressions, clicks
-- rule range: impressions 1 .. 1000000000
-- rule range: clicks 0 .. 1000000000
SELECT
    i.item_id,
    CAST(FLOOR(i.event_time / 86400) AS BIGINT) AS day,
    COUNT(*) AS impressions,
    SUM(CASE WHEN c.request_id IS NULL THEN 0 ELSE 1 END) AS clicks
FROM impressions i
LEFT JOIN clicks c
    ON c.request_id = i.request_id AND c.item_id = i.item_id
GROUP BY i.item_id, CAST(FLOOR(i.event_time / 86400) AS BIGINT)

-- table: query_category_clicks
-- description: clicks per query text, day and category of the clicked item.
-- inputs: impressions, clicks, item_snapshots
-- rule rows: 1 .. 100000000
-- rule unique: query_text, day, category
-- rule not_null: query_text, day, category, clicks
-- rule range: clicks 1 .. 1000000000
SELECT
    i.query_text,
    CAST(FLOOR(i.event_time / 86400) AS BIGINT) AS day,
    s.category,
    COUNT(*) AS clicks
FROM clicks c
JOIN impressions i
    ON i.request_id = c.request_id AND i.item_id = c.item_id
JOIN item_snapshots s
    ON s.item_id = c.item_id AND s.day = CAST(FLOOR(i.event_time / 86400) AS BIGINT)
GROUP BY i.query_text, CAST(FLOOR(i.event_time / 86400) AS BIGINT), s.category

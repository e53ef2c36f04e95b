-- table: query_features
-- description: per query text and day, the category most clicked for that text on earlier days
--   (ties: lowest category id) and its share of those clicks: a query classifier learned from
--   clicks. Texts without earlier clicks have no row for that day.
-- inputs: query_category_clicks, item_snapshots
-- rule rows: 1 .. 100000000
-- rule unique: query_text, day
-- rule not_null: query_text, day, learned_category, learned_share, clicks_before
-- rule range: learned_share 0 .. 1
-- rule range: learned_category 0 .. 19
WITH days AS (
    SELECT DISTINCT day FROM item_snapshots
),
before AS (
    SELECT d.day, c.query_text, c.category, SUM(c.clicks) AS clicks
    FROM days d
    JOIN query_category_clicks c ON c.day < d.day
    GROUP BY d.day, c.query_text, c.category
),
ranked AS (
    SELECT
        day,
        query_text,
        category,
        clicks,
        SUM(clicks) OVER (PARTITION BY query_text, day) AS total,
        ROW_NUMBER() OVER (PARTITION BY query_text, day ORDER BY clicks DESC, category ASC) AS rn
    FROM before
)
SELECT
    query_text,
    day,
    category AS learned_category,
    CAST(clicks AS DOUBLE) / total AS learned_share,
    CAST(total AS BIGINT) AS clicks_before
FROM ranked
WHERE rn = 1

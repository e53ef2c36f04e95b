-- table: item_features
-- description: the item store's features per item and snapshot day, from data strictly before
--   that day (the store a pipeline run on that day would have published): price relative to the
--   category median of the day, smoothed CTR, popularity, seller rating, age, condition.
-- inputs: item_snapshots, item_daily_stats
-- rule rows: 1000 .. 100000000
-- rule unique: item_id, day
-- rule not_null: item_id, day, category, brand, price, price_rel_cat, ctr_smoothed, popularity, seller_rating, age_days, condition
-- rule null_rate: price 0.0
-- rule range: price_rel_cat 0 .. 1000
-- rule range: ctr_smoothed 0 .. 1
-- rule range: seller_rating 1 .. 5
-- rule range: age_days 0 .. 100000
-- rule range: condition 0 .. 4
WITH daily AS (
    SELECT
        s.item_id,
        s.day,
        s.category,
        s.brand,
        s.price,
        s.condition,
        s.seller_rating,
        s.age_days,
        s.popularity,
        COALESCE(d.impressions, 0) AS day_impressions,
        COALESCE(d.clicks, 0) AS day_clicks
    FROM item_snapshots s
    LEFT JOIN item_daily_stats d
        ON d.item_id = s.item_id AND d.day = s.day
),
cumulative AS (
    SELECT
        *,
        COALESCE(SUM(day_impressions) OVER (
            PARTITION BY item_id ORDER BY day
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS impressions_before,
        COALESCE(SUM(day_clicks) OVER (
            PARTITION BY item_id ORDER BY day
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS clicks_before,
        MEDIAN(price) OVER (PARTITION BY category, day) AS category_median_price
    FROM daily
)
SELECT
    item_id,
    day,
    category,
    brand,
    price,
    CAST(price / category_median_price AS DOUBLE) AS price_rel_cat,
    -- Beta prior: 20 pseudo-impressions at a 5 % click rate.
    CAST((clicks_before + 1.0) / (impressions_before + 20.0) AS DOUBLE) AS ctr_smoothed,
    CAST(impressions_before AS BIGINT) AS impressions_before,
    CAST(clicks_before AS BIGINT) AS clicks_before,
    popularity,
    seller_rating,
    age_days,
    condition
FROM cumulative

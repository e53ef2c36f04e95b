-- table: candidate_features
-- description: every first-pass candidate of every query with the model's features as of the
--   latest snapshot day (what the item store and the client would send today): used to serve
--   the next round of traffic and for offline evaluation on full candidate lists.
-- inputs: candidates, queries, item_features, query_features
-- rule rows: 1000 .. 1000000000
-- rule unique: query_id, item_id
-- rule not_null: query_id, item_id, bm25_rank, day, split, bm25, cat_match, price_rel_cat, ctr_smoothed, popularity, seller_rating, age_days, condition
-- rule range: cat_match 0 .. 1
-- rule range: bm25_rank 1 .. 100000
WITH today AS (
    SELECT MAX(day) AS day FROM item_features
)
SELECT
    c.query_id,
    c.item_id,
    c.bm25_rank,
    t.day,
    CASE WHEN CAST(SUBSTR(c.query_id, 2) AS BIGINT) % 5 = 4 THEN 'holdout' ELSE 'train' END AS split,
    q.query_text,
    COALESCE(qf.learned_category, q.classifier_category) AS intent_category,
    c.bm25,
    CASE WHEN f.category = COALESCE(qf.learned_category, q.classifier_category) THEN 1 ELSE 0 END AS cat_match,
    qf.learned_share AS intent_conf,
    CASE WHEN q.user_brand IS NULL THEN NULL WHEN f.brand = q.user_brand THEN 1 ELSE 0 END AS brand_match,
    CASE WHEN q.user_budget IS NULL OR q.user_budget = 0 THEN NULL ELSE f.price / q.user_budget END AS price_ratio,
    f.price_rel_cat,
    f.ctr_smoothed,
    f.popularity,
    f.seller_rating,
    f.age_days,
    f.condition
FROM candidates c
CROSS JOIN today t
JOIN queries q ON q.query_id = c.query_id
JOIN item_features f ON f.item_id = c.item_id AND f.day = t.day
LEFT JOIN query_features qf ON qf.query_text = q.query_text AND qf.day = t.day

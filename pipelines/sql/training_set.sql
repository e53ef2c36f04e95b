-- table: training_set
-- description: examined impressions with their label, position and the model's features as of
--   the impression's day (item_features and query_features rows of that day only use data from
--   earlier days: no leakage from the future). split: query ids whose number is 4 mod 5 are
--   held out (the demo's held-out rule).
-- inputs: judgments, impressions, item_features, query_features
-- rule rows: 100 .. 1000000000
-- rule unique: request_id, item_id
-- rule not_null: request_id, query_id, item_id, label, position, day, split, bm25, cat_match, price_rel_cat, ctr_smoothed, popularity, seller_rating, age_days, condition
-- rule null_rate: price_ratio 0.6
-- rule range: label 0 .. 3
-- rule range: cat_match 0 .. 1
-- rule range: ctr_smoothed 0 .. 1
SELECT
    j.request_id,
    j.query_id,
    j.query_text,
    j.item_id,
    j.day,
    j.position,
    j.label,
    i.served_model,
    i.served_version,
    CASE WHEN CAST(SUBSTR(j.query_id, 2) AS BIGINT) % 5 = 4 THEN 'holdout' ELSE 'train' END AS split,
    i.bm25,
    CASE WHEN f.category = COALESCE(q.learned_category, i.classifier_category) THEN 1 ELSE 0 END AS cat_match,
    q.learned_share AS intent_conf,
    CASE WHEN i.user_brand IS NULL THEN NULL WHEN f.brand = i.user_brand THEN 1 ELSE 0 END AS brand_match,
    CASE WHEN i.user_budget IS NULL OR i.user_budget = 0 THEN NULL ELSE f.price / i.user_budget END AS price_ratio,
    f.price_rel_cat,
    f.ctr_smoothed,
    f.popularity,
    f.seller_rating,
    f.age_days,
    f.condition
FROM judgments j
JOIN impressions i
    ON i.request_id = j.request_id AND i.item_id = j.item_id
JOIN item_features f
    ON f.item_id = j.item_id AND f.day = j.day
LEFT JOIN query_features q
    ON q.query_text = j.query_text AND q.day = j.day
WHERE j.examined

-- table: item_store_snapshot
-- description: the sidecar's item store snapshot (docs/feature-store.md, Parquet snapshots):
--   one row per item with the features of the latest day of item_features. Serve it with
--   `rescore-sidecar --items item_store_snapshot.parquet`.
-- inputs: item_features
-- rule rows: 1000 .. 100000000
-- rule unique: id
-- rule not_null: id, category, brand, price, price_rel_cat, ctr_smoothed, popularity, seller_rating, age_days, condition
-- rule range: ctr_smoothed 0 .. 1
SELECT
    item_id AS id,
    category,
    brand,
    price,
    price_rel_cat,
    ctr_smoothed,
    popularity,
    seller_rating,
    age_days,
    condition
FROM item_features
WHERE day = (SELECT MAX(day) FROM item_features)

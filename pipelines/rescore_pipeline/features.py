"""The model's features, in model column order: columns of `training_set` and
`candidate_features`, and how the sidecar resolves each (manifest.toml)."""

FEATURES = [
    "bm25",
    "cat_match",
    "intent_conf",
    "brand_match",
    "price_ratio",
    "price_rel_cat",
    "ctr_smoothed",
    "popularity",
    "seller_rating",
    "age_days",
    "condition",
]

# The sidecar's manifest for these features. Item features (price_rel_cat, ctr_smoothed,
# popularity, seller_rating, age_days, condition, category, brand, price) come from the item
# store, loaded from the latest day of `item_features`; the client sends intent_category (the
# learned category of `query_features`, else its classifier's), intent_conf, user_budget and
# user_brand in query.features.
MANIFEST = """description = "Marketplace model trained by rescore-pipeline from logged traffic"

[features.bm25]
source = "hit_score"

[features.cat_match]
source = "eq"
args = ["intent_category", "category"]

[features.intent_conf]
source = "query"

[features.brand_match]
source = "eq"
args = ["user_brand", "brand"]

[features.price_ratio]
source = "ratio"
args = ["price", "user_budget"]
"""

//! The model's features, computed exactly as the sidecar resolves them from a request, the item
//! store and the manifest (`manifest.toml`, written by [`MANIFEST`]). Training rows and replayed
//! requests are both built from the same [`ItemFeatures`] and [`QueryFeatures`] values, so what
//! the model was trained on is what it is served.

use rescore_api::FeatureMap;
use serde::Serialize;

/// Model features, in model column order.
pub const FEATURE_NAMES: [&str; 10] = [
    "bm25",
    "query_tokens",
    "cat_match",
    "brand_match",
    "price_ratio",
    "price",
    "condition",
    "seller_rating",
    "age_days",
    "popularity",
];

/// The manifest the sidecar reads next to `model.txt` (the build appends `[guard]`, see
/// `crate::gaming::manifest`). The plain item features (price, condition, ...) need no source:
/// the default "auto" source finds them in the item store.
pub const MANIFEST: &str = r#"description = "Synthetic second-hand marketplace demo (rescore-demo build): LambdaRank over BM25 candidates"

[features.bm25]
source = "hit_score"

[features.query_tokens]
source = "query_tokens"

[features.cat_match]
source = "eq"
args = ["intent_category", "category"]

[features.brand_match]
source = "eq"
args = ["user_brand", "brand"]

[features.price_ratio]
source = "ratio"
args = ["price", "user_budget"]

# Item suspicion (docs/monitoring.md): features the seller sets, compared within the category.
[features.price]
seller_controlled = true

[features.condition]
seller_controlled = true

[features.seller_rating]
seller_controlled = true

[features.popularity]
seller_controlled = true

[suspicion]
category = "category"

[suspicion.popularity_vs_age]
popularity = "popularity"
age = "age_days"
max_z = 3.5

[suspicion.price_below_category]
price = "price"
"#;

/// One line of the item snapshot (`demo/items.jsonl`); numbers only, as the item store expects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemFeatures {
    pub category: u32,
    pub brand: u32,
    pub price: f64,
    pub condition: u32,
    pub seller_rating: f64,
    pub age_days: u32,
    pub popularity: u32,
}

impl ItemFeatures {
    /// Looks a feature up by name, as the item store does.
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "category" => Some(f64::from(self.category)),
            "brand" => Some(f64::from(self.brand)),
            "price" => Some(self.price),
            "condition" => Some(f64::from(self.condition)),
            "seller_rating" => Some(self.seller_rating),
            "age_days" => Some(f64::from(self.age_days)),
            "popularity" => Some(f64::from(self.popularity)),
            _ => None,
        }
    }
}

/// What the client knows about the query and sends in `query.features`. Unknown values are
/// left out of the request (not sent as null), so they resolve as missing.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryFeatures {
    /// The query classifier's category (noisy: not the true intent).
    pub intent_category: u32,
    /// The user's estimated spend in that category, if the user has a purchase history.
    pub user_budget: Option<f64>,
    /// The user's favourite brand, if known.
    pub user_brand: Option<u32>,
}

impl QueryFeatures {
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "intent_category" => Some(f64::from(self.intent_category)),
            "user_budget" => self.user_budget,
            "user_brand" => self.user_brand.map(f64::from),
            _ => None,
        }
    }

    /// The `query.features` object of a request.
    pub fn to_map(&self) -> FeatureMap {
        ["intent_category", "user_budget", "user_brand"]
            .into_iter()
            .filter_map(|name| self.get(name).map(|v| (name.to_owned(), Some(v))))
            .collect()
    }
}

/// Source "eq": 1 if equal, 0 if not, missing if either side is missing.
pub fn eq(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(if a? == b? { 1.0 } else { 0.0 })
}

/// Source "ratio": a / b, missing if either side is missing or b is 0.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b != 0.0).then(|| a / b)
}

/// Source "query_tokens": whitespace-separated tokens of the query text, missing without text.
pub fn query_tokens(text: Option<&str>) -> Option<f64> {
    text.map(|t| t.split_whitespace().count() as f64)
}

/// The model row for one hit, NaN where the sidecar would see a missing value.
pub fn feature_row(
    text: Option<&str>,
    hit_score: f64,
    item: &ItemFeatures,
    query: &QueryFeatures,
) -> [f64; FEATURE_NAMES.len()] {
    // Source "auto": hit inline features (none are sent) -> item store -> query features.
    let auto = |name: &str| item.get(name).or_else(|| query.get(name));
    let values = [
        Some(hit_score),
        query_tokens(text),
        eq(auto("intent_category"), auto("category")),
        eq(auto("user_brand"), auto("brand")),
        ratio(auto("price"), auto("user_budget")),
        auto("price"),
        auto("condition"),
        auto("seller_rating"),
        auto("age_days"),
        auto("popularity"),
    ];
    values.map(|v| v.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> ItemFeatures {
        ItemFeatures {
            category: 3,
            brand: 17,
            price: 99.5,
            condition: 2,
            seller_rating: 4.6,
            age_days: 12,
            popularity: 340,
        }
    }

    #[test]
    fn eq_and_ratio_definitions() {
        assert_eq!(eq(Some(3.0), Some(3.0)), Some(1.0));
        assert_eq!(eq(Some(3.0), Some(4.0)), Some(0.0));
        assert_eq!(eq(None, Some(4.0)), None);
        assert_eq!(eq(Some(3.0), None), None);
        assert_eq!(ratio(Some(50.0), Some(200.0)), Some(0.25));
        assert_eq!(ratio(Some(0.0), Some(2.0)), Some(0.0));
        assert_eq!(ratio(Some(50.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(ratio(Some(1.0), None), None);
        assert_eq!(query_tokens(Some("  gift  for dad ")), Some(3.0));
        assert_eq!(query_tokens(Some("")), Some(0.0));
        assert_eq!(query_tokens(None), None);
    }

    #[test]
    fn row_with_everything_known() {
        let q = QueryFeatures {
            intent_category: 3,
            user_budget: Some(199.0),
            user_brand: Some(5),
        };
        let row = feature_row(Some("wireless mouse"), 7.25, &item(), &q);
        assert_eq!(
            row,
            [
                7.25,
                2.0,
                1.0,
                0.0,
                99.5 / 199.0,
                99.5,
                2.0,
                4.6,
                12.0,
                340.0
            ]
        );
    }

    #[test]
    fn unknown_user_values_are_missing_not_zero() {
        let q = QueryFeatures {
            intent_category: 4,
            user_budget: None,
            user_brand: None,
        };
        let row = feature_row(None, 0.0, &item(), &q);
        assert!(row[1].is_nan(), "no text: query_tokens missing");
        assert_eq!(row[2], 0.0);
        assert!(row[3].is_nan() && row[4].is_nan());
        // Unknown values are left out of the request rather than sent as null.
        let map = q.to_map();
        assert_eq!(map.len(), 1);
        assert_eq!(map["intent_category"], Some(4.0));
    }
}

//! A version's `manifest.toml`: parsed, turned into a feature spec for the marketplace
//! model's features (plus any the manifest declares), and a request assembled with it. Any
//! text is an error naming the problem, or a spec whose rows have one value per feature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rescore_features::FeatureSpec;
use rescore_serving::Manifest;

const FEATURES: [&str; 10] = [
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

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(manifest) = toml::from_str::<Manifest>(text) else {
        return;
    };
    let mut names: Vec<String> = FEATURES.iter().map(|s| s.to_string()).collect();
    for name in manifest.features.keys() {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let Ok(spec) = FeatureSpec::new(&names, &manifest.features) else {
        return;
    };
    let request = rescore_server::decode_rescore_body(
        br#"{"query": {"text": "stand mixer", "features": {"intent_category": 12, "user_budget": 40},
             "attributes": {"country": "de", "device": "ios"}},
             "context": {"index": "items"},
             "hits": [{"id": "a", "score": 3.5, "features": {"price": 20, "brand": 41}},
                      {"id": "b", "score": -1.0}]}"#,
    )
    .expect("a valid request");
    let assembled = spec.assemble(&request, None);
    assert_eq!(assembled.rows.len(), 2 * names.len());
});

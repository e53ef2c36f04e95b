//! Item suspicion scores (docs/monitoring.md, ADR 0011): how unusual an item's seller-controlled
//! features are for its category, computed off the request path over a whole catalogue and
//! written into the items as two plain columns (`suspicion`, `suspicion_rules`), so that every
//! item store backend serves them like any other feature.
//!
//! Two parts, combined into one score in [0, 1]:
//! - a histogram-based outlier score (HBOS) per item over the seller-controlled features,
//!   against its category's own histograms, reported as the item's percentile within the
//!   category (0.99 = more unusual than 99% of the category);
//! - consistency rules between features, each a bit of `suspicion_rules`; an item that breaks
//!   one scores 1.0.
//!
//! Items are fitted in id order with sorted reductions only, so the same catalogue gives the
//! same scores bit for bit, whatever the order of the snapshot's lines.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Item column holding the combined score.
pub const SUSPICION_COLUMN: &str = "suspicion";
/// Item column holding the bit set of broken consistency rules.
pub const RULES_COLUMN: &str = "suspicion_rules";

/// A consistency rule: its bit in `suspicion_rules` and its name (the `rule` label of
/// `rescore_guard_flagged_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `ln(1 + popularity)` far above what `ln(1 + age)` predicts in the category.
    PopularityVsAge,
    /// Price far below the category's range (a bait price).
    PriceBelowCategory,
}

impl Rule {
    pub const ALL: [Rule; 2] = [Rule::PopularityVsAge, Rule::PriceBelowCategory];

    pub fn bit(self) -> u32 {
        match self {
            Rule::PopularityVsAge => 1,
            Rule::PriceBelowCategory => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::PopularityVsAge => "popularity_vs_age",
            Rule::PriceBelowCategory => "price_below_category",
        }
    }

    /// The first rule set in `bits` (rules are checked in [`Rule::ALL`] order).
    pub fn first_in(bits: u32) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| bits & r.bit() != 0)
    }
}

/// Name of the HBOS part as a `rule` label.
pub const HBOS_RULE: &str = "hbos";

/// `[suspicion]` of a manifest. The features scored by HBOS are the ones marked
/// `seller_controlled = true` under `[features.<name>]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SuspicionConfig {
    /// Item feature holding the category (items are compared within their category).
    pub category: String,
    /// Most histogram bins per feature and category (fewer for small categories: sqrt(n)).
    pub max_bins: usize,
    /// Categories with fewer items get no HBOS part (their histograms mean little).
    pub min_category_items: usize,
    pub popularity_vs_age: Option<PopularityVsAge>,
    pub price_below_category: Option<PriceBelowCategory>,
}

impl Default for SuspicionConfig {
    fn default() -> Self {
        SuspicionConfig {
            category: "category".into(),
            max_bins: 50,
            min_category_items: 30,
            popularity_vs_age: None,
            price_below_category: None,
        }
    }
}

/// `[suspicion.popularity_vs_age]`: per category, `ln(1 + popularity)` is fitted by least
/// squares on `ln(1 + age)`; the rule breaks when the item's residual is more than `max_z`
/// robust standard deviations (1.4826 × median absolute residual) above the fit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopularityVsAge {
    pub popularity: String,
    pub age: String,
    #[serde(default = "default_max_z")]
    pub max_z: f64,
}

fn default_max_z() -> f64 {
    3.5
}

/// `[suspicion.price_below_category]`: the rule breaks when the price is below `min_ratio`
/// times the category's `quantile` price.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceBelowCategory {
    pub price: String,
    #[serde(default = "default_quantile")]
    pub quantile: f64,
    #[serde(default = "default_min_ratio")]
    pub min_ratio: f64,
}

fn default_quantile() -> f64 {
    0.05
}

fn default_min_ratio() -> f64 {
    0.3
}

impl SuspicionConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.category.is_empty() {
            return Err("suspicion.category: an item feature name is needed".into());
        }
        if !(2..=1000).contains(&self.max_bins) {
            return Err("suspicion.max_bins: must be within 2..=1000".into());
        }
        if self.min_category_items < 2 {
            return Err("suspicion.min_category_items: must be at least 2".into());
        }
        if let Some(r) = &self.popularity_vs_age {
            if !(r.max_z.is_finite() && r.max_z > 0.0) {
                return Err("suspicion.popularity_vs_age.max_z: must be a positive number".into());
            }
        }
        if let Some(r) = &self.price_below_category {
            if !(r.quantile > 0.0 && r.quantile < 1.0) {
                return Err(
                    "suspicion.price_below_category.quantile: must be within (0, 1)".into(),
                );
            }
            if !(r.min_ratio > 0.0 && r.min_ratio <= 1.0) {
                return Err(
                    "suspicion.price_below_category.min_ratio: must be within (0, 1]".into(),
                );
            }
        }
        Ok(())
    }
}

/// One item's features by name, as in a snapshot line.
pub type ItemValues = BTreeMap<String, f64>;

/// An item's suspicion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ItemSuspicion {
    /// 1.0 when a rule is broken, else the HBOS percentile within the category.
    pub score: f64,
    /// Bits of the broken [`Rule`]s.
    pub rules: u32,
    /// The raw HBOS (sum over features of ln(tallest bin / the item's bin)).
    pub hbos: f64,
}

/// Histogram of one feature in one category: equal-width bins over [min, max].
#[derive(Debug, Clone, PartialEq)]
struct Histogram {
    min: f64,
    width: f64,
    counts: Vec<u32>,
    tallest: u32,
}

impl Histogram {
    fn fit(values: &[f64], max_bins: usize) -> Option<Histogram> {
        let (min, max) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(*v), hi.max(*v))
            });
        if max.partial_cmp(&min) != Some(std::cmp::Ordering::Greater) {
            return None; // one value only: nothing is unusual
        }
        let bins = ((values.len() as f64).sqrt().round() as usize).clamp(2, max_bins);
        let width = (max - min) / bins as f64;
        let mut h = Histogram {
            min,
            width,
            counts: vec![0; bins],
            tallest: 0,
        };
        for v in values {
            if let Some(b) = h.bin(*v) {
                h.counts[b] += 1;
            }
        }
        h.tallest = h.counts.iter().copied().max().unwrap_or(0);
        Some(h)
    }

    fn bin(&self, v: f64) -> Option<usize> {
        let x = (v - self.min) / self.width;
        let last = self.counts.len() - 1;
        // The maximum itself belongs to the last bin; values outside the fitted range have none.
        (x >= 0.0 && x <= (last + 1) as f64).then(|| (x as usize).min(last))
    }

    /// ln(tallest / count); a value in an empty bin or outside the range counts half an item.
    fn surprise(&self, v: f64) -> f64 {
        let count = self.bin(v).map_or(0, |b| self.counts[b]);
        let count = if count == 0 { 0.5 } else { f64::from(count) };
        (f64::from(self.tallest) / count).ln().max(0.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
struct CategoryModel {
    /// Per seller-controlled feature (in config order).
    histograms: Vec<Option<Histogram>>,
    /// The category's HBOS values, sorted (the percentile's reference).
    sorted_hbos: Vec<f64>,
    /// Intercept, slope and robust scale of the popularity fit.
    popularity_fit: Option<(f64, f64, f64)>,
    /// The price below which the price rule breaks.
    price_floor: Option<f64>,
}

/// Per-category histograms and rule parameters fitted on a catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct SuspicionModel {
    config: SuspicionConfig,
    features: Vec<String>,
    categories: BTreeMap<u64, CategoryModel>,
}

/// Group key of a category value (NaN for "no category" is a group of its own).
fn category_key(v: Option<f64>) -> u64 {
    match v {
        // -0.0 and 0.0 are one category.
        Some(v) => (v + 0.0).to_bits(),
        None => f64::NAN.to_bits(),
    }
}

fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

fn finite(item: &ItemValues, key: &str) -> Option<f64> {
    item.get(key).copied().filter(|v| v.is_finite())
}

/// HBOS reads features on a log scale: prices and popularity are heavy-tailed, and a faked
/// value is an order of magnitude off, not a few units.
fn log_scale(v: f64) -> f64 {
    v.signum() * v.abs().ln_1p()
}

impl SuspicionModel {
    /// Fits the model on a catalogue: `(id, features)` pairs, in any order.
    pub fn fit(
        config: &SuspicionConfig,
        seller_controlled: &[String],
        items: &[(String, ItemValues)],
    ) -> SuspicionModel {
        let mut order: Vec<&(String, ItemValues)> = items.iter().collect();
        order.sort_by(|a, b| a.0.cmp(&b.0));
        let mut groups: BTreeMap<u64, Vec<&ItemValues>> = BTreeMap::new();
        for (_, item) in order {
            groups
                .entry(category_key(finite(item, &config.category)))
                .or_default()
                .push(item);
        }
        let mut model = SuspicionModel {
            config: config.clone(),
            features: seller_controlled.to_vec(),
            categories: BTreeMap::new(),
        };
        for (key, members) in groups {
            let big_enough = members.len() >= config.min_category_items;
            let histograms = seller_controlled
                .iter()
                .map(|f| {
                    let values: Vec<f64> = members
                        .iter()
                        .filter_map(|i| finite(i, f).map(log_scale))
                        .collect();
                    (big_enough && values.len() >= config.min_category_items)
                        .then(|| Histogram::fit(&values, config.max_bins))
                        .flatten()
                })
                .collect();
            let mut category = CategoryModel {
                histograms,
                sorted_hbos: Vec::new(),
                popularity_fit: config
                    .popularity_vs_age
                    .as_ref()
                    .filter(|_| big_enough)
                    .and_then(|r| popularity_fit(r, &members)),
                price_floor: config
                    .price_below_category
                    .as_ref()
                    .filter(|_| big_enough)
                    .and_then(|r| {
                        let mut prices: Vec<f64> =
                            members.iter().filter_map(|i| finite(i, &r.price)).collect();
                        prices.sort_by(f64::total_cmp);
                        quantile(&prices, r.quantile).map(|q| q * r.min_ratio)
                    }),
            };
            if big_enough {
                let mut hbos: Vec<f64> = members.iter().map(|i| model.hbos(&category, i)).collect();
                hbos.sort_by(f64::total_cmp);
                category.sorted_hbos = hbos;
            }
            model.categories.insert(key, category);
        }
        model
    }

    fn hbos(&self, category: &CategoryModel, item: &ItemValues) -> f64 {
        self.features
            .iter()
            .zip(&category.histograms)
            .filter_map(|(f, h)| Some(h.as_ref()?.surprise(log_scale(finite(item, f)?))))
            .sum()
    }

    /// The suspicion of one item (of the catalogue, or an update scored against it).
    pub fn score(&self, item: &ItemValues) -> ItemSuspicion {
        let Some(category) = self
            .categories
            .get(&category_key(finite(item, &self.config.category)))
        else {
            return ItemSuspicion {
                score: 0.0,
                rules: 0,
                hbos: 0.0,
            };
        };
        let hbos = self.hbos(category, item);
        let sorted = &category.sorted_hbos;
        let percentile = if sorted.is_empty() {
            0.0
        } else {
            // Share of the category strictly less unusual than this item.
            sorted.partition_point(|v| *v < hbos) as f64 / sorted.len() as f64
        };
        let mut rules = 0;
        if let (Some(r), Some((a, b, scale))) =
            (&self.config.popularity_vs_age, category.popularity_fit)
        {
            if let (Some(p), Some(age)) = (finite(item, &r.popularity), finite(item, &r.age)) {
                let residual = p.max(0.0).ln_1p() - (a + b * age.max(0.0).ln_1p());
                if residual > r.max_z * scale {
                    rules |= Rule::PopularityVsAge.bit();
                }
            }
        }
        if let (Some(r), Some(floor)) = (&self.config.price_below_category, category.price_floor) {
            if finite(item, &r.price).is_some_and(|p| p < floor) {
                rules |= Rule::PriceBelowCategory.bit();
            }
        }
        ItemSuspicion {
            score: if rules != 0 { 1.0 } else { percentile },
            rules,
            hbos,
        }
    }

    /// Fits on `items` and scores each of them, in input order.
    pub fn annotate(
        config: &SuspicionConfig,
        seller_controlled: &[String],
        items: &[(String, ItemValues)],
    ) -> Vec<ItemSuspicion> {
        let model = SuspicionModel::fit(config, seller_controlled, items);
        items.iter().map(|(_, i)| model.score(i)).collect()
    }
}

/// Least squares of ln(1 + popularity) on ln(1 + age), with a robust residual scale.
fn popularity_fit(rule: &PopularityVsAge, members: &[&ItemValues]) -> Option<(f64, f64, f64)> {
    let points: Vec<(f64, f64)> = members
        .iter()
        .filter_map(|i| {
            Some((
                finite(i, &rule.age)?.max(0.0).ln_1p(),
                finite(i, &rule.popularity)?.max(0.0).ln_1p(),
            ))
        })
        .collect();
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let a = my - b * mx;
    let mut abs_residuals: Vec<f64> = points.iter().map(|p| (p.1 - a - b * p.0).abs()).collect();
    abs_residuals.sort_by(f64::total_cmp);
    let scale = 1.4826 * quantile(&abs_residuals, 0.5)?;
    (scale > 0.0).then_some((a, b, scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    fn config() -> SuspicionConfig {
        SuspicionConfig {
            popularity_vs_age: Some(PopularityVsAge {
                popularity: "popularity".into(),
                age: "age_days".into(),
                max_z: 3.5,
            }),
            price_below_category: Some(PriceBelowCategory {
                price: "price".into(),
                quantile: 0.05,
                min_ratio: 0.3,
            }),
            ..SuspicionConfig::default()
        }
    }

    fn seller() -> Vec<String> {
        ["price", "condition", "popularity"]
            .map(String::from)
            .to_vec()
    }

    /// Two categories of plausible items, and three manipulated ones in category 1.
    fn catalogue(seed: u64) -> Vec<(String, ItemValues)> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut items = Vec::new();
        for i in 0..600 {
            let category = (i % 2) as f64;
            let age: f64 = rng.gen_range(0.0..100.0);
            let price = (if category == 0.0 { 20.0 } else { 200.0 }) * rng.gen_range(0.6..1.6);
            let popularity = (1.0 + age).ln() * 3.0 + rng.gen_range(0.0..3.0);
            let values = [
                ("category", category),
                ("price", price),
                ("condition", f64::from(rng.gen_range(0..5u8))),
                ("popularity", popularity.round()),
                ("age_days", age.round()),
            ];
            items.push((
                format!("i{i}"),
                values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ));
        }
        let gamed = [
            ("g_pop", 1.0, 250.0, 2.0, 300.0),
            ("g_price", 1.0, 1.0, 2.0, 10.0),
            ("g_both", 1.0, 2.0, 4.0, 400.0),
        ];
        for (id, category, price, condition, popularity) in gamed {
            let values = [
                ("category", category),
                ("price", price),
                ("condition", condition),
                ("popularity", popularity),
                ("age_days", 3.0),
            ];
            items.push((
                id.to_string(),
                values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ));
        }
        items
    }

    #[test]
    fn manipulated_items_break_the_rules_and_plain_ones_rarely_do() {
        let items = catalogue(7);
        let scores = SuspicionModel::annotate(&config(), &seller(), &items);
        let by_id: BTreeMap<&str, ItemSuspicion> = items
            .iter()
            .map(|(id, _)| id.as_str())
            .zip(scores.iter().copied())
            .collect();
        assert_eq!(by_id["g_pop"].rules, Rule::PopularityVsAge.bit());
        assert_eq!(by_id["g_price"].rules, Rule::PriceBelowCategory.bit());
        assert_eq!(
            by_id["g_both"].rules,
            Rule::PopularityVsAge.bit() | Rule::PriceBelowCategory.bit()
        );
        for id in ["g_pop", "g_price", "g_both"] {
            assert_eq!(by_id[id].score, 1.0, "{id}");
            assert!(by_id[id].hbos > 0.0, "{id}");
        }
        let plain: Vec<&ItemSuspicion> = by_id
            .iter()
            .filter(|(id, _)| id.starts_with('i'))
            .map(|(_, s)| s)
            .collect();
        let ruled = plain.iter().filter(|s| s.rules != 0).count();
        assert!(ruled <= 6, "{ruled} of 600 plain items break a rule");
        assert!(plain
            .iter()
            .all(|s| (0.0..1.0).contains(&s.score) || s.rules != 0));
        // The percentile spreads over the category.
        let high = plain.iter().filter(|s| s.score >= 0.9).count();
        assert!((40..=100).contains(&high), "{high} plain items at >= 0.9");
    }

    #[test]
    fn scores_are_stable_across_rebuilds_in_any_line_order() {
        let items = catalogue(11);
        let first = SuspicionModel::annotate(&config(), &seller(), &items);
        let mut shuffled = items.clone();
        shuffled.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(3));
        let again = SuspicionModel::annotate(&config(), &seller(), &shuffled);
        let by_id: BTreeMap<&str, (f64, u32)> = shuffled
            .iter()
            .zip(&again)
            .map(|((id, _), s)| (id.as_str(), (s.score, s.rules)))
            .collect();
        for ((id, _), s) in items.iter().zip(&first) {
            let (score, rules) = by_id[id.as_str()];
            assert_eq!(score.to_bits(), s.score.to_bits(), "{id}");
            assert_eq!(rules, s.rules, "{id}");
        }
    }

    #[test]
    fn small_categories_and_missing_values_score_zero_not_nan() {
        let items: Vec<(String, ItemValues)> = (0..5)
            .map(|i| {
                (
                    format!("i{i}"),
                    [("category".to_string(), 9.0), ("price".to_string(), 1.0)]
                        .into_iter()
                        .collect(),
                )
            })
            .collect();
        let model = SuspicionModel::fit(&config(), &seller(), &items);
        for (_, item) in &items {
            let s = model.score(item);
            assert_eq!((s.score, s.rules, s.hbos), (0.0, 0, 0.0));
        }
        // An unknown category has nothing to compare with.
        let unknown: ItemValues = [("category".to_string(), 99.0)].into_iter().collect();
        assert_eq!(model.score(&unknown).score, 0.0);
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let mut bad = config();
        bad.max_bins = 1;
        assert!(bad.validate().expect_err("bins").contains("max_bins"));
        let mut bad = config();
        if let Some(r) = bad.price_below_category.as_mut() {
            r.quantile = 1.5;
        }
        assert!(bad.validate().expect_err("q").contains("quantile"));
        assert!(config().validate().is_ok());
    }
}

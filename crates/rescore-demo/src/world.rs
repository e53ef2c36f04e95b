//! Deterministic generator of the synthetic marketplace: items, users, queries, the BM25
//! candidates of each query and their hidden relevance grades.
//!
//! Everything derives from one seed. Each stage draws from its own ChaCha stream, so a change in
//! one stage (say, more queries) does not reshuffle the others. Nothing here iterates a hash map,
//! so the same seed gives the same world on every run and platform.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::bm25::Bm25Index;
use crate::catalog::{CategoryDef, ADJECTIVES, CATEGORIES, LEAK_WORDS};
use crate::features::{ItemFeatures, QueryFeatures};

pub const N_ITEMS: usize = 10_000;
pub const N_USERS: usize = 2_000;
pub const N_QUERIES: usize = 2_500;
/// Every fifth query (ids 4, 9, 14, ...) is held out of training: 2,000 train, 500 held out.
pub const HOLD_OUT_EVERY: usize = 5;
/// Candidates per query, as an Elasticsearch shard would return for rescoring.
pub const CANDIDATES: usize = 100;
/// First ChaCha stream of the per (query, item) noise of items that are not among a query's
/// candidates (streams 0-3 generate the world).
const OFF_CANDIDATE_STREAMS: u64 = 1 << 32;

/// Weights of the hidden relevance function (see [`utility`] and docs/demo.md).
pub mod relevance {
    /// The item is in the category the user actually wants.
    pub const CATEGORY: f64 = 2.6;
    /// Per unit of ln(price / true budget) above the budget.
    pub const OVER_BUDGET: f64 = 1.2;
    /// Per unit of ln(true budget / price) below the budget (too cheap: lower-end goods).
    pub const UNDER_BUDGET: f64 = 0.4;
    /// The budget terms together never cost more than this.
    pub const BUDGET_FLOOR: f64 = -2.5;
    /// The item is of the user's (true) favourite brand.
    pub const BRAND: f64 = 0.9;
    /// Per condition step above "good" (2).
    pub const CONDITION: f64 = 0.25;
    /// Per seller-rating star above 4.2.
    pub const SELLER_RATING: f64 = 0.35;
    /// Times exp(-age_days / FRESH_DAYS): fresh listings are still available and well priced.
    pub const FRESHNESS: f64 = 0.6;
    pub const FRESH_DAYS: f64 = 21.0;
    /// Per standard deviation of the listing's hidden appeal (photos, description); the
    /// observable `popularity` is a noisy proxy of it.
    pub const APPEAL: f64 = 0.4;
    /// Standard deviation of the per (query, item) noise: taste the model cannot know.
    pub const NOISE_SD: f64 = 0.45;
    /// A gamed listing (see [`super::Gaming`]): the buyer finds the worn goods, the real
    /// price in the description, the bought views out.
    pub const GAMED: f64 = -2.5;
    /// Utility thresholds of grades 1, 2, 3 and 4.
    pub const GRADE_THRESHOLDS: [f64; 4] = [1.6, 2.5, 3.2, 3.8];
}

/// How well the query classifier does, by query kind (when wrong: a category sharing one of
/// the query's words if there is one, otherwise any other category).
pub const CLASSIFIER_ACCURACY: [(QueryKind, f64); 3] = [
    (QueryKind::Keyword, 0.92),
    (QueryKind::Ambiguous, 0.60),
    (QueryKind::Semantic, 0.70),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub title: Vec<&'static str>,
    /// What the listing shows (and the item store serves).
    pub features: ItemFeatures,
    /// Hidden listing quality, standard normal.
    pub appeal: f64,
    /// A gamed listing: its true features (the shown ones are faked).
    pub gamed: Option<ItemFeatures>,
}

/// World options beyond the seed. The default is the world the demo model was trained on.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WorldOptions {
    /// Share of listings that are gamed ([`game_items`]); 0 = none.
    pub gamed_share: f64,
}

/// How a gamed listing fakes what ranks (each independently, at these rates).
pub mod gaming {
    /// Bought views: popularity multiplied by 100-400.
    pub const INFLATED_POPULARITY: f64 = 0.8;
    /// "New with tags" on worn goods (true condition fair or for parts).
    pub const FALSE_CONDITION: f64 = 0.7;
    /// A price of 2-10% of the category median (the real price in the description).
    pub const BAIT_PRICE: f64 = 0.4;
    /// Three of the category's most searched words added to the title.
    pub const STUFFED_TITLE: f64 = 0.6;
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub fav_categories: Vec<usize>,
    /// Hidden: how much the user spends relative to a category's median price.
    pub price_level: f64,
    /// The marketplace's estimate of `price_level` from purchase history, if any.
    pub estimated_price_level: Option<f64>,
    /// Hidden favourite brand.
    pub fav_brand: usize,
    /// Whether the marketplace knows `fav_brand`.
    pub brand_known: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// Words from the intent category's title vocabulary.
    Keyword,
    /// Contains a word shared with other categories ("mouse", "jaguar", "apple", ...).
    Ambiguous,
    /// Natural language that rarely appears in titles ("gift for dad").
    Semantic,
}

impl QueryKind {
    pub const ALL: [QueryKind; 3] = [
        QueryKind::Keyword,
        QueryKind::Ambiguous,
        QueryKind::Semantic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QueryKind::Keyword => "keyword",
            QueryKind::Ambiguous => "ambiguous",
            QueryKind::Semantic => "semantic",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub item: usize,
    /// The first-pass (BM25) score: the hit's `score` and the baseline order.
    pub score: f64,
    /// Hidden relevance grade, 0 to 4.
    pub label: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub id: usize,
    pub user: usize,
    /// Hidden: the category the user actually wants.
    pub intent: usize,
    pub kind: QueryKind,
    pub text: String,
    /// What the client sends in `query.features`.
    pub features: QueryFeatures,
    /// BM25 order, padded with category-browse results; baseline rank = position.
    pub candidates: Vec<Candidate>,
    pub held_out: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct World {
    pub seed: u64,
    /// Brand names; a brand's id is its position.
    pub brands: Vec<&'static str>,
    pub items: Vec<Item>,
    pub users: Vec<User>,
    pub queries: Vec<Query>,
}

impl World {
    pub fn generate(seed: u64) -> World {
        World::generate_with(seed, WorldOptions::default())
    }

    pub fn generate_with(seed: u64, options: WorldOptions) -> World {
        let stream = |n: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(n);
            rng
        };
        let brands = Brands::new();
        let brand_factor: Vec<f64> = {
            // Premium and budget brands: a per-brand price multiplier.
            let mut rng = stream(0);
            brands
                .names
                .iter()
                .map(|_| (0.3 * normal(&mut rng)).exp())
                .collect()
        };
        let mut items = gen_items(&mut stream(1), &brands, &brand_factor);
        if options.gamed_share > 0.0 {
            game_items(&mut stream(4), &mut items, options.gamed_share);
        }
        let users = gen_users(&mut stream(2), &brands);
        let index = Bm25Index::new(&items.iter().map(|i| i.title.clone()).collect::<Vec<_>>());
        let queries = gen_queries(&mut stream(3), &items, &users, &index);
        World {
            seed,
            brands: brands.names,
            items,
            users,
            queries,
        }
    }

    pub fn train_queries(&self) -> impl Iterator<Item = &Query> {
        self.queries.iter().filter(|q| !q.held_out)
    }

    pub fn held_out_queries(&self) -> impl Iterator<Item = &Query> {
        self.queries.iter().filter(|q| q.held_out)
    }

    /// The hidden grade of every catalogue item for `query`, indexed by item: a candidate's own
    /// grade, and for every other item the same utility with its noise drawn from a stream of its
    /// own, keyed by (query, item), so that any search engine's hits can be judged and each
    /// (query, item) pair has exactly one grade.
    pub fn catalogue_grades(&self, query: &Query) -> Vec<u8> {
        let mut grades: Vec<Option<u8>> = vec![None; self.items.len()];
        for c in &query.candidates {
            grades[c.item] = Some(c.label);
        }
        let user = &self.users[query.user];
        grades
            .into_iter()
            .enumerate()
            .map(|(item, g)| {
                g.unwrap_or_else(|| {
                    let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
                    rng.set_stream(
                        OFF_CANDIDATE_STREAMS + (query.id * self.items.len() + item) as u64,
                    );
                    grade(utility(query.intent, user, &self.items[item], &mut rng))
                })
            })
            .collect()
    }
}

/// Item id on the wire.
pub fn item_id(item: usize) -> String {
    format!("i{item}")
}

/// User id on the wire.
pub fn user_id(user: usize) -> String {
    format!("u{user}")
}

/// The brand table, built from the catalogue in declaration order.
struct Brands {
    names: Vec<&'static str>,
    /// Brand ids sold in each category.
    by_category: Vec<Vec<usize>>,
}

impl Brands {
    fn new() -> Self {
        let mut names: Vec<&'static str> = Vec::new();
        let mut by_category = Vec::with_capacity(CATEGORIES.len());
        for cat in CATEGORIES {
            let ids = cat
                .brands
                .iter()
                .map(|&b| match names.iter().position(|&n| n == b) {
                    Some(id) => id,
                    None => {
                        names.push(b);
                        names.len() - 1
                    }
                })
                .collect();
            by_category.push(ids);
        }
        Brands { names, by_category }
    }
}

/// Every word a listing of `cat` may carry because of its category: tokens and brand names.
fn category_words(cat: &CategoryDef) -> impl Iterator<Item = &'static str> + '_ {
    cat.tokens.iter().chain(cat.brands).copied()
}

/// Other categories whose titles use `word`.
fn categories_using(word: &str, except: usize) -> Vec<usize> {
    (0..CATEGORIES.len())
        .filter(|&c| c != except && category_words(&CATEGORIES[c]).any(|w| w == word))
        .collect()
}

fn gen_items(rng: &mut ChaCha8Rng, brands: &Brands, brand_factor: &[f64]) -> Vec<Item> {
    let shares: Vec<f64> = CATEGORIES.iter().map(|c| c.share).collect();
    // Condition 0 = for parts, 1 = fair, 2 = good, 3 = very good, 4 = new with tags.
    const CONDITION_WEIGHTS: [f64; 5] = [0.05, 0.15, 0.35, 0.30, 0.15];
    const CONDITION_PRICE: [f64; 5] = [0.35, 0.6, 0.8, 1.0, 1.25];
    (0..N_ITEMS)
        .map(|_| {
            let category = weighted(rng, &shares);
            let def = &CATEGORIES[category];
            let cat_brands = &brands.by_category[category];
            let brand = cat_brands[zipf(rng, cat_brands.len(), 0.7)];
            let condition = weighted(rng, &CONDITION_WEIGHTS);
            let price = def.median_price
                * brand_factor[brand]
                * CONDITION_PRICE[condition]
                * (def.price_sigma * normal(rng)).exp();
            let price = ((price * 100.0).round() / 100.0).max(1.0);
            let seller_rating = if rng.gen_bool(0.07) {
                rng.gen_range(1.0..3.5) // a poor seller
            } else {
                5.0 - (0.45 * normal(rng)).abs()
            };
            let seller_rating = (seller_rating.clamp(1.0, 5.0) * 10.0).round() / 10.0;
            let age_days = ((-45.0 * (1.0 - rng.gen::<f64>()).ln()) as u32).min(365);
            let appeal = normal(rng);
            // Views/favourites: heavy-tailed, driven by appeal and by time on the site.
            let popularity =
                (1.5 + 0.9 * appeal + 0.45 * (1.0 + f64::from(age_days)).ln() + 0.7 * normal(rng))
                    .exp()
                    .round() as u32;

            let mut title = Vec::new();
            if rng.gen_bool(0.85) {
                title.push(brands.names[brand]);
            }
            let n_tokens = 1 + weighted(rng, &[0.35, 0.45, 0.2]);
            for t in zipf_distinct(rng, def.tokens.len(), 1.0, n_tokens) {
                title.push(def.tokens[t]);
            }
            let n_adjectives = weighted(rng, &[0.4, 0.4, 0.2]);
            for a in zipf_distinct(rng, ADJECTIVES.len(), 0.0, n_adjectives) {
                title.push(ADJECTIVES[a]);
            }
            if rng.gen_bool(0.04) {
                title.push(LEAK_WORDS[rng.gen_range(0..LEAK_WORDS.len())]);
            }
            Item {
                title,
                features: ItemFeatures {
                    category: category as u32,
                    brand: brand as u32,
                    price,
                    condition: condition as u32,
                    seller_rating,
                    age_days,
                    popularity,
                },
                appeal,
                gamed: None,
            }
        })
        .collect()
}

/// Turns `share` of the listings into gamed ones: low true quality, and shown features faked
/// as [`gaming`] says (at least one of them). Draws from its own stream: the other listings stay
/// exactly as in the default world.
fn game_items(rng: &mut ChaCha8Rng, items: &mut [Item], share: f64) {
    use gaming::*;
    for item in items.iter_mut() {
        if !rng.gen_bool(share) {
            continue;
        }
        let def = &CATEGORIES[item.features.category as usize];
        let mut truth = item.features.clone();
        truth.condition = truth.condition.min(1);
        item.appeal = -1.5 + 0.3 * normal(rng);
        let mut shown = truth.clone();
        let mut faked = false;
        while !faked {
            if rng.gen_bool(INFLATED_POPULARITY) {
                shown.popularity = ((f64::from(truth.popularity.max(2)))
                    * rng.gen_range(100.0..400.0))
                .round() as u32;
                faked = true;
            }
            if rng.gen_bool(FALSE_CONDITION) {
                shown.condition = 4;
                faked = true;
            }
            if rng.gen_bool(BAIT_PRICE) {
                shown.price =
                    ((def.median_price * rng.gen_range(0.02..0.10)) * 100.0).round() / 100.0;
                faked = true;
            }
        }
        shown.seller_rating = shown.seller_rating.max(4.8); // bought reviews
        if rng.gen_bool(STUFFED_TITLE) {
            for token in def.tokens.iter().take(3) {
                if !item.title.contains(token) {
                    item.title.push(token);
                }
            }
        }
        item.features = shown;
        item.gamed = Some(truth);
    }
}

fn gen_users(rng: &mut ChaCha8Rng, brands: &Brands) -> Vec<User> {
    let shares: Vec<f64> = CATEGORIES.iter().map(|c| c.share).collect();
    (0..N_USERS)
        .map(|_| {
            let n_fav = 1 + weighted(rng, &[0.4, 0.4, 0.2]);
            let mut fav_categories = Vec::with_capacity(n_fav);
            while fav_categories.len() < n_fav {
                let c = weighted(rng, &shares);
                if !fav_categories.contains(&c) {
                    fav_categories.push(c);
                }
            }
            let price_level = (0.4 * normal(rng)).exp();
            let estimated_price_level = rng
                .gen_bool(0.75)
                .then(|| price_level * (0.15 * normal(rng)).exp());
            let cat_brands = &brands.by_category[fav_categories[0]];
            let fav_brand = cat_brands[rng.gen_range(0..cat_brands.len())];
            let brand_known = rng.gen_bool(0.65);
            User {
                fav_categories,
                price_level,
                estimated_price_level,
                fav_brand,
                brand_known,
            }
        })
        .collect()
}

fn gen_queries(
    rng: &mut ChaCha8Rng,
    items: &[Item],
    users: &[User],
    index: &Bm25Index,
) -> Vec<Query> {
    let shares: Vec<f64> = CATEGORIES.iter().map(|c| c.share).collect();
    let mut items_by_category: Vec<Vec<usize>> = vec![Vec::new(); CATEGORIES.len()];
    for (i, item) in items.iter().enumerate() {
        items_by_category[item.features.category as usize].push(i);
    }
    (0..N_QUERIES)
        .map(|id| {
            let user_idx = rng.gen_range(0..users.len());
            let user = &users[user_idx];
            let intent = if rng.gen_bool(0.8) {
                user.fav_categories[rng.gen_range(0..user.fav_categories.len())]
            } else {
                weighted(rng, &shares)
            };
            let def = &CATEGORIES[intent];
            let ambiguous_words: Vec<&'static str> = category_words(def)
                .filter(|w| !categories_using(w, intent).is_empty())
                .collect();
            let mut kind = [
                QueryKind::Keyword,
                QueryKind::Ambiguous,
                QueryKind::Semantic,
            ][weighted(rng, &[0.55, 0.20, 0.25])];
            if kind == QueryKind::Ambiguous && ambiguous_words.is_empty() {
                kind = QueryKind::Keyword;
            }
            let words: Vec<&'static str> = match kind {
                QueryKind::Keyword => {
                    let n = 1 + weighted(rng, &[0.45, 0.40, 0.15]);
                    zipf_distinct(rng, def.tokens.len(), 1.0, n)
                        .into_iter()
                        .map(|t| def.tokens[t])
                        .collect()
                }
                QueryKind::Ambiguous => {
                    let word = ambiguous_words[rng.gen_range(0..ambiguous_words.len())];
                    let mut words = vec![word];
                    if rng.gen_bool(0.45) {
                        // A second, disambiguating word; BM25 then leans the right way.
                        let others: Vec<&str> =
                            def.tokens.iter().copied().filter(|&t| t != word).collect();
                        words.insert(rng.gen_range(0..2), others[rng.gen_range(0..others.len())]);
                    }
                    words
                }
                QueryKind::Semantic => def.phrases[rng.gen_range(0..def.phrases.len())]
                    .split_whitespace()
                    .collect(),
            };
            let text = words.join(" ");

            let predicted = classify(rng, intent, kind, &words, &shares);
            let features = QueryFeatures {
                intent_category: predicted as u32,
                user_budget: user
                    .estimated_price_level
                    .map(|l| (l * CATEGORIES[predicted].median_price).round().max(1.0)),
                user_brand: user.brand_known.then_some(user.fav_brand as u32),
            };

            let mut ranked = index.search(&words);
            ranked.truncate(CANDIDATES);
            // Too few lexical matches: the search service pads with browse results from the
            // category its classifier predicted (it cannot know the true intent), score 0.
            if ranked.len() < CANDIDATES {
                let mut pool: Vec<usize> = items_by_category[predicted]
                    .iter()
                    .copied()
                    .filter(|i| !ranked.iter().any(|r| r.0 == *i))
                    .collect();
                pool.shuffle(rng);
                pool.truncate(CANDIDATES - ranked.len());
                ranked.extend(pool.into_iter().map(|i| (i, 0.0)));
            }
            let candidates = ranked
                .into_iter()
                .map(|(item, score)| Candidate {
                    item,
                    score,
                    label: grade(utility(intent, user, &items[item], rng)),
                })
                .collect();
            Query {
                id,
                user: user_idx,
                intent,
                kind,
                text,
                features,
                candidates,
                held_out: id % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1,
            }
        })
        .collect()
}

/// The noisy query classifier a real marketplace runs on query text.
fn classify(
    rng: &mut ChaCha8Rng,
    intent: usize,
    kind: QueryKind,
    words: &[&str],
    shares: &[f64],
) -> usize {
    let accuracy = CLASSIFIER_ACCURACY
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(0.8, |(_, a)| *a);
    if rng.gen_bool(accuracy) {
        return intent;
    }
    // Mistakes are plausible ones: a category sharing a query word, else any other category.
    let mut confusable: Vec<usize> = words
        .iter()
        .flat_map(|w| categories_using(w, intent))
        .collect();
    confusable.sort_unstable();
    confusable.dedup();
    if !confusable.is_empty() {
        return confusable[rng.gen_range(0..confusable.len())];
    }
    loop {
        let c = weighted(rng, shares);
        if c != intent {
            return c;
        }
    }
}

/// Hidden utility of `item` for a user wanting category `intent`, noise included.
pub fn utility(intent: usize, user: &User, item: &Item, rng: &mut impl Rng) -> f64 {
    use relevance::*;
    // What the buyer gets, not what the listing shows.
    let f = item.gamed.as_ref().unwrap_or(&item.features);
    let gamed = if item.gamed.is_some() { GAMED } else { 0.0 };
    let category = if f.category as usize == intent {
        CATEGORY
    } else {
        0.0
    };
    let budget = user.price_level * CATEGORIES[intent].median_price;
    let log_ratio = (f.price / budget).ln();
    let budget_fit = (-OVER_BUDGET * log_ratio.max(0.0) - UNDER_BUDGET * (-log_ratio).max(0.0))
        .max(BUDGET_FLOOR);
    let brand = if f.brand as usize == user.fav_brand {
        BRAND
    } else {
        0.0
    };
    category
        + budget_fit
        + brand
        + CONDITION * (f64::from(f.condition) - 2.0)
        + SELLER_RATING * (f.seller_rating - 4.2)
        + FRESHNESS * (-f64::from(f.age_days) / FRESH_DAYS).exp()
        + APPEAL * item.appeal
        + gamed
        + NOISE_SD * normal(rng)
}

/// Grade 0-4: how many thresholds the utility clears.
pub fn grade(utility: f64) -> u8 {
    relevance::GRADE_THRESHOLDS
        .iter()
        .filter(|&&t| utility > t)
        .count() as u8
}

/// Standard normal draw (Box-Muller).
fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]: ln stays finite
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Index drawn with probability proportional to `weights`.
fn weighted(rng: &mut impl Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.gen::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// Index in 0..n with weight 1 / (i + 1)^s (s = 0: uniform).
fn zipf(rng: &mut impl Rng, n: usize, s: f64) -> usize {
    let weights: Vec<f64> = (0..n).map(|i| ((i + 1) as f64).powf(-s)).collect();
    weighted(rng, &weights)
}

/// `k` distinct Zipf-weighted indices in 0..n, in draw order.
fn zipf_distinct(rng: &mut impl Rng, n: usize, s: f64, k: usize) -> Vec<usize> {
    let mut weights: Vec<f64> = (0..n).map(|i| ((i + 1) as f64).powf(-s)).collect();
    let mut picked = Vec::with_capacity(k.min(n));
    while picked.len() < k.min(n) {
        let i = weighted(rng, &weights);
        weights[i] = 0.0;
        picked.push(i);
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_world_other_seed_other_world() {
        let a = World::generate(7);
        let b = World::generate(7);
        assert_eq!(a.items, b.items);
        assert_eq!(a.users, b.users);
        assert_eq!(a.queries, b.queries);
        let c = World::generate(8);
        assert_ne!(a.items, c.items);
        assert_ne!(a.queries, c.queries);
    }

    #[test]
    fn shape_of_the_world() {
        let w = World::generate(42);
        assert_eq!(w.items.len(), N_ITEMS);
        assert_eq!(w.users.len(), N_USERS);
        assert_eq!(w.train_queries().count(), 2_000);
        assert_eq!(w.held_out_queries().count(), 500);
        for q in &w.queries {
            assert_eq!(q.candidates.len(), CANDIDATES, "query {}", q.id);
            // Baseline order is the candidate order: scores never increase.
            assert!(q.candidates.windows(2).all(|p| p[0].score >= p[1].score));
            let mut ids: Vec<usize> = q.candidates.iter().map(|c| c.item).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(
                ids.len(),
                CANDIDATES,
                "duplicate candidate in query {}",
                q.id
            );
        }
        // Every kind of query occurs, and the shared words exist.
        for kind in QueryKind::ALL {
            assert!(w.queries.iter().any(|q| q.kind == kind), "{kind:?}");
        }
        for word in ["mouse", "jaguar", "apple"] {
            assert!(categories_using(word, usize::MAX).len() >= 2, "{word}");
        }
    }

    #[test]
    fn catalogue_grades_extend_the_candidates_grades() {
        let w = World::generate(42);
        let q = w.held_out_queries().next().expect("held-out query");
        let grades = w.catalogue_grades(q);
        assert_eq!(grades.len(), N_ITEMS);
        for c in &q.candidates {
            assert_eq!(grades[c.item], c.label);
        }
        // Deterministic, and items of the true intent category are mostly relevant, others not.
        assert_eq!(grades, w.catalogue_grades(q));
        let relevant_share = |in_intent: bool| {
            let of: Vec<u8> = (0..N_ITEMS)
                .filter(|&i| (w.items[i].features.category as usize == q.intent) == in_intent)
                .map(|i| grades[i])
                .collect();
            of.iter().filter(|&&g| g > 0).count() as f64 / of.len() as f64
        };
        assert!(relevant_share(true) > 0.5, "{}", relevant_share(true));
        assert!(relevant_share(false) < 0.05, "{}", relevant_share(false));
    }

    #[test]
    fn grades_follow_thresholds() {
        assert_eq!(grade(-1.0), 0);
        assert_eq!(grade(1.6), 0);
        assert_eq!(grade(1.61), 1);
        assert_eq!(grade(3.0), 2);
        assert_eq!(grade(10.0), 4);
    }
}

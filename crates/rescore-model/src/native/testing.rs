//! Test support: a model trained on the fly with every kind of split, and faults injected
//! into the compiled form (what only the native engine reads, so LightGBM is unaffected).

use super::bin::{BinColumn, SlotKind};
use super::{compile, NativeModel};

/// A model trained by LightGBM on random data: deep trees (up to 63 leaves), NaN in every
/// feature (missing type NaN, both default directions), zeros and a feature of small integers.
pub(crate) fn trained_model_text() -> String {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let (features, n) = (8, 4000);
    let mut x = Vec::with_capacity(n * features);
    for i in 0..n * features {
        x.push(if i % features == 0 {
            f64::from(rng.gen_range(0..20u32))
        } else {
            match rng.gen_range(0..10) {
                0 => f64::NAN,
                1 => 0.0,
                _ => rng.gen_range(-3.0..3.0),
            }
        });
    }
    let labels: Vec<f32> = x
        .chunks(features)
        .map(|r| {
            let cat = if (r[0] as u32).is_multiple_of(3) {
                2.0
            } else {
                -1.0
            };
            let s: f64 = r[1..]
                .iter()
                .enumerate()
                .map(|(j, v)| {
                    if v.is_nan() {
                        j as f64 * 0.3
                    } else {
                        v * v.sin()
                    }
                })
                .sum();
            (s + cat) as f32
        })
        .collect();
    let dataset =
        lightgbm3::Dataset::from_slice(&x, &labels, features as i32, true).expect("dataset");
    let params = serde_json::json!({
        "objective": "regression", "num_iterations": 40, "num_leaves": 63,
        "min_data_in_leaf": 5, "learning_rate": 0.1, "seed": 1, "deterministic": true,
        "num_threads": 1, "verbose": -1,
    });
    let booster = lightgbm3::Booster::train(dataset, &params).expect("train");
    booster.save_string().expect("save")
}

impl NativeModel {
    /// The depth of each split (the root is 1), in `splits` order.
    pub(crate) fn split_depths(&self) -> Vec<usize> {
        let mut depths = vec![0; self.splits.len()];
        for tree in &self.trees {
            let first = tree.first_split as usize;
            let inner = usize::from(tree.inner);
            if inner > 0 {
                depths[first] = 1;
            }
            // Node order puts a parent before its children.
            for i in 0..inner {
                for &child in &self.splits[first + i].children {
                    if usize::from(child) < inner {
                        depths[first + usize::from(child)] = depths[first + i] + 1;
                    }
                }
            }
        }
        depths
    }

    /// Moves the threshold of the deepest numerical split whose threshold no other split
    /// uses one ulp up; returns the split's tree and depth.
    pub(crate) fn move_deep_threshold(&mut self) -> (usize, usize) {
        let depths = self.split_depths();
        let shared = |s: usize| {
            let split = &self.splits[s];
            self.splits.iter().enumerate().any(|(o, other)| {
                o != s
                    && !other.categorical
                    && other.column == split.column
                    && other.key == split.key
            })
        };
        let room = |s: usize| {
            let split = &self.splits[s];
            let column = &self.bin_columns[split.column as usize];
            let k = usize::from((split.key as u8) ^ 0x80);
            column
                .thresholds
                .get(k + 1)
                .is_none_or(|&next| next > column.thresholds[k].next_up())
        };
        let s = (0..self.splits.len())
            .filter(|&s| !self.splits[s].categorical && !shared(s) && room(s))
            .max_by_key(|&s| (depths[s], s))
            .expect("a numerical split");
        let split = self.splits[s];
        let column = &mut self.bin_columns[split.column as usize];
        let k = usize::from((split.key as u8) ^ 0x80);
        column.thresholds[k] = column.thresholds[k].next_up();
        column.build_search_tables();
        (self.tree_of(s), depths[s])
    }

    /// Flips the lowest bit of the bitset of the last categorical split.
    pub(crate) fn flip_category_bit(&mut self) {
        let split = self
            .splits
            .iter()
            .rev()
            .find(|s| s.categorical)
            .expect("a categorical split");
        let (first, len) = self.cat_ranges[split.cat_range as usize];
        let word = (first..first + len)
            .find(|&w| self.cat_words[w as usize] != 0)
            .expect("a category");
        let bits = &mut self.cat_words[word as usize];
        *bits ^= 1 << bits.trailing_zeros();
    }

    /// Sends missing values the other way at every split of the first column whose splits
    /// have a default direction.
    pub(crate) fn flip_default_direction(&mut self) {
        let column = self
            .bin_columns
            .iter_mut()
            .find(|c| {
                matches!(
                    c.kind,
                    SlotKind::NanLeft
                        | SlotKind::NanRight
                        | SlotKind::ZeroLeft
                        | SlotKind::ZeroRight
                )
            })
            .expect("a column with a default direction");
        let flipped = match column.kind {
            SlotKind::NanLeft => SlotKind::NanRight,
            SlotKind::NanRight => SlotKind::NanLeft,
            SlotKind::ZeroLeft => SlotKind::ZeroRight,
            _ => SlotKind::ZeroLeft,
        };
        let mut replaced = BinColumn::new(column.feature, flipped);
        replaced.thresholds = column.thresholds.clone();
        replaced.build_search_tables();
        *column = replaced;
    }

    /// Adds 1e-6 to the first leaf of the last tree.
    pub(crate) fn change_last_leaf(&mut self) {
        let tree = self.trees.last().expect("a tree");
        self.leaf_values[tree.first_leaf as usize] += 1e-6;
        self.byte_trees = compile::byte_trees(&self.trees, &self.splits, &self.leaf_values);
    }

    fn tree_of(&self, split: usize) -> usize {
        self.trees
            .iter()
            .rposition(|t| t.first_split as usize <= split)
            .expect("a tree")
    }
}

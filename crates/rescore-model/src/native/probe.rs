//! Rows for the load-time self-check, built so that every decision of every tree is taken
//! with the values that decide it. A *target* is one split of one tree and one value of its
//! feature: each numerical threshold and its one-ulp neighbours on both sides, NaN and 0.0;
//! each category of a categorical split's bitset, one category outside it, and NaN. A *unit*
//! is one walk down a tree from the root that takes a remaining target at each split where
//! the walk's needs so far allow one and otherwise heads for the subtree with more targets
//! left (a target no walk takes goes alone, on its own path). A row holds units of many
//! trees when their needs agree: an exact value per target, an interval per feature for the
//! splits passed. A 500-tree x 63-leaf model over 300 features needs ~5,600 rows. Features
//! that no unit of a row constrains cycle through the model's own thresholds, categories,
//! NaN and zeros. Deterministic: the same model gives the same rows.

use super::bin::dense;
use super::compile::Split;
use super::NativeModel;

/// Rows a unit tries before it opens a new one: enough to pack a 500 x 63 model into ~5,600
/// rows, few enough to build them in ~0.5 s.
const ROWS_TRIED: usize = 512;

/// One split of one tree (`split` indexes `NativeModel::splits`) and the value its feature
/// takes there.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(test), allow(dead_code))] // read by the coverage test
pub(super) struct Target {
    pub(super) split: usize,
    pub(super) value: f64,
}

/// What one walk down a tree puts into a row: exact values (the probe values it takes, and
/// the categories it passes with), its decisions, and the targets it holds.
#[derive(Debug, Default)]
struct Unit {
    exacts: Vec<(usize, f64)>,
    /// (split, goes right), from the root down.
    decisions: Vec<(usize, bool)>,
    targets: Vec<Target>,
}

/// A walk's needs per model feature (reset between walks through `touched`).
struct Walk {
    local: Vec<Need>,
    touched: Vec<usize>,
}

/// What a row requires of one feature so far.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Need {
    Free,
    /// A value in `(lo, hi]` (as LightGBM reads it: |x| <= kZeroThreshold is 0.0), not NaN,
    /// and not zero unless `zero_ok` (false once a split that reads zero as missing
    /// constrains it): every numerical split then compares it with its threshold.
    Between(f64, f64, bool),
    /// Exactly this value (compared bit for bit).
    Exactly(f64),
}

/// The probe rows and how their targets fared.
#[derive(Debug, Clone)]
pub(super) struct Probes {
    /// Row-major, all model features.
    pub(super) rows: Vec<f64>,
    /// Targets placed in a row.
    #[cfg_attr(not(test), allow(dead_code))] // read by the coverage test
    pub(super) placed: Vec<Target>,
    /// Targets whose value cannot reach their split (e.g. NaN where every path to the split
    /// requires the feature present): no row can hold them.
    #[cfg_attr(not(test), allow(dead_code))] // read by the coverage test
    pub(super) unreachable: Vec<Target>,
}

impl NativeModel {
    /// Deterministic probe rows (row-major, all model features) that take every decision of
    /// every tree with the values that decide it (see the module's documentation).
    pub fn probe_rows(&self) -> Vec<f64> {
        self.probes().rows
    }

    pub(super) fn probes(&self) -> Probes {
        let num_features = self.num_features;
        let mut rows: Vec<Vec<Need>> = Vec::new();
        let mut placed = Vec::new();
        let mut unreachable = Vec::new();
        // Where the next unit starts looking: it moves past each row used, so that the units
        // of successive trees sweep all rows.
        let mut cursor = 0;
        let mut changed = Vec::new();
        let mut walk = Walk {
            local: vec![Need::Free; num_features],
            touched: Vec::new(),
        };
        for tree in &self.trees {
            let first = tree.first_split as usize;
            let splits = first..first + usize::from(tree.inner);
            let parents = parents(&self.splits[splits.clone()]);
            // Each split's probe values that can reach it: the decisions on its own feature
            // along its (only) path are taken by the value itself.
            let mut remaining: Vec<Vec<f64>> = Vec::with_capacity(splits.len());
            for split in splits.clone() {
                let path = path_to(&parents, first, split);
                let feature = self.feature_of(split);
                let (reach, miss): (Vec<f64>, Vec<f64>) = self
                    .target_values(&self.splits[split])
                    .into_iter()
                    .partition(|&value| {
                        path.iter().all(|&(s, right)| {
                            self.feature_of(s) != feature || self.goes_right(s, value) == right
                        })
                    });
                unreachable.extend(miss.into_iter().map(|value| Target { split, value }));
                remaining.push(reach);
            }
            while let Some(unit) = self.next_unit(first, &parents, &mut remaining, &mut walk) {
                let Some(unit) = unit else {
                    continue;
                };
                let tried = rows.len().min(ROWS_TRIED);
                let fit = (0..tried)
                    .map(|k| (cursor + k) % rows.len())
                    .find(|&r| self.admit(&rows[r], &unit, &mut changed));
                let r = match fit {
                    Some(r) => {
                        commit(&mut rows[r], &changed);
                        r
                    }
                    None => {
                        let mut row = vec![Need::Free; num_features];
                        // The path itself is contradictory: a split no row reaches.
                        if !self.admit(&row, &unit, &mut changed) {
                            unreachable.extend(unit.targets);
                            continue;
                        }
                        commit(&mut row, &changed);
                        rows.push(row);
                        rows.len() - 1
                    }
                };
                cursor = (r + 1) % rows.len();
                placed.extend(unit.targets);
            }
        }
        // Two rows first that no target needs: every feature missing, every feature zero.
        rows.splice(
            0..0,
            [f64::NAN, 0.0].map(|v| vec![Need::Exactly(v); num_features]),
        );
        let filler = self.filler_values();
        let mut out = vec![0.0; rows.len() * num_features];
        for (r, (needs, row)) in rows
            .iter()
            .zip(out.chunks_exact_mut(num_features.max(1)))
            .enumerate()
        {
            for (f, (need, x)) in needs.iter().zip(row.iter_mut()).enumerate() {
                *x = match *need {
                    Need::Exactly(v) => v,
                    Need::Between(lo, hi, zero_ok) => between(lo, hi, zero_ok),
                    Need::Free => filler[f]
                        .get(r % filler[f].len().max(1))
                        .copied()
                        .unwrap_or(0.0),
                };
            }
        }
        Probes {
            rows: out,
            placed,
            unreachable,
        }
    }

    /// The model feature a split reads.
    pub(super) fn feature_of(&self, split: usize) -> usize {
        let split = &self.splits[split];
        if split.categorical {
            self.raw_columns[split.column as usize]
        } else {
            self.bin_columns[split.column as usize].feature
        }
    }

    /// Whether the compiled split sends a row whose feature is `x` right: the decision every
    /// kernel takes.
    pub(super) fn goes_right(&self, split: usize, x: f64) -> bool {
        let split = &self.splits[split];
        if split.categorical {
            let (first, len) = self.cat_ranges[split.cat_range as usize];
            !self.category_left(first, len, dense(x))
        } else {
            super::bin::biased(self.bin_columns[split.column as usize].bin(x)) > split.key
        }
    }

    /// The values a split is probed with.
    pub(super) fn target_values(&self, split: &Split) -> Vec<f64> {
        if split.categorical {
            let mut values = self.bitset_categories(split.cat_range);
            values.push(self.category_outside(split.cat_range));
            values.push(f64::NAN);
            values
        } else {
            let t = self.threshold_of(split);
            vec![t, t.next_up(), t.next_down(), f64::NAN, 0.0]
        }
    }

    /// A numerical split's threshold: `x <= t` goes left.
    fn threshold_of(&self, split: &Split) -> f64 {
        let key = (split.key as u8) ^ 0x80;
        self.bin_columns[split.column as usize].thresholds[usize::from(key)]
    }

    /// The categories in a categorical split's bitset, in order.
    fn bitset_categories(&self, range: u32) -> Vec<f64> {
        let (first, len) = self.cat_ranges[range as usize];
        let mut categories = Vec::new();
        for w in 0..len {
            let word = self.cat_words[(first + w) as usize];
            for bit in (0..32).filter(|b| (word >> b) & 1 == 1) {
                categories.push(f64::from(w * 32 + bit));
            }
        }
        categories
    }

    /// The smallest category that is not in the split's bitset.
    fn category_outside(&self, range: u32) -> f64 {
        let (first, len) = self.cat_ranges[range as usize];
        let outside = (0..len * 32)
            .find(|&c| !self.category_left(first, len, f64::from(c)))
            .unwrap_or(len * 32);
        f64::from(outside)
    }

    /// Whether `row` can also hold `unit`: if so, `changed` holds the needs of the features
    /// that change.
    fn admit(&self, row: &[Need], unit: &Unit, changed: &mut Vec<(usize, Need)>) -> bool {
        changed.clear();
        // Cheap refusals first: an exact value the row already requires otherwise.
        for &(feature, value) in &unit.exacts {
            if matches!(row[feature], Need::Exactly(x) if !same(x, value)) {
                return false;
            }
        }
        let need = |feature: usize, changed: &mut Vec<(usize, Need)>| -> (usize, Need) {
            match changed.iter().position(|(f, _)| *f == feature) {
                Some(i) => (i, changed[i].1),
                None => {
                    changed.push((feature, row[feature]));
                    (changed.len() - 1, row[feature])
                }
            }
        };
        // Exact values first: the unit's decisions on their features are taken by them.
        for &(feature, value) in &unit.exacts {
            let (i, current) = need(feature, changed);
            changed[i].1 = match current {
                Need::Free => Need::Exactly(value),
                Need::Exactly(x) if same(x, value) => current,
                Need::Between(lo, hi, zero_ok) if fits_between(value, lo, hi, zero_ok) => {
                    Need::Exactly(value)
                }
                _ => return false,
            };
        }
        for &(split, right) in &unit.decisions {
            let (i, current) = need(self.feature_of(split), changed);
            match self.decide(current, split, right) {
                Some(next) => changed[i].1 = next,
                None => return false,
            }
        }
        true
    }

    /// The next unit of a tree: one walk from the root that takes a remaining probe value at
    /// each split where the walk's needs allow one, and heads for the subtree with more
    /// remaining values elsewhere. When a walk takes none, the first remaining value alone,
    /// on its own path. `None` when no value remains; `Some(None)` when a value was dropped
    /// (its path contradicts itself).
    fn next_unit(
        &self,
        first: usize,
        parents: &[Option<(usize, bool)>],
        remaining: &mut [Vec<f64>],
        walk: &mut Walk,
    ) -> Option<Option<Unit>> {
        let splits = &self.splits[first..first + remaining.len()];
        let counts = subtree_counts(splits, remaining);
        if counts.first().copied().unwrap_or(0) == 0 {
            return None;
        }
        for f in walk.touched.drain(..) {
            walk.local[f] = Need::Free;
        }
        let mut unit = Unit::default();
        let mut at = 0usize;
        while at < remaining.len() {
            let split = first + at;
            let feature = self.feature_of(split);
            let local = walk.local[feature];
            let taken = remaining[at].iter().position(|&v| match local {
                Need::Free => true,
                Need::Exactly(x) => same(x, v),
                Need::Between(lo, hi, zero_ok) => fits_between(v, lo, hi, zero_ok),
            });
            let (need, right) = match taken {
                Some(i) => {
                    let value = remaining[at].remove(i);
                    unit.targets.push(Target { split, value });
                    if !matches!(local, Need::Exactly(_)) {
                        unit.exacts.push((feature, value));
                    }
                    (Need::Exactly(value), self.goes_right(split, value))
                }
                None => {
                    let children = splits[at].children.map(usize::from);
                    let count = |c: usize| counts.get(c).copied().unwrap_or(0);
                    let preferred = count(children[1]) > count(children[0]);
                    let Some((need, right)) = [preferred, !preferred]
                        .into_iter()
                        .find_map(|right| self.pass(local, split, right).map(|n| (n, right)))
                    else {
                        break;
                    };
                    if let (Need::Free, Need::Exactly(value)) = (local, need) {
                        unit.exacts.push((feature, value));
                    }
                    (need, right)
                }
            };
            walk.local[feature] = need;
            walk.touched.push(feature);
            unit.decisions.push((split, right));
            at = usize::from(splits[at].children[usize::from(right)]);
        }
        if !unit.targets.is_empty() {
            return Some(Some(unit));
        }
        // The first remaining value alone, on its path.
        let node = remaining.iter().position(|values| !values.is_empty())?;
        let value = remaining[node].remove(0);
        let split = first + node;
        let feature = self.feature_of(split);
        let mut unit = Unit {
            exacts: vec![(feature, value)],
            decisions: path_to(parents, first, split),
            targets: vec![Target { split, value }],
        };
        // Categorical features of the path: one category that takes all their decisions.
        let mut categorical: Vec<usize> = unit
            .decisions
            .iter()
            .filter(|&&(s, _)| self.splits[s].categorical && self.feature_of(s) != feature)
            .map(|&(s, _)| self.feature_of(s))
            .collect();
        categorical.sort_unstable();
        categorical.dedup();
        for f in categorical {
            let decisions: Vec<(usize, bool)> = unit
                .decisions
                .iter()
                .copied()
                .filter(|&(s, _)| self.feature_of(s) == f)
                .collect();
            match self.category_meeting(&decisions) {
                Some(value) => unit.exacts.push((f, value)),
                None => return Some(None),
            }
        }
        Some(Some(unit))
    }

    /// A category (or NaN) that takes every decision of `decisions` (one feature's).
    fn category_meeting(&self, decisions: &[(usize, bool)]) -> Option<f64> {
        let words = decisions
            .iter()
            .map(|&(s, _)| self.cat_ranges[self.splits[s].cat_range as usize].1)
            .max()
            .unwrap_or(0);
        (0..=words * 32)
            .map(f64::from)
            .chain([f64::NAN])
            .find(|&x| decisions.iter().all(|&(s, r)| self.goes_right(s, x) == r))
    }

    /// What a feature must be for a walk to pass `split` going `right`, given what it must
    /// already be; `None` if it cannot.
    fn pass(&self, current: Need, split: usize, right: bool) -> Option<Need> {
        match current {
            Need::Free if self.splits[split].categorical => {
                self.category_meeting(&[(split, right)]).map(Need::Exactly)
            }
            _ => self.decide(current, split, right),
        }
    }

    /// What a feature must be to take decision `right` at numerical `split`, given what it
    /// must already be; `None` if it cannot.
    fn decide(&self, current: Need, split: usize, right: bool) -> Option<Need> {
        let s = &self.splits[split];
        match current {
            Need::Exactly(x) => (self.goes_right(split, x) == right).then_some(current),
            // A categorical feature is always given a category (`pass`, `next_unit`).
            _ if s.categorical => None,
            Need::Free | Need::Between(..) => {
                let (lo, hi, zero_ok) = match current {
                    Need::Between(lo, hi, zero_ok) => (lo, hi, zero_ok),
                    _ => (f64::NEG_INFINITY, f64::INFINITY, true),
                };
                let column = &self.bin_columns[s.column as usize];
                let zero_ok = zero_ok && !column.zero_missing;
                let t = self.threshold_of(s);
                let (lo, hi) = if right {
                    (lo.max(t), hi)
                } else {
                    (lo, hi.min(t))
                };
                (lo < hi && !between(lo, hi, zero_ok).is_nan())
                    .then_some(Need::Between(lo, hi, zero_ok))
            }
        }
    }

    /// Per model feature, values for rows whose targets leave it free: its thresholds and
    /// their neighbours, its categories and ids beside them, NaN, signed zeros, values
    /// LightGBM reads as zero.
    fn filler_values(&self) -> Vec<Vec<f64>> {
        let mut values = vec![Vec::new(); self.num_features];
        for column in &self.bin_columns {
            let values = &mut values[column.feature];
            for &t in &column.thresholds {
                values.extend([t, t.next_up(), t.next_down()]);
            }
        }
        for split in self.splits.iter().filter(|s| s.categorical) {
            let feature = self.raw_columns[split.column as usize];
            let (_, len) = self.cat_ranges[split.cat_range as usize];
            for category in self.bitset_categories(split.cat_range) {
                values[feature].extend([category, category + 1.0, category + 0.5]);
            }
            values[feature].extend([-1.0, -0.5, f64::from(len * 32), 1e10]);
        }
        for values in &mut values {
            values.extend([f64::NAN, 0.0, -0.0, 1e-36, -1e-36, 1.0, -1.0, 1e300]);
        }
        values
    }
}

/// For each split of a tree (in node order), its parent and whether it is the right child.
fn parents(splits: &[Split]) -> Vec<Option<(usize, bool)>> {
    let mut parents = vec![None; splits.len()];
    for (i, split) in splits.iter().enumerate() {
        for (side, &child) in split.children.iter().enumerate() {
            if usize::from(child) < splits.len() {
                parents[usize::from(child)] = Some((i, side == 1));
            }
        }
    }
    parents
}

/// The decisions from the root to `split` (a split of the tree starting at `first`).
fn path_to(parents: &[Option<(usize, bool)>], first: usize, split: usize) -> Vec<(usize, bool)> {
    let mut path = Vec::new();
    let mut at = split - first;
    while let Some((parent, right)) = parents[at] {
        path.push((first + parent, right));
        at = parent;
    }
    path.reverse();
    path
}

/// Remaining probe values in each split's subtree (children come after their parent).
fn subtree_counts(splits: &[Split], remaining: &[Vec<f64>]) -> Vec<usize> {
    let mut counts: Vec<usize> = remaining.iter().map(Vec::len).collect();
    for i in (0..splits.len()).rev() {
        for &child in &splits[i].children {
            if usize::from(child) < splits.len() {
                counts[i] += counts[usize::from(child)];
            }
        }
    }
    counts
}

fn commit(row: &mut [Need], needs: &[(usize, Need)]) {
    for &(feature, need) in needs {
        row[feature] = need;
    }
}

/// Whether `x` meets a [`Need::Between`].
fn fits_between(x: f64, lo: f64, hi: f64, zero_ok: bool) -> bool {
    let read = dense(x);
    !read.is_nan() && lo < read && read <= hi && (read != 0.0 || zero_ok)
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// A finite value that meets [`Need::Between`], or NaN when there is none.
fn between(lo: f64, hi: f64, zero_ok: bool) -> f64 {
    let mid = lo / 2.0 + hi / 2.0;
    [
        hi,
        mid,
        hi - (hi.abs() + 1.0),
        lo + (lo.abs() + 1.0),
        lo.next_up(),
        0.0,
        1.0,
        -1.0,
    ]
    .into_iter()
    .find(|&x| x.is_finite() && fits_between(x, lo, hi, zero_ok))
    .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelHeader;
    use std::collections::HashSet;

    /// (split, value) pairs the rows take: each row walked down each tree by the compiled
    /// decisions (the same as LightGBM's: the parity tests prove it).
    fn reached(model: &NativeModel, rows: &[f64]) -> HashSet<(usize, u64)> {
        let key = |x: f64| {
            if x.is_nan() {
                f64::NAN.to_bits()
            } else {
                x.to_bits()
            }
        };
        let mut reached = HashSet::new();
        for row in rows.chunks_exact(model.num_features) {
            for tree in &model.trees {
                let first = tree.first_split as usize;
                let mut at = 0usize;
                while at < usize::from(tree.inner) {
                    let split = first + at;
                    let x = row[model.feature_of(split)];
                    reached.insert((split, key(x)));
                    let right = model.goes_right(split, x);
                    at = usize::from(model.splits[split].children[usize::from(right)]);
                }
            }
        }
        reached
    }

    /// Every split of every tree is taken with each of its probe values (each numerical
    /// threshold, its one-ulp neighbours both sides, NaN, 0.0; each category of the bitset,
    /// one outside it, NaN) unless that value cannot reach the split; thresholds and their
    /// neighbours always can.
    #[test]
    fn probe_rows_take_every_split_with_every_probe_value() {
        let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/golden/models");
        let mut texts: Vec<(String, String)> = [
            "lambdarank",
            "categorical",
            "missing_nan",
            "zero_as_missing",
            "regression",
        ]
        .iter()
        .map(|kind| {
            let text =
                std::fs::read_to_string(golden.join(kind).join("1/model.txt")).expect("fixture");
            (kind.to_string(), text)
        })
        .collect();
        texts.push((
            "trained".into(),
            super::super::testing::trained_model_text(),
        ));
        for (kind, text) in texts {
            let header = ModelHeader::parse(&text).expect("header");
            let model = NativeModel::from_text(&text, &header).expect("native");
            let probes = model.probes();
            let reached = reached(&model, &probes.rows);
            let key = |x: f64| {
                if x.is_nan() {
                    f64::NAN.to_bits()
                } else {
                    x.to_bits()
                }
            };
            let mut expected = 0;
            let mut categories = 0;
            for split in 0..model.splits.len() {
                for value in model.target_values(&model.splits[split]) {
                    expected += 1;
                    let numerical_edge =
                        !model.splits[split].categorical && !value.is_nan() && value != 0.0;
                    if model.splits[split].categorical && !value.is_nan() {
                        categories += 1;
                    }
                    let is_unreachable = probes
                        .unreachable
                        .iter()
                        .any(|t| t.split == split && key(t.value) == key(value));
                    if is_unreachable {
                        assert!(
                            !numerical_edge,
                            "{kind}: split {split} at {value} was not placed"
                        );
                        continue;
                    }
                    assert!(
                        reached.contains(&(split, key(value))),
                        "{kind}: split {split} is never taken with {value}"
                    );
                }
            }
            assert_eq!(
                probes.placed.len() + probes.unreachable.len(),
                expected,
                "{kind}"
            );
            if kind == "categorical" {
                assert!(categories > 0, "{kind}: no categorical split");
            }
            let rows = probes.rows.len() / model.num_features;
            eprintln!(
                "{kind}: {} splits, {expected} targets, {} unreachable, {rows} rows",
                model.splits.len(),
                probes.unreachable.len()
            );
        }
    }
}

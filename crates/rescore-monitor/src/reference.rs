//! Reference statistics of a model version (`reference.json` beside `model.txt`): per feature
//! and for the score, the quantile bin edges and bin counts of the training data, its range,
//! its missing count and, for categorical features, the categories it contains. Drift and
//! outliers are measured against these (docs/monitoring.md).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// File name of the reference statistics inside a version directory.
pub const REFERENCE_FILE: &str = "reference.json";
/// Version of the file format written by [`ReferenceBuilder`].
pub const REFERENCE_FORMAT: u32 = 1;
/// Categorical features keep at most this many categories (the most frequent).
pub const MAX_CATEGORIES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub format: u32,
    /// Where the statistics came from (free text: data file, rows, tool version).
    #[serde(default)]
    pub source: String,
    /// Rows of the reference data.
    pub rows: u64,
    /// One entry per model feature, in model order.
    pub features: Vec<FeatureReference>,
    /// The model's score (standard prediction) over the reference rows.
    pub score: Distribution,
}

/// (Unknown keys are refused by [`Distribution`]: `deny_unknown_fields` does not combine with
/// `flatten` here.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureReference {
    pub name: String,
    /// Counted once per query group (request), not once per row: a query-level feature,
    /// whose value every hit of a request shares. Serving counts it once per request too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_request: bool,
    #[serde(flatten)]
    pub distribution: Distribution,
}

/// A one-dimensional reference distribution, binned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    /// Bins are `(-inf, edges[0]]`, `(edges[0], edges[1]]`, ..., `(edges[n-1], +inf)`.
    Numeric {
        /// Values seen (missing included).
        count: u64,
        missing: u64,
        /// Range of the non-missing values (null when all are missing).
        min: Option<f64>,
        max: Option<f64>,
        /// Strictly increasing inner quantile edges.
        edges: Vec<f64>,
        /// Non-missing values per bin: `edges.len() + 1` entries.
        counts: Vec<u64>,
    },
    /// One bin per category, plus one for values that are none of them.
    Categorical {
        count: u64,
        missing: u64,
        /// Strictly increasing category values.
        categories: Vec<f64>,
        /// Values per category.
        counts: Vec<u64>,
        /// Non-missing values that are not among `categories` (categories beyond
        /// [`MAX_CATEGORIES`]).
        other: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Distribution {
    /// Bins excluding the missing bin.
    pub fn num_bins(&self) -> usize {
        match self {
            Distribution::Numeric { edges, .. } => edges.len() + 1,
            Distribution::Categorical { categories, .. } => categories.len() + 1,
        }
    }

    /// Bin of a non-missing value.
    #[inline]
    pub fn bin(&self, x: f64) -> usize {
        match self {
            Distribution::Numeric { edges, .. } => edges.partition_point(|&e| e < x),
            Distribution::Categorical { categories, .. } => categories
                .binary_search_by(|c| c.total_cmp(&x))
                .unwrap_or(categories.len()),
        }
    }

    /// Whether a non-missing value is an outlier: outside `[min, max]`, or an unseen category.
    #[inline]
    pub fn is_outlier(&self, x: f64, bin: usize) -> bool {
        match self {
            Distribution::Numeric { min, max, .. } => match (min, max) {
                (Some(lo), Some(hi)) => x < *lo || x > *hi,
                _ => true,
            },
            Distribution::Categorical { categories, .. } => bin == categories.len(),
        }
    }

    /// Reference counts per bin followed by the missing count.
    pub fn bin_counts_with_missing(&self) -> Vec<u64> {
        let (mut counts, missing) = match self {
            Distribution::Numeric {
                counts, missing, ..
            } => (counts.clone(), *missing),
            Distribution::Categorical {
                counts,
                missing,
                other,
                ..
            } => {
                let mut c = counts.clone();
                c.push(*other);
                (c, *missing)
            }
        };
        counts.push(missing);
        counts
    }

    pub fn count(&self) -> u64 {
        match self {
            Distribution::Numeric { count, .. } | Distribution::Categorical { count, .. } => *count,
        }
    }

    pub fn missing(&self) -> u64 {
        match self {
            Distribution::Numeric { missing, .. } | Distribution::Categorical { missing, .. } => {
                *missing
            }
        }
    }

    pub fn is_categorical(&self) -> bool {
        matches!(self, Distribution::Categorical { .. })
    }

    fn validate(&self) -> Result<(), String> {
        match self {
            Distribution::Numeric {
                count,
                missing,
                min,
                max,
                edges,
                counts,
            } => {
                if counts.len() != edges.len() + 1 {
                    return Err(format!(
                        "{} counts for {} edges (needs edges + 1)",
                        counts.len(),
                        edges.len()
                    ));
                }
                if edges.iter().any(|e| !e.is_finite()) || edges.windows(2).any(|w| w[0] >= w[1]) {
                    return Err("edges must be finite and strictly increasing".into());
                }
                if min.is_some() != max.is_some() || min.zip(*max).is_some_and(|(a, b)| a > b) {
                    return Err("min/max must both be set, with min <= max".into());
                }
                if counts.iter().sum::<u64>() + missing != *count {
                    return Err("bin counts plus missing do not add up to count".into());
                }
            }
            Distribution::Categorical {
                count,
                missing,
                categories,
                counts,
                other,
            } => {
                if counts.len() != categories.len() {
                    return Err("categories and counts differ in length".into());
                }
                if categories.iter().any(|c| !c.is_finite())
                    || categories.windows(2).any(|w| w[0] >= w[1])
                {
                    return Err("categories must be finite and strictly increasing".into());
                }
                if counts.iter().sum::<u64>() + other + missing != *count {
                    return Err("category counts, other and missing do not add up to count".into());
                }
            }
        }
        Ok(())
    }
}

impl Reference {
    /// Reads and checks `reference.json` against the model's feature names.
    pub fn load(path: &Path, feature_names: &[String]) -> Result<Self, ReferenceError> {
        let invalid = |message: String| ReferenceError::Invalid {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        let reference: Reference =
            serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        reference.check(feature_names).map_err(invalid)?;
        Ok(reference)
    }

    pub fn check(&self, feature_names: &[String]) -> Result<(), String> {
        if self.format != REFERENCE_FORMAT {
            return Err(format!(
                "format {} is not supported (this sidecar reads format {REFERENCE_FORMAT})",
                self.format
            ));
        }
        let names: Vec<&str> = self.features.iter().map(|f| f.name.as_str()).collect();
        if names != feature_names.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(format!(
                "features [{}] do not match the model's features [{}]",
                names.join(", "),
                feature_names.join(", ")
            ));
        }
        for f in &self.features {
            f.distribution
                .validate()
                .map_err(|e| format!("feature `{}`: {e}", f.name))?;
        }
        self.score.validate().map_err(|e| format!("score: {e}"))?;
        if self.score.is_categorical() {
            return Err("score: must be numeric".into());
        }
        Ok(())
    }
}

/// Collects the values of one column, then bins them by quantiles.
#[derive(Debug, Default, Clone)]
pub struct ColumnBuilder {
    values: Vec<f64>,
    missing: u64,
}

impl ColumnBuilder {
    #[inline]
    pub fn push(&mut self, x: f64) {
        if x.is_nan() {
            self.missing += 1;
        } else {
            self.values.push(x);
        }
    }

    /// Quantile bins (`bins` of about equal mass, fewer when values repeat) for a numeric
    /// column; one bin per value for a categorical one.
    pub fn finish(mut self, bins: usize, categorical: bool) -> Distribution {
        self.values.sort_by(f64::total_cmp);
        let n = self.values.len();
        let count = n as u64 + self.missing;
        if categorical {
            let mut pairs: Vec<(f64, u64)> = Vec::new();
            for &v in &self.values {
                match pairs.last_mut() {
                    Some((c, k)) if *c == v => *k += 1,
                    _ => pairs.push((v, 1)),
                }
            }
            let mut other = 0;
            if pairs.len() > MAX_CATEGORIES {
                // Keep the most frequent categories; ties broken by value for determinism.
                let mut by_freq = pairs.clone();
                by_freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.total_cmp(&b.0)));
                other = by_freq[MAX_CATEGORIES..].iter().map(|p| p.1).sum();
                by_freq.truncate(MAX_CATEGORIES);
                by_freq.sort_by(|a, b| a.0.total_cmp(&b.0));
                pairs = by_freq;
            }
            return Distribution::Categorical {
                count,
                missing: self.missing,
                categories: pairs.iter().map(|p| p.0).collect(),
                counts: pairs.iter().map(|p| p.1).collect(),
                other,
            };
        }
        let mut edges: Vec<f64> = Vec::new();
        if n > 0 {
            for k in 1..bins.max(1) {
                // The value at quantile k/bins (lower); repeated values collapse edges.
                let idx = ((k * n) / bins).saturating_sub(1).min(n - 1);
                let e = self.values[idx];
                if edges.last().is_none_or(|last| *last < e) && e < self.values[n - 1] {
                    edges.push(e);
                }
            }
        }
        let mut counts = vec![0u64; edges.len() + 1];
        for &v in &self.values {
            counts[edges.partition_point(|&e| e < v)] += 1;
        }
        Distribution::Numeric {
            count,
            missing: self.missing,
            min: self.values.first().copied(),
            max: self.values.last().copied(),
            edges,
            counts,
        }
    }
}

/// Builds a [`Reference`] from rows of a dataset (model feature order) and their scores.
#[derive(Debug)]
pub struct ReferenceBuilder {
    names: Vec<String>,
    categorical: Vec<bool>,
    per_request: Vec<bool>,
    columns: Vec<ColumnBuilder>,
    score: ColumnBuilder,
    rows: u64,
}

impl ReferenceBuilder {
    pub fn new(names: Vec<String>, categorical: Vec<bool>) -> Self {
        let columns = vec![ColumnBuilder::default(); names.len()];
        let per_request = vec![false; names.len()];
        ReferenceBuilder {
            names,
            categorical,
            per_request,
            columns,
            score: ColumnBuilder::default(),
            rows: 0,
        }
    }

    /// Features counted once per query group ([`Self::push_group`]) instead of once per row.
    pub fn with_per_request(mut self, per_request: Vec<bool>) -> Self {
        self.per_request = per_request;
        self
    }

    /// Adds one row (NaN = missing) and the model's score for it, as a group of its own.
    pub fn push(&mut self, row: &[f64], score: f64) {
        self.push_group(row, &[score]);
    }

    /// Adds the rows of one query group (row-major) and their scores: features counted once
    /// per request take the group's first row, the others every row.
    pub fn push_group(&mut self, rows: &[f64], scores: &[f64]) {
        let width = self.columns.len();
        if width == 0 {
            self.rows += scores.len() as u64;
            scores.iter().for_each(|&s| self.score.push(s));
            return;
        }
        for (r, (row, &score)) in rows.chunks_exact(width).zip(scores).enumerate() {
            for ((c, &x), &once) in self.columns.iter_mut().zip(row).zip(&self.per_request) {
                if r == 0 || !once {
                    c.push(x);
                }
            }
            self.score.push(score);
            self.rows += 1;
        }
    }

    pub fn finish(self, bins: usize, source: String) -> Reference {
        Reference {
            format: REFERENCE_FORMAT,
            source,
            rows: self.rows,
            features: self
                .names
                .into_iter()
                .zip(self.columns)
                .zip(self.categorical)
                .zip(self.per_request)
                .map(|(((name, col), cat), per_request)| FeatureReference {
                    name,
                    per_request,
                    distribution: col.finish(bins, cat),
                })
                .collect(),
            score: self.score.finish(bins, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_bins_have_equal_mass_and_collapse_ties() {
        let mut c = ColumnBuilder::default();
        for i in 1..=1000 {
            c.push(f64::from(i));
        }
        c.push(f64::NAN);
        let Distribution::Numeric {
            edges,
            counts,
            min,
            max,
            missing,
            count,
        } = c.finish(10, false)
        else {
            panic!("numeric")
        };
        assert_eq!(
            edges,
            (1..10).map(|k| f64::from(k * 100)).collect::<Vec<_>>()
        );
        assert_eq!(counts, vec![100; 10]);
        assert_eq!(
            (min, max, missing, count),
            (Some(1.0), Some(1000.0), 1, 1001)
        );

        // 70% zeros (sparse data): the zero bin holds them all, the rest split the remainder.
        let mut c = ColumnBuilder::default();
        for i in 0..1000 {
            c.push(if i < 700 { 0.0 } else { f64::from(i) });
        }
        let d = c.finish(10, false);
        let Distribution::Numeric { edges, counts, .. } = &d else {
            panic!("numeric")
        };
        assert_eq!(edges[0], 0.0);
        assert_eq!(counts[0], 700);
        assert!(edges.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(d.bin(0.0), 0);
        assert_eq!(d.bin(-5.0), 0);
        assert_eq!(d.bin(1e9), edges.len());
        assert!(d.is_outlier(1e9, d.bin(1e9)));
        assert!(!d.is_outlier(0.0, 0));
    }

    #[test]
    fn categorical_bins_and_unseen_values() {
        let mut c = ColumnBuilder::default();
        for v in [3.0, 1.0, 3.0, 7.0, 3.0] {
            c.push(v);
        }
        let d = c.finish(10, true);
        assert_eq!(d.bin(3.0), 1);
        assert_eq!(d.bin(5.0), 3);
        assert!(d.is_outlier(5.0, d.bin(5.0)));
        assert_eq!(d.bin_counts_with_missing(), vec![1, 3, 1, 0, 0]);
    }

    #[test]
    fn load_checks_feature_names_and_shape() {
        let mut b = ReferenceBuilder::new(vec!["a".into(), "b".into()], vec![false, true]);
        b.push(&[1.0, 2.0], 0.5);
        b.push(&[f64::NAN, 3.0], 0.7);
        let r = b.finish(4, "test".into());
        r.check(&["a".into(), "b".into()]).expect("valid");
        let err = r.check(&["a".into(), "c".into()]).expect_err("must fail");
        assert!(err.contains("do not match"), "{err}");
        let json = serde_json::to_string(&r).expect("json");
        let back: Reference = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, r);
        let broken = json.replace("\"missing\":1", "\"missing\":5");
        let back: Reference = serde_json::from_str(&broken).expect("parse");
        let err = back
            .check(&["a".into(), "b".into()])
            .expect_err("must fail");
        assert!(err.contains("feature `a`"), "{err}");
        let typo = json.replacen("\"edges\"", "\"egdes\"", 1);
        assert!(serde_json::from_str::<Reference>(&typo).is_err());
    }

    #[test]
    fn per_request_features_count_once_per_group() {
        let mut b = ReferenceBuilder::new(vec!["q".into(), "h".into()], vec![false, false])
            .with_per_request(vec![true, false]);
        // Two groups: 3 rows sharing q = 1, 2 rows sharing q = 5.
        b.push_group(&[1.0, 10.0, 1.0, 11.0, 1.0, 12.0], &[0.1, 0.2, 0.3]);
        b.push_group(&[5.0, 13.0, 5.0, 14.0], &[0.4, 0.5]);
        let r = b.finish(4, "test".into());
        assert_eq!(r.rows, 5);
        assert!(r.features[0].per_request && !r.features[1].per_request);
        assert_eq!(r.features[0].distribution.count(), 2);
        assert_eq!(r.features[1].distribution.count(), 5);
        assert_eq!(r.score.count(), 5);
        let json = serde_json::to_string(&r).expect("json");
        assert_eq!(json.matches("per_request").count(), 1, "{json}");
        let back: Reference = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, r);
    }
}

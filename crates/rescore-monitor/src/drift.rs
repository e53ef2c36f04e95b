//! Per model version: counters per reference bin over a sliding window (a ring of time
//! buckets), and the drift (PSI, KS) and outlier measures computed from them.
//!
//! Observing a request costs one bin lookup per sampled value into a request-local array, then
//! one short lock to add that array into the current time bucket.

use std::sync::Mutex;

use serde::Serialize;

use crate::config::DriftConfig;
use crate::reference::{Distribution, Reference};

/// Bin shares below this are raised to it before PSI's logarithm (empty bins).
pub const PSI_EPSILON: f64 = 1e-4;

/// Where one column's counters live in the flat counter array.
#[derive(Debug, Clone)]
struct Column {
    offset: usize,
    /// Bins excluding missing; the missing counter follows, then the outlier counter.
    bins: usize,
}

impl Column {
    fn missing_slot(&self) -> usize {
        self.offset + self.bins
    }
    fn outlier_slot(&self) -> usize {
        self.offset + self.bins + 1
    }
    fn end(&self) -> usize {
        self.offset + self.bins + 2
    }
}

/// A column's bins in the form counting needs: no enum of the file format, and a branch-free
/// linear scan of the (few) numeric edges instead of a binary search.
#[derive(Debug, Clone)]
enum Binner {
    /// `lo > hi` when the reference had no value: then every value is out of range.
    Numeric {
        edges: Box<[f64]>,
        lo: f64,
        hi: f64,
    },
    Categorical {
        categories: Box<[f64]>,
    },
}

impl Binner {
    fn new(d: &Distribution) -> Self {
        match d {
            Distribution::Numeric {
                edges, min, max, ..
            } => Binner::Numeric {
                edges: edges.clone().into(),
                lo: min.unwrap_or(f64::INFINITY),
                hi: max.unwrap_or(f64::NEG_INFINITY),
            },
            Distribution::Categorical { categories, .. } => Binner::Categorical {
                categories: categories.clone().into(),
            },
        }
    }

    #[inline]
    fn count(&self, local: &mut [u64], col: &Column, x: f64) {
        if x.is_nan() {
            local[col.missing_slot()] += 1;
            return;
        }
        match self {
            Binner::Numeric { edges, lo, hi } => {
                let bin = edges.iter().fold(0usize, |n, &e| n + usize::from(e < x));
                local[col.offset + bin] += 1;
                local[col.outlier_slot()] += u64::from((x < *lo) | (x > *hi));
            }
            Binner::Categorical { categories } => {
                match categories.binary_search_by(|c| c.total_cmp(&x)) {
                    Ok(bin) => local[col.offset + bin] += 1,
                    Err(_) => {
                        local[col.offset + categories.len()] += 1;
                        local[col.outlier_slot()] += 1;
                    }
                }
            }
        }
    }
}

#[derive(Debug)]
struct Bucket {
    /// Time bucket number (unix seconds / bucket length); u64::MAX = never used.
    epoch: u64,
    rows: u64,
    /// Requests whose per-request features were counted.
    requests: u64,
    counts: Vec<u64>,
}

/// Sliding-window sketches of one model version's features and scores.
#[derive(Debug)]
pub struct DriftSketch {
    reference: Reference,
    columns: Vec<Column>,
    binners: Vec<Binner>,
    score: Column,
    score_binner: Binner,
    /// Features counted once per sampled row, and once per request (query-level).
    row_features: Vec<usize>,
    request_features: Vec<usize>,
    slots: usize,
    stride: usize,
    bucket_secs: u64,
    ring: Mutex<Vec<Bucket>>,
    min_rows: u64,
    feature_threshold: f64,
    score_threshold: f64,
}

impl DriftSketch {
    pub fn new(reference: Reference, config: &DriftConfig) -> Self {
        let mut offset = 0;
        let mut layout = |d: &Distribution| {
            let c = Column {
                offset,
                bins: d.num_bins(),
            };
            offset = c.end();
            c
        };
        let columns: Vec<Column> = reference
            .features
            .iter()
            .map(|f| layout(&f.distribution))
            .collect();
        let score = layout(&reference.score);
        let slots = offset;
        let binners = reference
            .features
            .iter()
            .map(|f| Binner::new(&f.distribution))
            .collect();
        let score_binner = Binner::new(&reference.score);
        let ring = (0..config.buckets)
            .map(|_| Bucket {
                epoch: u64::MAX,
                rows: 0,
                requests: 0,
                counts: vec![0; slots],
            })
            .collect();
        let (request_features, row_features) =
            (0..reference.features.len()).partition(|&i| reference.features[i].per_request);
        DriftSketch {
            reference,
            columns,
            binners,
            score,
            score_binner,
            row_features,
            request_features,
            slots,
            stride: config.row_stride(),
            bucket_secs: config.bucket_secs(),
            ring: Mutex::new(ring),
            min_rows: config.min_rows,
            feature_threshold: config.feature_psi_threshold,
            score_threshold: config.score_psi_threshold,
        }
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// Adds a sample of a request's rows (row-major, NaN = missing) and their scores, with
    /// the sample's first row at `offset` (random in `0..stride` for an unbiased sample).
    pub fn observe_at(&self, rows: &[f64], scores: &[f64], offset: usize, now_secs: u64) {
        let width = self.columns.len();
        if width == 0 || scores.is_empty() || rows.len() != width * scores.len() {
            return;
        }
        let sample = (offset % self.stride..scores.len()).step_by(self.stride);
        self.add(
            sample.map(|r| (&rows[r * width..(r + 1) * width], scores[r])),
            rows.get(..width),
            now_secs,
        );
    }

    /// Adds a request with a random sampling offset, at the current time.
    pub fn observe(&self, rows: &[f64], scores: &[f64]) {
        self.observe_at(rows, scores, self.random_offset(), unix_secs());
    }

    /// Which of a request's `hits` rows feed the sketches: every `stride`-th from a random
    /// offset. The caller assembles only those and passes them to [`Self::observe_sampled`].
    pub fn sample(&self, hits: usize) -> impl Iterator<Item = usize> {
        (self.random_offset()..hits).step_by(self.stride)
    }

    /// Whether features are counted once per request: then [`Self::observe_sampled`] wants
    /// a row of the request even when no row was sampled.
    pub fn counts_requests(&self) -> bool {
        !self.request_features.is_empty()
    }

    /// Adds rows already sampled (by [`Self::sample`]): every row counts, for the features
    /// counted per row and the score; the per-request features take `request_row` (any row
    /// of the request: they are the same in every row).
    pub fn observe_sampled(&self, rows: &[f64], scores: &[f64], request_row: Option<&[f64]>) {
        let width = self.columns.len();
        if width == 0
            || rows.len() != width * scores.len()
            || request_row.is_some_and(|r| r.len() != width)
        {
            return;
        }
        self.add(
            rows.chunks_exact(width).zip(scores.iter().copied()),
            request_row,
            unix_secs(),
        );
    }

    fn random_offset(&self) -> usize {
        if self.stride > 1 {
            rand::random::<u32>() as usize % self.stride
        } else {
            0
        }
    }

    /// Counts the rows (and the request's row for per-request features) into a request-local
    /// array, then adds it to the current bucket.
    fn add<'r>(
        &self,
        rows: impl Iterator<Item = (&'r [f64], f64)>,
        request_row: Option<&[f64]>,
        now_secs: u64,
    ) {
        let mut local = vec![0u64; self.slots];
        let mut sampled = 0u64;
        for (row, score) in rows {
            if self.request_features.is_empty() {
                for ((&x, col), binner) in row.iter().zip(&self.columns).zip(&self.binners) {
                    binner.count(&mut local, col, x);
                }
            } else {
                for &f in &self.row_features {
                    self.binners[f].count(&mut local, &self.columns[f], row[f]);
                }
            }
            self.score_binner.count(&mut local, &self.score, score);
            sampled += 1;
        }
        let request = request_row.filter(|_| self.counts_requests());
        if let Some(row) = request {
            for &f in &self.request_features {
                self.binners[f].count(&mut local, &self.columns[f], row[f]);
            }
        }
        if sampled == 0 && request.is_none() {
            return;
        }
        let epoch = now_secs / self.bucket_secs;
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let n = ring.len() as u64;
        let bucket = &mut ring[(epoch % n) as usize];
        if bucket.epoch != epoch {
            bucket.epoch = epoch;
            bucket.rows = 0;
            bucket.requests = 0;
            bucket.counts.iter_mut().for_each(|c| *c = 0);
        }
        bucket.rows += sampled;
        bucket.requests += u64::from(request.is_some());
        for (acc, add) in bucket.counts.iter_mut().zip(&local) {
            *acc += add;
        }
    }

    /// The window's counters summed: (rows, requests, counts).
    fn window(&self, now_secs: u64) -> (u64, u64, Vec<u64>) {
        let epoch = now_secs / self.bucket_secs;
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let n = ring.len() as u64;
        let mut counts = vec![0u64; self.slots];
        let (mut rows, mut requests) = (0, 0);
        for b in ring.iter() {
            if b.epoch != u64::MAX && b.epoch <= epoch && epoch - b.epoch < n {
                rows += b.rows;
                requests += b.requests;
                for (acc, c) in counts.iter_mut().zip(&b.counts) {
                    *acc += c;
                }
            }
        }
        (rows, requests, counts)
    }

    /// Drift and outlier measures over the window ending at `now_secs`.
    pub fn report_at(&self, now_secs: u64) -> DriftReport {
        let (rows, requests, counts) = self.window(now_secs);
        let enough_of = |n: u64| n >= self.min_rows && n > 0;
        let enough = enough_of(rows);
        // Observations of a column: sampled rows, or requests for per-request features.
        let measure = |col: &Column, d: &Distribution, rows: u64| -> ColumnDrift {
            let enough = enough_of(rows);
            let observed = &counts[col.offset..col.end()];
            let bins_and_missing = &observed[..=col.bins];
            let reference = d.bin_counts_with_missing();
            let missing = observed[col.bins];
            let outliers = observed[col.bins + 1];
            let present = rows.saturating_sub(missing);
            ColumnDrift {
                psi: enough.then(|| psi(&reference, bins_and_missing)),
                ks: (enough && !d.is_categorical() && present > 0)
                    .then(|| ks(&reference[..col.bins], &observed[..col.bins])),
                missing_ratio: ratio(missing, rows),
                reference_missing_ratio: ratio(d.missing(), d.count()),
                outlier_ratio: ratio(outliers, present),
                outlier_kind: if d.is_categorical() {
                    "unseen_category"
                } else {
                    "out_of_range"
                },
            }
        };
        let features: Vec<FeatureDrift> = self
            .reference
            .features
            .iter()
            .zip(&self.columns)
            .map(|(f, col)| FeatureDrift {
                name: f.name.clone(),
                categorical: f.distribution.is_categorical(),
                per_request: f.per_request,
                drift: measure(
                    col,
                    &f.distribution,
                    if f.per_request { requests } else { rows },
                ),
            })
            .collect();
        let score = measure(&self.score, &self.reference.score, rows);
        let over = features
            .iter()
            .filter(|f| f.drift.psi.is_some_and(|p| p >= self.feature_threshold))
            .count();
        let (mut out_of_range, mut unseen, mut missing, mut numeric_present, mut cat_present) =
            (0u64, 0u64, 0u64, 0u64, 0u64);
        let mut values = 0u64;
        for (f, col) in self.reference.features.iter().zip(&self.columns) {
            let m = counts[col.missing_slot()];
            let o = counts[col.outlier_slot()];
            let n = if f.per_request { requests } else { rows };
            values += n;
            missing += m;
            if f.distribution.is_categorical() {
                unseen += o;
                cat_present += n.saturating_sub(m);
            } else {
                out_of_range += o;
                numeric_present += n.saturating_sub(m);
            }
        }
        DriftReport {
            window_rows: rows,
            window_requests: requests,
            enough_rows: enough,
            features_over_threshold: over,
            score_over_threshold: score.psi.is_some_and(|p| p >= self.score_threshold),
            out_of_range_ratio: ratio(out_of_range, numeric_present),
            unseen_category_ratio: ratio(unseen, cat_present),
            missing_ratio: ratio(missing, values),
            score,
            features,
        }
    }

    pub fn report(&self) -> DriftReport {
        self.report_at(unix_secs())
    }
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Population stability index between two binned distributions (same bins, counts).
pub fn psi(expected: &[u64], actual: &[u64]) -> f64 {
    let (te, ta) = (
        expected.iter().sum::<u64>().max(1) as f64,
        actual.iter().sum::<u64>().max(1) as f64,
    );
    expected
        .iter()
        .zip(actual)
        .filter(|(e, a)| **e > 0 || **a > 0)
        .map(|(&e, &a)| {
            let p = (e as f64 / te).max(PSI_EPSILON);
            let q = (a as f64 / ta).max(PSI_EPSILON);
            (q - p) * (q / p).ln()
        })
        .sum()
}

/// Kolmogorov-Smirnov distance of two binned distributions, evaluated at the bin edges (a
/// lower bound of the distance between the underlying distributions).
pub fn ks(expected: &[u64], actual: &[u64]) -> f64 {
    let (te, ta) = (
        expected.iter().sum::<u64>().max(1) as f64,
        actual.iter().sum::<u64>().max(1) as f64,
    );
    let (mut ce, mut ca, mut worst) = (0u64, 0u64, 0.0f64);
    for (&e, &a) in expected.iter().zip(actual) {
        ce += e;
        ca += a;
        worst = worst.max((ce as f64 / te - ca as f64 / ta).abs());
    }
    worst
}

pub fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Drift of one column (feature or score) over the window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ColumnDrift {
    /// PSI against the reference (bins + a missing bin); null with too few observations.
    pub psi: Option<f64>,
    /// Binned KS distance of the non-missing values; null for categorical features.
    pub ks: Option<f64>,
    pub missing_ratio: Option<f64>,
    pub reference_missing_ratio: Option<f64>,
    /// Non-missing values outside the reference range, or unseen categories.
    pub outlier_ratio: Option<f64>,
    pub outlier_kind: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FeatureDrift {
    pub name: String,
    pub categorical: bool,
    /// Counted once per request (a query-level feature, `per_request` in the reference):
    /// its ratios and PSI are over requests, and it needs `min_rows` requests.
    pub per_request: bool,
    #[serde(flatten)]
    pub drift: ColumnDrift,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DriftReport {
    /// Sampled rows in the window.
    pub window_rows: u64,
    /// Requests in the window whose per-request features were counted (0 when the reference
    /// has none).
    pub window_requests: u64,
    /// Whether `window_rows` reached `monitoring.drift.min_rows` (else PSI/KS of the score
    /// and of the per-row features are null; per-request features need `min_rows` requests).
    pub enough_rows: bool,
    pub features_over_threshold: usize,
    pub score_over_threshold: bool,
    /// Over all numeric features: values outside the reference range / non-missing values.
    pub out_of_range_ratio: Option<f64>,
    /// Over all categorical features: unseen categories / non-missing values.
    pub unseen_category_ratio: Option<f64>,
    /// Over all features: missing values / values.
    pub missing_ratio: Option<f64>,
    pub score: ColumnDrift,
    pub features: Vec<FeatureDrift>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::ReferenceBuilder;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn normal(rng: &mut ChaCha8Rng) -> f64 {
        // Box-Muller
        let (u, v): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// Rows of three features: a normal, an exponential and a categorical in {1,2,3}.
    fn rows(rng: &mut ChaCha8Rng, n: usize, shift_first: f64) -> (Vec<f64>, Vec<f64>) {
        let mut rows = Vec::with_capacity(n * 3);
        let mut scores = Vec::with_capacity(n);
        for _ in 0..n {
            let a = normal(rng) + shift_first;
            let b = -rng.gen_range(1e-12f64..1.0).ln();
            let c = f64::from(rng.gen_range(1..=3u8));
            rows.extend([a, b, c]);
            scores.push(0.5 * b + c);
        }
        (rows, scores)
    }

    fn sketch(config: &DriftConfig) -> DriftSketch {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (r, s) = rows(&mut rng, 20_000, 0.0);
        let mut b = ReferenceBuilder::new(
            vec!["a".into(), "b".into(), "c".into()],
            vec![false, false, true],
        );
        for (row, score) in r.chunks(3).zip(&s) {
            b.push(row, *score);
        }
        DriftSketch::new(b.finish(10, "test".into()), config)
    }

    fn config() -> DriftConfig {
        DriftConfig {
            row_sample_rate: 1.0,
            min_rows: 1000,
            window_secs: 600,
            buckets: 10,
            ..DriftConfig::default()
        }
    }

    #[test]
    fn a_shifted_feature_crosses_the_threshold_and_the_others_stay_under() {
        let s = sketch(&config());
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..10 {
            let (r, sc) = rows(&mut rng, 1000, 1.0);
            s.observe_at(&r, &sc, 0, 1_000_000);
        }
        let report = s.report_at(1_000_000);
        assert_eq!(report.window_rows, 10_000);
        let psi = |i: usize| report.features[i].drift.psi.expect("enough rows");
        assert!(psi(0) > 0.2, "shifted feature PSI {}", psi(0));
        assert!(psi(1) < 0.02, "unshifted feature PSI {}", psi(1));
        assert!(psi(2) < 0.02, "unshifted categorical PSI {}", psi(2));
        assert!(report.features[0].drift.ks.expect("ks") > 0.3);
        assert!(report.features[1].drift.ks.expect("ks") < 0.03);
        assert_eq!(report.features[2].drift.ks, None);
        assert_eq!(report.features_over_threshold, 1);
        // A shift of one standard deviation puts values above the reference maximum.
        assert!(report.features[0].drift.outlier_ratio.expect("ratio") > 0.0);
        assert_eq!(report.features[2].drift.outlier_ratio, Some(0.0));
        assert!(report.score.psi.expect("score psi") < 0.02);
        assert!(!report.score_over_threshold);
    }

    #[test]
    fn unseen_categories_and_missing_values_are_counted() {
        let s = sketch(&config());
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut r, sc) = rows(&mut rng, 2000, 0.0);
        for (i, row) in r.chunks_mut(3).enumerate() {
            if i % 4 == 0 {
                row[2] = 9.0; // never seen in the reference
            }
            if i % 10 == 0 {
                row[1] = f64::NAN;
            }
        }
        s.observe_at(&r, &sc, 0, 500);
        let report = s.report_at(500);
        assert_eq!(report.features[2].drift.outlier_kind, "unseen_category");
        assert_eq!(report.features[2].drift.outlier_ratio, Some(0.25));
        assert_eq!(report.unseen_category_ratio, Some(0.25));
        assert_eq!(report.features[1].drift.missing_ratio, Some(0.1));
        assert_eq!(report.features[1].drift.reference_missing_ratio, Some(0.0));
        // 25% unseen categories is drift of the categorical feature too.
        assert!(report.features[2].drift.psi.expect("psi") > 0.2);
    }

    #[test]
    fn the_window_slides_and_small_windows_report_nothing() {
        let s = sketch(&config());
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (r, sc) = rows(&mut rng, 1500, 3.0);
        s.observe_at(&r, &sc, 0, 60_000);
        assert_eq!(s.report_at(60_000).window_rows, 1500);
        // 10 buckets of 60 s: still inside after 9 more minutes, gone after 10.
        assert_eq!(s.report_at(60_000 + 540).window_rows, 1500);
        let later = s.report_at(60_000 + 600);
        assert_eq!(later.window_rows, 0);
        assert_eq!(later.features[0].drift.psi, None);
        // A bucket reused after a full turn of the ring starts from zero.
        let (r2, sc2) = rows(&mut rng, 10, 0.0);
        s.observe_at(&r2, &sc2, 0, 60_000 + 600);
        assert_eq!(s.report_at(60_000 + 600).window_rows, 10);
        assert!(!s.report_at(60_000 + 600).enough_rows);
    }

    #[test]
    fn row_sampling_takes_every_stride_th_row() {
        let c = DriftConfig {
            row_sample_rate: 0.25,
            min_rows: 1,
            ..config()
        };
        let s = sketch(&c);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (r, sc) = rows(&mut rng, 1000, 0.0);
        s.observe_at(&r, &sc, 3, 10);
        assert_eq!(s.report_at(10).window_rows, 250);
        s.observe_at(&r[..3 * 3], &sc[..3], 3, 10);
        assert_eq!(
            s.report_at(10).window_rows,
            250,
            "offset past the end: no row"
        );
    }

    #[test]
    fn compiled_bins_agree_with_the_reference_bins() {
        let s = sketch(&config());
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        for (f, (binner, col)) in s
            .reference
            .features
            .iter()
            .zip(s.binners.iter().zip(&s.columns))
        {
            for _ in 0..2000 {
                let x = if f.distribution.is_categorical() {
                    f64::from(rng.gen_range(0..6u8))
                } else {
                    normal(&mut rng) * 3.0
                };
                let mut local = vec![0u64; s.slots];
                binner.count(&mut local, col, x);
                let bin = f.distribution.bin(x);
                assert_eq!(local[col.offset + bin], 1, "{} x={x}", f.name);
                assert_eq!(
                    local[col.outlier_slot()],
                    u64::from(f.distribution.is_outlier(x, bin)),
                    "{} x={x}",
                    f.name
                );
            }
        }
    }

    #[test]
    fn psi_and_ks_of_identical_and_disjoint_distributions() {
        assert_eq!(psi(&[10, 20, 30], &[1, 2, 3]), 0.0);
        assert_eq!(ks(&[10, 20, 30], &[1, 2, 3]), 0.0);
        assert!(psi(&[100, 0], &[0, 100]) > 10.0);
        assert_eq!(ks(&[100, 0], &[0, 100]), 1.0);
    }

    /// Requests of 50 hits sharing one query value `q` (normal per request) and a per-hit
    /// value `h` (normal per hit).
    fn requests(rng: &mut ChaCha8Rng, n: usize) -> Vec<(Vec<f64>, Vec<f64>)> {
        (0..n)
            .map(|_| {
                let q = normal(rng);
                let rows: Vec<f64> = (0..50).flat_map(|_| [q, normal(rng)]).collect();
                let scores = rows.chunks(2).map(|r| r[0] + r[1]).collect();
                (rows, scores)
            })
            .collect()
    }

    #[test]
    fn query_level_features_count_once_per_request() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let training = requests(&mut rng, 2000);
        let reference = |per_request: bool| {
            let mut b = ReferenceBuilder::new(vec!["q".into(), "h".into()], vec![false; 2])
                .with_per_request(vec![per_request, false]);
            for (rows, scores) in &training {
                b.push_group(rows, scores);
            }
            b.finish(10, "test".into())
        };
        let config = DriftConfig {
            row_sample_rate: 1.0,
            min_rows: 500,
            ..config()
        };
        let once = DriftSketch::new(reference(true), &config);
        let per_row = DriftSketch::new(reference(false), &config);
        assert_eq!(once.reference().features[0].distribution.count(), 2000);
        // 20 requests, 1,000 rows, nothing shifted.
        for (rows, scores) in requests(&mut rng, 20) {
            once.observe_at(&rows, &scores, 0, 100);
            per_row.observe_at(&rows, &scores, 0, 100);
        }
        let counted_once = once.report_at(100);
        let counted_per_row = per_row.report_at(100);
        assert_eq!(
            (counted_once.window_rows, counted_once.window_requests),
            (1000, 20)
        );
        assert!(counted_once.features[0].per_request);
        // Counted per row, 20 values look like 1,000 and drift (the false alarm this avoids);
        // counted per request they are 20 observations, too few to report.
        let false_alarm = counted_per_row.features[0].drift.psi.expect("1,000 rows");
        assert!(
            false_alarm > 0.2,
            "per-row PSI of 20 query values: {false_alarm}"
        );
        assert_eq!(counted_once.features[0].drift.psi, None);
        assert!(counted_once.features[1].drift.psi.expect("1,000 rows") < 0.05);
        assert_eq!(counted_once.features_over_threshold, 0);
        // With enough requests the query-level feature is measured, without a false alarm.
        for (rows, scores) in requests(&mut rng, 1000) {
            once.observe_at(&rows, &scores, 0, 100);
        }
        let report = once.report_at(100);
        assert_eq!(report.window_requests, 1020);
        assert!(report.features[0].drift.psi.expect("1,020 requests") < 0.05);
        assert_eq!(report.features[0].drift.missing_ratio, Some(0.0));
        // A shifted query value is still found.
        for (mut rows, scores) in requests(&mut rng, 1000) {
            rows.chunks_mut(2).for_each(|r| r[0] += 1.0);
            once.observe_at(&rows, &scores, 0, 100);
        }
        assert!(once.report_at(100).features[0].drift.psi.expect("psi") > 0.2);
    }
}

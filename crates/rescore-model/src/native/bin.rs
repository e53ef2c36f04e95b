//! Exact quantisation: each (feature, missing-value rule) that splits use becomes a bin
//! column over the rule's sorted distinct thresholds, and a value's bin is the number of
//! thresholds below it, so `x <= t_k` iff `bin <= k` (ADR 0003, part 1). Rows are binned 64
//! at a time into a call's [`Blocks`].

use super::simd::Avx2;
use super::NativeModel;

/// LightGBM's `kZeroThreshold`: declared `const double kZeroThreshold = 1e-35f`, so it is the
/// f32 value 1e-35 widened to f64.
pub(super) const ZERO_THRESHOLD: f64 = 1e-35_f32 as f64;

/// A numerical column: a model feature under one missing-value rule, and the sorted distinct
/// thresholds that the rule's splits use.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct BinColumn {
    pub(super) feature: usize,
    pub(super) kind: SlotKind,
    pub(super) thresholds: Vec<f64>,
    /// `kind` as data, for a branch-free mapping: which values are missing (NaN, zero) and
    /// what they become.
    nan_missing: bool,
    pub(super) zero_missing: bool,
    replacement: f64,
    /// The AVX2 binning's tables (see `bin_64_avx2`): `thresholds` in groups of 16 padded
    /// with +inf (one more group than full ones), and the last threshold of each group
    /// (padded with +inf to whole vectors of 4; empty for a single group).
    pub(super) padded: Vec<f64>,
    pub(super) fences: Vec<f64>,
}

impl BinColumn {
    pub(super) fn new(feature: usize, kind: SlotKind) -> Self {
        let (nan_missing, zero_missing, replacement) = match kind {
            SlotKind::NanAsZero => (true, false, 0.0),
            SlotKind::NanLeft => (true, false, f64::NEG_INFINITY),
            SlotKind::ZeroLeft => (true, true, f64::NEG_INFINITY),
            SlotKind::ZeroRight => (false, true, f64::NAN),
            SlotKind::NanRight | SlotKind::Raw => (false, false, f64::NAN),
        };
        BinColumn {
            feature,
            kind,
            thresholds: Vec::new(),
            nan_missing,
            zero_missing,
            replacement,
            padded: Vec::new(),
            fences: Vec::new(),
        }
    }

    /// Builds `padded` and `fences` from the final `thresholds`.
    pub(super) fn build_search_tables(&mut self) {
        let groups = self.thresholds.len() / 16 + 1;
        self.padded = self.thresholds.clone();
        self.padded.resize(16 * groups, f64::INFINITY);
        self.fences = if groups == 1 {
            Vec::new()
        } else {
            let mut fences: Vec<f64> = (0..groups).map(|g| self.padded[16 * g + 15]).collect();
            fences.resize(4 * groups.div_ceil(4), f64::INFINITY);
            fences
        };
    }

    /// The bin of `x` (NaN = missing): the number of thresholds below its mapped value, or
    /// [`NAN_BIN`]. What the blocks' binning computes, one value at a time.
    pub(super) fn bin(&self, x: f64) -> u8 {
        let x = self.map(x);
        if x.is_nan() {
            NAN_BIN
        } else {
            self.thresholds.partition_point(|&t| t < x) as u8
        }
    }

    /// `kind.map(dense(x))` without branches.
    #[inline(always)]
    fn map(&self, x: f64) -> f64 {
        let nan = x.is_nan();
        let zero = x.abs() <= ZERO_THRESHOLD;
        let missing = (nan & self.nan_missing) | (zero & self.zero_missing);
        let x = std::hint::select_unpredictable(zero, 0.0, x);
        std::hint::select_unpredictable(missing, self.replacement, x)
    }
}

/// Bins are u8 (0..=254: how many of the column's thresholds lie below the value; 255: NaN,
/// right of every split) stored with the top bit flipped, so that the signed byte compare of
/// SSE2/AVX2 orders them as unsigned. Columns with more thresholds are not compiled.
pub(super) const MAX_THRESHOLDS: usize = 254;
pub(super) const NAN_BIN: u8 = 255;

#[inline(always)]
pub(super) fn biased(bin: u8) -> i8 {
    (bin ^ 0x80) as i8
}

/// How a bin column holds a model feature. LightGBM's missing-value rules depend on the
/// split (`missing_type`, `default_left`), so a feature gets one column per rule that its
/// splits use, with missing values replaced by a value that the plain test `x <= threshold`
/// sends the split's default way: every numerical split is then the same comparison of bins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum SlotKind {
    /// Missing type None: NaN is read as 0.0.
    NanAsZero,
    /// Missing type NaN: NaN goes the default way (-inf: left; NaN fails `x <= t`: right).
    NanLeft,
    NanRight,
    /// Missing type Zero: 0.0 and NaN go the default way.
    ZeroLeft,
    ZeroRight,
    /// Categorical splits read the value as it is.
    Raw,
}

impl SlotKind {
    /// Whether `x <= threshold` on mapped values is LightGBM's decision for every input:
    /// the replacement for missing must land on the default side of the threshold.
    pub(super) fn exact_for(self, threshold: f64) -> bool {
        match self {
            SlotKind::NanLeft | SlotKind::ZeroLeft => !threshold.is_nan(),
            SlotKind::NanRight | SlotKind::ZeroRight | SlotKind::NanAsZero | SlotKind::Raw => true,
        }
    }
}

/// Per-call work space: the rows of the call as bin and raw columns, 64 rows per block.
pub(super) struct Blocks {
    /// 64-row words per block.
    pub(super) words: usize,
    pub(super) count: usize,
    pub(super) rows: usize,
    /// `[block][bin column][row in block]`, biased
    pub(super) bins: Vec<i8>,
    /// `[block][raw column][row in block]`
    pub(super) raw: Vec<f64>,
    /// `[block][64 * words + 64]`: the rows' sums, then spares for the additions of empty
    /// row sets.
    pub(super) sums: Vec<f64>,
}

impl Blocks {
    /// The blocks of `n_rows` rows given as bins (row-major, `n_bins` per row).
    pub(super) fn of_binned(rows: &[u8], n_rows: usize, n_bins: usize, words: usize) -> Self {
        let block_rows = 64 * words;
        let count = n_rows.div_ceil(block_rows);
        let mut bins = vec![0i8; count * n_bins * block_rows];
        for (r, row) in rows.chunks_exact(n_bins.max(1)).enumerate() {
            let (block, at) = (r / block_rows, r % block_rows);
            let block = &mut bins[block * n_bins * block_rows..][..n_bins * block_rows];
            for (column, &bin) in block.chunks_exact_mut(block_rows).zip(row) {
                column[at] = biased(bin);
            }
        }
        Blocks {
            words,
            count,
            rows: n_rows,
            bins,
            raw: Vec::new(),
            sums: vec![0.0; count * (block_rows + 64)],
        }
    }
}

impl NativeModel {
    /// Quantises the rows into the bins of the model's own thresholds (exact: a row goes
    /// right of a split iff its bin is above the split's key) and copies the raw columns.
    pub(super) fn blocks_of(&self, rows: &[f64], words: usize) -> Blocks {
        let block_rows = 64 * words;
        let num_features = self.num_features.max(1);
        let n_rows = rows.len() / num_features;
        let count = n_rows.div_ceil(block_rows);
        let n_bins = self.bin_columns.len();
        let n_raw = self.raw_columns.len();
        let mut bins = vec![0i8; count * n_bins * block_rows];
        let mut raw = vec![0.0f64; count * n_raw * block_rows];
        // 64 rows at a time: their values stay in cache while each is read once, row by
        // row (sequential reads), into mapped columns; each column is then binned with
        // searches that all take the same number of steps, which the CPU overlaps.
        let mut columns = vec![0.0f64; n_bins * 64];
        let avx2 = Avx2::detect();
        for (chunk, chunk_rows) in rows[..n_rows * num_features]
            .chunks(64 * num_features)
            .enumerate()
        {
            let (block, sub) = (chunk / words, chunk % words);
            let in_chunk = chunk_rows.len() / num_features;
            for (r, row) in chunk_rows.chunks_exact(num_features).enumerate() {
                for (c, column) in self.bin_columns.iter().enumerate() {
                    columns[c * 64 + r] = column.map(row[column.feature]);
                }
            }
            let bins = &mut bins[block * n_bins * block_rows..(block + 1) * n_bins * block_rows];
            for ((column, out), values) in self
                .bin_columns
                .iter()
                .zip(bins.chunks_exact_mut(block_rows))
                .zip(columns.chunks_exact(64))
            {
                let out: &mut [i8; 64] = (&mut out[sub * 64..(sub + 1) * 64])
                    .try_into()
                    .expect("64 bins");
                let values: &[f64; 64] = values.try_into().expect("64 values");
                if let Some(avx2) = avx2 {
                    avx2.bin_64(column, values, out, in_chunk);
                } else {
                    bin_64(&column.thresholds, values, out, in_chunk);
                }
            }
            let raw = &mut raw[block * n_raw * block_rows..(block + 1) * n_raw * block_rows];
            for (&feature, out) in self
                .raw_columns
                .iter()
                .zip(raw.chunks_exact_mut(block_rows))
            {
                let values = chunk_rows[feature..].iter().step_by(num_features);
                for (value, &x) in out[sub * 64..].iter_mut().zip(values) {
                    *value = dense(x);
                }
            }
        }
        Blocks {
            words,
            count,
            rows: n_rows,
            bins,
            raw,
            sums: vec![0.0; count * (block_rows + 64)],
        }
    }
}

/// LightGBM's dense-row reader keeps only |x| > kZeroThreshold or NaN; everything else
/// reaches the trees as an exact 0.0.
#[inline(always)]
pub(super) fn dense(x: f64) -> f64 {
    if x.is_nan() || x.abs() > ZERO_THRESHOLD {
        x
    } else {
        0.0
    }
}

/// The biased bin of each value: the number of `thresholds` (sorted, distinct, no NaN)
/// below it, so that `x <= thresholds[k]` iff `bin <= k`; NaN gets [`NAN_BIN`], above every
/// key. Branch-free binary searches, 8 values in lockstep: the steps of one search depend on
/// each other, the 8 searches do not, so the CPU overlaps them.
#[inline(always)]
fn bin_64(thresholds: &[f64], values: &[f64; 64], out: &mut [i8; 64], rows: usize) {
    const LANES: usize = 8;
    let n = thresholds.len();
    for (values, out) in values
        .chunks_exact(LANES)
        .zip(out.chunks_exact_mut(LANES))
        .take(rows.div_ceil(LANES))
    {
        let mut base = [0usize; LANES];
        let mut size = n;
        while size > 1 {
            let half = size / 2;
            for (b, &x) in base.iter_mut().zip(values) {
                *b = std::hint::select_unpredictable(thresholds[*b + half] < x, *b + half, *b);
            }
            size -= half;
        }
        for ((o, &b), &x) in out.iter_mut().zip(&base).zip(values) {
            let bin = if n == 0 {
                0
            } else {
                b + usize::from(thresholds[b] < x)
            };
            *o = biased(if x.is_nan() { NAN_BIN } else { bin as u8 });
        }
    }
}

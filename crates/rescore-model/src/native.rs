//! A pure-Rust evaluator of LightGBM text models that reproduces LightGBM's prediction
//! exactly (the same decisions, the same summation order, the same output transforms).
//! Models it cannot score exactly (linear trees, several classes, unknown objectives, more
//! than 254 thresholds on one feature) are refused with `ModelError::Unsupported`, so that
//! they stay on the `lightgbm3` engine. The technique (exact bins from the model's own
//! thresholds; byte node ids advanced by vector compares for 256-row blocks, row sets flowing
//! down each tree for small batches) is described in docs/adr/0003.

use crate::{ModelError, ModelHeader};

/// LightGBM's `kZeroThreshold`: declared `const double kZeroThreshold = 1e-35f`, so it is the
/// f32 value 1e-35 widened to f64.
const ZERO_THRESHOLD: f64 = 1e-35_f32 as f64;

const CATEGORICAL_MASK: u8 = 1;
const DEFAULT_LEFT_MASK: u8 = 2;
const MISSING_ZERO: u8 = 1;
const MISSING_NAN: u8 = 2;

#[derive(Debug, Clone, PartialEq)]
struct Node {
    feature: usize,
    threshold: f64,
    decision: u8,
    left: i32,
    right: i32,
    /// Categorical splits: the bitset's range in the model's bitset words.
    cat_start: usize,
    cat_len: usize,
}

#[derive(Debug, Clone, PartialEq)]
struct Tree {
    nodes: Vec<Node>,
    leaves: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Transform {
    Identity,
    SignedSquare,
    Sigmoid(f64),
    Log1pExp,
    Exp,
}

/// One split of the compiled form. Trees are kept in LightGBM's node order (a parent before
/// its children); children are indices into the tree's row sets: inner nodes `0..inner`,
/// leaves `inner..inner + leaves`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Split {
    /// Bin column (numerical) or raw column (categorical).
    column: u32,
    /// Categorical: the split's `cat_ranges` index.
    cat_range: u32,
    /// Numerical: a row goes right when its (biased) bin is greater.
    key: i8,
    categorical: bool,
    children: [u16; 2],
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct CompiledTree {
    first_split: u32,
    inner: u16,
    first_leaf: u32,
    leaves: u16,
}

/// A numerical column: a model feature under one missing-value rule, and the sorted distinct
/// thresholds that the rule's splits use.
#[derive(Debug, Clone, PartialEq)]
struct BinColumn {
    feature: usize,
    kind: SlotKind,
    thresholds: Vec<f64>,
    /// `kind` as data, for a branch-free mapping: which values are missing (NaN, zero) and
    /// what they become.
    nan_missing: bool,
    zero_missing: bool,
    replacement: f64,
    /// The AVX2 binning's tables (see `bin_64_avx2`): `thresholds` in groups of 16 padded
    /// with +inf (one more group than full ones), and the last threshold of each group
    /// (padded with +inf to whole vectors of 4; empty for a single group).
    padded: Vec<f64>,
    fences: Vec<f64>,
}

impl BinColumn {
    fn new(feature: usize, kind: SlotKind) -> Self {
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
    fn build_search_tables(&mut self) {
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

/// 64-row words per block for large batches: a node's row set in a block is `[u64; 4]`.
/// Four words give the CPU independent work per node and per leaf and spread each node's
/// fixed costs. Batches of up to 64 rows use one word and skip empty row sets (few rows
/// reach most nodes).
const LARGE_WORDS: usize = 4;
const SMALL_BATCH: usize = 64;
/// Below this many rows, each row walks its path down each tree instead.
const WALK_BATCH: usize = 4;
/// Bins are u8 (0..=254: how many of the column's thresholds lie below the value; 255: NaN,
/// right of every split) stored with the top bit flipped, so that the signed byte compare of
/// SSE2/AVX2 orders them as unsigned. Columns with more thresholds are not compiled.
const MAX_THRESHOLDS: usize = 254;
const NAN_BIN: u8 = 255;

#[inline(always)]
fn biased(bin: u8) -> i8 {
    (bin ^ 0x80) as i8
}

/// How a bin column holds a model feature. LightGBM's missing-value rules depend on the
/// split (`missing_type`, `default_left`), so a feature gets one column per rule that its
/// splits use, with missing values replaced by a value that the plain test `x <= threshold`
/// sends the split's default way: every numerical split is then the same comparison of bins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SlotKind {
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
    fn exact_for(self, threshold: f64) -> bool {
        match self {
            SlotKind::NanLeft | SlotKind::ZeroLeft => !threshold.is_nan(),
            SlotKind::NanRight | SlotKind::ZeroRight | SlotKind::NanAsZero | SlotKind::Raw => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NativeModel {
    num_features: usize,
    bin_columns: Vec<BinColumn>,
    /// Model feature of each raw column (read by categorical splits).
    raw_columns: Vec<usize>,
    trees: Vec<CompiledTree>,
    splits: Vec<Split>,
    leaf_values: Vec<f64>,
    /// Categorical bitset words and each categorical split's (first word, word count).
    cat_words: Vec<u32>,
    cat_ranges: Vec<(u32, u32)>,
    transform: Transform,
    average_output: bool,
    /// Row sets of the largest tree (inner nodes + leaves): the per-call work space.
    max_sets: usize,
    /// The same trees with byte node ids, for 256-row blocks on AVX2; `None` when a tree has
    /// more than 256 nodes or a categorical split.
    byte_trees: Option<ByteTrees>,
}

/// Trees whose nodes are numbered breadth first (a parent before its children, siblings
/// next to each other) so that a node id fits a byte and a row's next node is
/// `left + (bin > key)`: 256 rows' current nodes then fit eight AVX2 registers.
#[derive(Debug, Clone, PartialEq, Default)]
struct ByteTrees {
    trees: Vec<ByteTree>,
    splits: Vec<ByteSplit>,
    /// Per tree, by node id: the leaf value (0.0 for inner nodes).
    values: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct ByteTree {
    first_split: u32,
    splits: u16,
    first_value: u32,
    nodes: u16,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct ByteSplit {
    column: u32,
    key: i8,
    id: u8,
    /// The left child's id; the right child is `left + 1`.
    left: u8,
}

/// Per-call work space: the rows of the call as bin and raw columns, 64 rows per block.
struct Blocks {
    /// 64-row words per block.
    words: usize,
    count: usize,
    rows: usize,
    /// `[block][bin column][row in block]`, biased
    bins: Vec<i8>,
    /// `[block][raw column][row in block]`
    raw: Vec<f64>,
    /// `[block][64 * words + 64]`: the rows' sums, then spares for the additions of empty
    /// row sets.
    sums: Vec<f64>,
}

impl NativeModel {
    pub fn from_text(text: &str, header: &ModelHeader) -> Result<Self, ModelError> {
        if header.num_class != 1 || header.num_tree_per_iteration != 1 {
            return Err(ModelError::Unsupported(format!(
                "{} classes",
                header.num_class
            )));
        }
        let transform = transform_of(header.objective.as_deref().unwrap_or(""))?;
        let mut trees = Vec::with_capacity(header.num_trees);
        let mut cat_words = Vec::new();
        for block in text.split("\nTree=").skip(1) {
            let block = block.split("\nend of trees").next().unwrap_or(block);
            trees.push(parse_tree(block, header.num_features, &mut cat_words)?);
        }
        if trees.len() != header.num_trees {
            return Err(ModelError::Format(format!(
                "found {} tree blocks, the header counted {}",
                trees.len(),
                header.num_trees
            )));
        }
        compile(
            header.num_features,
            &trees,
            cat_words,
            transform,
            header.average_output,
        )
    }

    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Bytes held by the compiled model.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .bin_columns
                .iter()
                .map(|c| {
                    std::mem::size_of::<BinColumn>()
                        + (c.thresholds.len() + c.padded.len() + c.fences.len()) * 8
                })
                .sum::<usize>()
            + self.raw_columns.len() * std::mem::size_of::<usize>()
            + self.trees.len() * std::mem::size_of::<CompiledTree>()
            + self.splits.len() * std::mem::size_of::<Split>()
            + self.leaf_values.len() * 8
            + self.cat_words.len() * 4
            + self.cat_ranges.len() * 8
            + self.byte_trees.as_ref().map_or(0, |b| {
                b.trees.len() * std::mem::size_of::<ByteTree>()
                    + b.splits.len() * std::mem::size_of::<ByteSplit>()
                    + b.values.len() * 8
            })
    }

    /// `n` deterministic rows (row-major, all model features) that exercise the model's
    /// decisions: every split threshold and its neighbouring doubles, the categories of every
    /// bitset and ids beside them, NaN, signed zeros and values LightGBM reads as zero.
    pub fn probe_rows(&self, n: usize) -> Vec<f64> {
        use rand::{Rng, SeedableRng};
        let mut features: Vec<usize> = self
            .bin_columns
            .iter()
            .map(|c| c.feature)
            .chain(self.raw_columns.iter().copied())
            .collect();
        features.sort_unstable();
        features.dedup();
        let mut candidates: Vec<Vec<f64>> =
            vec![vec![f64::NAN, 0.0, -0.0, 1e-36, -1e-36, 1.0, -1.0, 1e300]; features.len()];
        let at = |feature: usize| features.binary_search(&feature).unwrap_or(0);
        for column in &self.bin_columns {
            let values = &mut candidates[at(column.feature)];
            for &t in &column.thresholds {
                values.extend([t, t.next_up(), t.next_down()]);
            }
        }
        for split in self.splits.iter().filter(|s| s.categorical) {
            let values = &mut candidates[at(self.raw_columns[split.column as usize])];
            let (first, len) = self.cat_ranges[split.key as usize];
            for w in 0..len {
                let word = self.cat_words[(first + w) as usize];
                for bit in (0..32).filter(|b| (word >> b) & 1 == 1) {
                    let category = f64::from(w * 32 + bit);
                    values.extend([category, category + 1.0, category + 0.5]);
                }
            }
            values.extend([-1.0, -0.5, f64::from(len * 32), 1e10]);
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
        let mut rows = vec![0.0; n * self.num_features];
        for (r, row) in rows.chunks_exact_mut(self.num_features).enumerate() {
            for (values, &feature) in candidates.iter().zip(&features) {
                row[feature] = match r {
                    0 => f64::NAN,
                    1 => 0.0,
                    _ => values[rng.gen_range(0..values.len())],
                };
            }
        }
        rows
    }

    /// Standard prediction for each row of a row-major matrix (NaN = missing).
    pub fn predict(&self, rows: &[f64]) -> Vec<f64> {
        let n_rows = rows.len() / self.num_features.max(1);
        let blocks = self.blocks_of(rows, Self::words_for(n_rows));
        self.score(blocks)
    }

    /// The model feature of each bin column, for callers that bin rows themselves (with
    /// [`Self::bin`]) and score them with [`Self::predict_binned`]; `None` when the model has
    /// categorical splits, which read raw values.
    pub fn bin_features(&self) -> Option<Vec<usize>> {
        self.raw_columns
            .is_empty()
            .then(|| self.bin_columns.iter().map(|c| c.feature).collect())
    }

    /// The bin of value `x` (NaN = missing) of the model feature of bin column `column`:
    /// what [`Self::predict`] computes for it.
    pub fn bin(&self, column: usize, x: f64) -> u8 {
        let column = &self.bin_columns[column];
        let x = column.map(x);
        if x.is_nan() {
            NAN_BIN
        } else {
            column.thresholds.partition_point(|&t| t < x) as u8
        }
    }

    /// Scores `n_rows` rows given as bins: row-major, one byte per bin column (see
    /// [`Self::bin_features`]). Equal to [`Self::predict`] on the rows the bins came from.
    ///
    /// # Panics
    /// If `rows` does not hold `n_rows` rows of bins (a caller's bug).
    pub fn predict_binned(&self, rows: &[u8], n_rows: usize) -> Vec<f64> {
        let n_bins = self.bin_columns.len();
        assert_eq!(rows.len(), n_rows * n_bins, "binned rows of the wrong size");
        let words = Self::words_for(n_rows);
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
        self.score(Blocks {
            words,
            count,
            rows: n_rows,
            bins,
            raw: Vec::new(),
            sums: vec![0.0; count * (block_rows + 64)],
        })
    }

    fn words_for(n_rows: usize) -> usize {
        if n_rows <= SMALL_BATCH {
            1
        } else {
            LARGE_WORDS
        }
    }

    fn score(&self, mut blocks: Blocks) -> Vec<f64> {
        if blocks.rows < WALK_BATCH {
            return self
                .walk(&blocks)
                .into_iter()
                .map(|s| self.output(s))
                .collect();
        }
        if self.cat_ranges.is_empty() {
            self.score_blocks::<false>(&mut blocks);
        } else {
            self.score_blocks::<true>(&mut blocks);
        }
        (0..blocks.rows)
            .map(|r| {
                let block = 64 * blocks.words;
                self.output(blocks.sums[r / block * (block + 64) + r % block])
            })
            .collect()
    }

    /// Quantises the rows into the bins of the model's own thresholds (exact: a row goes
    /// right of a split iff its bin is above the split's key) and copies the raw columns.
    fn blocks_of(&self, rows: &[f64], words: usize) -> Blocks {
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
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("popcnt");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2 = false;
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
                if avx2 {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: the CPU has AVX2 and POPCNT (checked above).
                    #[allow(unsafe_code)]
                    unsafe {
                        bin_64_avx2(column, values, out, in_chunk)
                    };
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

    /// Adds every tree's leaf value to every row's sum, tree after tree (LightGBM's order,
    /// from 0.0). For each tree and each block of 64 rows, the block's row set flows from the
    /// root down: a split divides its row set with one comparison of 64 bins against its key,
    /// and each leaf adds its value to the rows that reach it.
    fn score_blocks<const CATEGORICAL: bool>(&self, blocks: &mut Blocks) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            if let (Some(byte_trees), LARGE_WORDS) = (&self.byte_trees, blocks.words) {
                // SAFETY: the CPU has AVX2 (checked just above).
                #[allow(unsafe_code)]
                unsafe {
                    self.score_byte_trees_avx2(byte_trees, blocks)
                };
                return;
            }
            // SAFETY: the CPU has AVX2 (checked just above).
            #[allow(unsafe_code)]
            unsafe {
                self.score_blocks_avx2::<CATEGORICAL>(blocks)
            };
            return;
        }
        if blocks.words == 1 {
            self.score_blocks_with::<CATEGORICAL, false, 1, true>(blocks)
        } else {
            self.score_blocks_with::<CATEGORICAL, false, LARGE_WORDS, false>(blocks)
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn score_blocks_avx2<const CATEGORICAL: bool>(&self, blocks: &mut Blocks) {
        if blocks.words == 1 {
            self.score_blocks_with::<CATEGORICAL, true, 1, true>(blocks)
        } else {
            self.score_blocks_with::<CATEGORICAL, true, LARGE_WORDS, false>(blocks)
        }
    }

    /// Scores 256-row blocks with the byte trees: each row's current node id is a byte, the
    /// block's 256 ids sit in eight registers, all starting at the root (0). A split moves the
    /// rows at its id to its left child, or to `left + 1` where their bin is above its key;
    /// splits come breadth first, so after the last one every row holds its leaf's id and
    /// the tree's value of that id is added to its sum (tree after tree, LightGBM's order).
    /// Every split costs the same 40 vector operations whatever rows reach it, and there is
    /// no per-leaf work: no branch depends on the data.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn score_byte_trees_avx2(&self, byte_trees: &ByteTrees, blocks: &mut Blocks) {
        use std::arch::x86_64::{
            __m256i, _mm256_blendv_epi8, _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_loadu_si256,
            _mm256_set1_epi8, _mm256_setzero_si256, _mm256_storeu_si256, _mm256_sub_epi8,
        };
        const BLOCK: usize = 64 * LARGE_WORDS;
        let n_bins = self.bin_columns.len();
        let mut ids = [0u8; BLOCK];
        for tree in &byte_trees.trees {
            let splits =
                &byte_trees.splits[tree.first_split as usize..][..usize::from(tree.splits)];
            let values = &byte_trees.values[tree.first_value as usize..][..usize::from(tree.nodes)];
            for block in 0..blocks.count {
                let bins = &blocks.bins[block * n_bins * BLOCK..][..n_bins * BLOCK];
                let mut nodes: [__m256i; BLOCK / 32] = [_mm256_setzero_si256(); BLOCK / 32];
                for split in splits {
                    let column: &[i8; BLOCK] = bins[split.column as usize * BLOCK..][..BLOCK]
                        .try_into()
                        .expect("a block's column");
                    let key = _mm256_set1_epi8(split.key);
                    let id = _mm256_set1_epi8(split.id as i8);
                    let left = _mm256_set1_epi8(split.left as i8);
                    for (k, nodes) in nodes.iter_mut().enumerate() {
                        // SAFETY: bytes 32k..32k+32 of the 256-byte column.
                        #[allow(unsafe_code)]
                        let bins =
                            unsafe { _mm256_loadu_si256(column.as_ptr().add(32 * k).cast()) };
                        // The compare is -1 where the row goes right: left - (-1) = left + 1.
                        let child = _mm256_sub_epi8(left, _mm256_cmpgt_epi8(bins, key));
                        *nodes = _mm256_blendv_epi8(*nodes, child, _mm256_cmpeq_epi8(*nodes, id));
                    }
                }
                for (k, nodes) in nodes.iter().enumerate() {
                    // SAFETY: bytes 32k..32k+32 of the 256-byte array.
                    #[allow(unsafe_code)]
                    unsafe {
                        _mm256_storeu_si256(ids.as_mut_ptr().add(32 * k).cast(), *nodes)
                    };
                }
                let in_block = (blocks.rows - block * BLOCK).min(BLOCK);
                let sums = &mut blocks.sums[block * (BLOCK + 64)..][..in_block];
                for (sum, &id) in sums.iter_mut().zip(&ids) {
                    *sum += values[usize::from(id)];
                }
            }
        }
    }

    /// `W` words per block; `SPARSE` skips splits and leaves that no row reaches (a
    /// branch that pays off only when most sets are empty, i.e. for small batches).
    #[inline(always)]
    fn score_blocks_with<
        const CATEGORICAL: bool,
        const AVX2: bool,
        const W: usize,
        const SPARSE: bool,
    >(
        &self,
        blocks: &mut Blocks,
    ) {
        let block_rows = 64 * W;
        let n_bins = self.bin_columns.len();
        let n_raw = self.raw_columns.len();
        let mut sets = vec![[0u64; W]; self.max_sets];
        for tree in &self.trees {
            let splits = &self.splits[tree.first_split as usize..][..usize::from(tree.inner)];
            let leaves = &self.leaf_values[tree.first_leaf as usize..][..usize::from(tree.leaves)];
            let inner = splits.len();
            for block in 0..blocks.count {
                let in_block = (blocks.rows - block * block_rows).min(block_rows);
                let live: [u64; W] = std::array::from_fn(|w| {
                    let rows = in_block.saturating_sub(64 * w).min(64);
                    if rows == 0 {
                        0
                    } else {
                        u64::MAX >> (64 - rows)
                    }
                });
                let bins = &blocks.bins[block * n_bins * block_rows..][..n_bins * block_rows];
                let sums = &mut blocks.sums[block * (block_rows + 64)..][..block_rows + 64];
                sets[0] = live;
                for (i, split) in splits.iter().enumerate() {
                    let rows = sets[i];
                    if SPARSE && rows == [0; W] {
                        sets[usize::from(split.children[0])] = [0; W];
                        sets[usize::from(split.children[1])] = [0; W];
                        continue;
                    }
                    let greater = if CATEGORICAL && split.categorical {
                        let raw = &blocks.raw
                            [(block * n_raw + split.column as usize) * block_rows..][..block_rows];
                        self.categorical_right(split.cat_range, raw, rows)
                    } else {
                        let column = &bins[split.column as usize * block_rows..][..block_rows];
                        greater_mask::<AVX2, W>(column, split.key)
                    };
                    let right: [u64; W] = std::array::from_fn(|w| greater[w] & rows[w]);
                    sets[usize::from(split.children[0])] =
                        std::array::from_fn(|w| rows[w] & !right[w]);
                    sets[usize::from(split.children[1])] = right;
                }
                for (l, (&value, &rows)) in leaves
                    .iter()
                    .zip(&sets[inner..inner + leaves.len()])
                    .enumerate()
                {
                    if SPARSE && rows == [0; W] {
                        continue;
                    }
                    add_to_rows(sums, rows, value, l);
                }
            }
        }
    }

    /// Rows of `rows` that LightGBM's `CategoricalDecision` sends right: NaN, negative
    /// categories and categories outside the split's bitset.
    #[cold]
    fn categorical_right<const W: usize>(
        &self,
        range: u32,
        raw: &[f64],
        rows: [u64; W],
    ) -> [u64; W] {
        let (first, len) = self.cat_ranges[range as usize];
        let mut right = [0u64; W];
        for (w, (right, mut left_over)) in right.iter_mut().zip(rows).enumerate() {
            while left_over != 0 {
                let r = left_over.trailing_zeros() as usize;
                left_over &= left_over - 1;
                *right |= u64::from(!self.category_left(first, len, raw[64 * w + r])) << r;
            }
        }
        right
    }

    /// LightGBM's `CategoricalDecision` on a (zero-mapped) value, for the bitset of `len`
    /// words at `first`.
    fn category_left(&self, first: u32, len: u32, x: f64) -> bool {
        // C++ `static_cast<int>` truncates toward zero; out-of-range values saturate here and
        // fall outside every bitset, which also sends them right.
        let category = x as i32;
        let word = category as u32 / 32;
        !x.is_nan()
            && category >= 0
            && word < len
            && (self.cat_words[(first + word) as usize] >> (category % 32)) & 1 == 1
    }

    /// Scores a few rows by walking each one down each tree: below [`WALK_BATCH`] rows the
    /// row sets' fixed work per node costs more than a path of ~10 dependent steps.
    fn walk(&self, blocks: &Blocks) -> Vec<f64> {
        let mut sums = vec![0.0f64; blocks.rows];
        // One block of one word: column c of row r is at `c * 64 + r`.
        for tree in &self.trees {
            let splits = &self.splits[tree.first_split as usize..][..usize::from(tree.inner)];
            let leaves = &self.leaf_values[tree.first_leaf as usize..][..usize::from(tree.leaves)];
            for (r, sum) in sums.iter_mut().enumerate() {
                let mut at = 0usize;
                while at < splits.len() {
                    let split = &splits[at];
                    let right = if split.categorical {
                        let (first, len) = self.cat_ranges[split.cat_range as usize];
                        let x = blocks.raw[split.column as usize * 64 + r];
                        !self.category_left(first, len, x)
                    } else {
                        blocks.bins[split.column as usize * 64 + r] > split.key
                    };
                    at = usize::from(split.children[usize::from(right)]);
                }
                *sum += leaves[at - splits.len()];
            }
        }
        sums
    }

    fn output(&self, sum: f64) -> f64 {
        let sum = if self.average_output {
            sum / self.trees.len() as f64
        } else {
            sum
        };
        match self.transform {
            Transform::Identity => sum,
            Transform::SignedSquare => sum.signum() * sum * sum,
            Transform::Sigmoid(s) => 1.0 / (1.0 + (-s * sum).exp()),
            Transform::Log1pExp => sum.exp().ln_1p(),
            Transform::Exp => sum.exp(),
        }
    }
}

/// LightGBM's dense-row reader keeps only |x| > kZeroThreshold or NaN; everything else
/// reaches the trees as an exact 0.0.
#[inline(always)]
fn dense(x: f64) -> f64 {
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

/// [`bin_64`] without searches: the bin of `x` is 16 * (the number of groups of 16 thresholds
/// whose last one is below `x`) + (the number of that next group's thresholds below `x`),
/// each count one or a few 4-wide compares and a popcount. No step waits on a compare's
/// outcome but the group's load, and a column's loops take the same turns for every value.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn bin_64_avx2(column: &BinColumn, values: &[f64; 64], out: &mut [i8; 64], rows: usize) {
    use std::arch::x86_64::{
        _mm256_cmp_pd, _mm256_loadu_pd, _mm256_movemask_pd, _mm256_set1_pd, _CMP_LT_OQ,
    };
    let n = column.thresholds.len();
    // A single group compares only its real thresholds; a chosen group all 16.
    let group_vectors = if column.fences.is_empty() {
        n.div_ceil(4)
    } else {
        4
    };
    let fences: &[f64] = &column.fences;
    for (o, &x) in out.iter_mut().zip(values).take(rows) {
        let xv = _mm256_set1_pd(x);
        let mut below = 0u32;
        for (q, four) in fences.chunks_exact(4).enumerate() {
            // SAFETY: `four` holds 4 f64.
            #[allow(unsafe_code)]
            let fence = unsafe { _mm256_loadu_pd(four.as_ptr()) };
            below |= (_mm256_movemask_pd(_mm256_cmp_pd::<_CMP_LT_OQ>(fence, xv)) as u32) << (4 * q);
        }
        // At most the last group: its last entry is padding (+inf), never below `x`.
        let group = &column.padded[16 * below.count_ones() as usize..][..16];
        let mut less = 0u32;
        for q in 0..group_vectors {
            // SAFETY: q < 4, so 4 f64 from 4q lie inside the group of 16.
            #[allow(unsafe_code)]
            let four = unsafe { _mm256_loadu_pd(group.as_ptr().add(4 * q)) };
            less |= (_mm256_movemask_pd(_mm256_cmp_pd::<_CMP_LT_OQ>(four, xv)) as u32) << (4 * q);
        }
        let bin = 16 * below.count_ones() + less.count_ones();
        *o = biased(if x.is_nan() { NAN_BIN } else { bin as u8 });
    }
}

/// Bit r set iff `column[r] > key` (biased bins compare as signed bytes).
#[inline(always)]
fn greater_mask<const AVX2: bool, const W: usize>(column: &[i8], key: i8) -> [u64; W] {
    std::array::from_fn(|w| {
        let column: &[i8; 64] = column[64 * w..64 * (w + 1)].try_into().expect("64 bins");
        greater_mask_64::<AVX2>(column, key)
    })
}

#[inline(always)]
fn greater_mask_64<const AVX2: bool>(column: &[i8; 64], key: i8) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if AVX2 {
            // SAFETY: `AVX2` is only set inside `score_blocks_avx2`, which runs after the CPU
            // was checked for AVX2.
            #[allow(unsafe_code)]
            return unsafe { greater_mask_avx2(column, key) };
        }
        use std::arch::x86_64::{
            _mm_cmpgt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        // SAFETY: SSE2 is part of x86_64; each chunk is 16 bytes, one unaligned load.
        #[allow(unsafe_code)]
        unsafe {
            let key = _mm_set1_epi8(key);
            let mut mask = 0u64;
            for (q, sixteen) in column.chunks_exact(16).enumerate() {
                let bins = _mm_loadu_si128(sixteen.as_ptr().cast());
                let greater = _mm_movemask_epi8(_mm_cmpgt_epi8(bins, key)) as u16;
                mask |= u64::from(greater) << (16 * q);
            }
            mask
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut mask = 0u64;
        for (r, &bin) in column.iter().enumerate() {
            mask |= u64::from(bin > key) << r;
        }
        mask
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn greater_mask_avx2(column: &[i8; 64], key: i8) -> u64 {
    use std::arch::x86_64::{
        _mm256_cmpgt_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
    };
    let key = _mm256_set1_epi8(key);
    // SAFETY: two unaligned 32-byte loads inside the 64-byte column.
    #[allow(unsafe_code)]
    let (low, high) = unsafe {
        (
            _mm256_loadu_si256(column.as_ptr().cast()),
            _mm256_loadu_si256(column.as_ptr().add(32).cast()),
        )
    };
    let low = _mm256_movemask_epi8(_mm256_cmpgt_epi8(low, key)) as u32;
    let high = _mm256_movemask_epi8(_mm256_cmpgt_epi8(high, key)) as u32;
    u64::from(low) | (u64::from(high) << 32)
}

/// Adds `value` to the sum of each row in `rows`. The first two rows of each word are taken
/// without a branch (most leaves hold at most two rows of a word): an empty word's
/// `trailing_zeros` is 64, which lands on a spare sum chosen by the leaf's number, so that
/// the additions of empty sets do not queue behind each other on one memory slot.
#[inline(always)]
fn add_to_rows<const W: usize>(sums: &mut [f64], rows: [u64; W], value: f64, leaf: usize) {
    let spare = 64 * W + leaf % 64;
    for (w, mut rows) in rows.into_iter().enumerate() {
        let at = |rows: u64| {
            let r = rows.trailing_zeros() as usize;
            if r == 64 {
                spare
            } else {
                64 * w + r
            }
        };
        sums[at(rows)] += value;
        rows &= rows.wrapping_sub(1);
        sums[at(rows)] += value;
        rows &= rows.wrapping_sub(1);
        while rows != 0 {
            sums[64 * w + rows.trailing_zeros() as usize] += value;
            rows &= rows - 1;
        }
    }
}

/// Compiles the parsed trees: one bin column per (feature, missing-value rule) over the
/// distinct thresholds of its splits, one raw column per categorical feature, and per tree
/// its splits (bin keys, children as row-set indices) and leaf values.
fn compile(
    num_features: usize,
    trees: &[Tree],
    cat_words: Vec<u32>,
    transform: Transform,
    average_output: bool,
) -> Result<NativeModel, ModelError> {
    use std::collections::HashMap;
    let mut bin_index: HashMap<(usize, SlotKind), usize> = HashMap::new();
    let mut bin_columns: Vec<BinColumn> = Vec::new();
    let mut raw_index: HashMap<usize, usize> = HashMap::new();
    let mut raw_columns = Vec::new();
    for node in trees.iter().flat_map(|t| &t.nodes) {
        let kind = slot_kind(node);
        if kind == SlotKind::Raw {
            raw_index.entry(node.feature).or_insert_with(|| {
                raw_columns.push(node.feature);
                raw_columns.len() - 1
            });
            continue;
        }
        if !kind.exact_for(node.threshold) {
            return Err(ModelError::Unsupported(format!(
                "threshold {} with missing-value rule {kind:?}",
                node.threshold
            )));
        }
        let at = *bin_index.entry((node.feature, kind)).or_insert_with(|| {
            bin_columns.push(BinColumn::new(node.feature, kind));
            bin_columns.len() - 1
        });
        if node.threshold.is_nan() {
            return Err(ModelError::Unsupported("a NaN threshold".into()));
        }
        bin_columns[at].thresholds.push(node.threshold);
    }
    // In feature order, so that reading a row into the columns walks it front to back.
    bin_columns.sort_by_key(|c| c.feature);
    for (at, column) in bin_columns.iter().enumerate() {
        bin_index.insert((column.feature, column.kind), at);
    }
    for column in &mut bin_columns {
        column.thresholds.sort_by(f64::total_cmp);
        column.thresholds.dedup();
        if column.thresholds.len() > MAX_THRESHOLDS {
            return Err(ModelError::Unsupported(format!(
                "feature {} has {} distinct thresholds",
                column.feature,
                column.thresholds.len()
            )));
        }
        column.build_search_tables();
    }
    let mut compiled = Vec::with_capacity(trees.len());
    let mut splits = Vec::new();
    let mut leaf_values = Vec::new();
    let mut cat_ranges = Vec::new();
    for (t, tree) in trees.iter().enumerate() {
        let inner = tree.nodes.len();
        if inner + tree.leaves.len() > u16::MAX as usize {
            return Err(ModelError::Unsupported(format!("tree {t} is too large")));
        }
        compiled.push(CompiledTree {
            first_split: splits.len() as u32,
            inner: inner as u16,
            first_leaf: leaf_values.len() as u32,
            leaves: tree.leaves.len() as u16,
        });
        leaf_values.extend_from_slice(&tree.leaves);
        for (i, node) in tree.nodes.iter().enumerate() {
            let child = |c: i32| -> Result<u16, ModelError> {
                if c < 0 {
                    Ok((inner + !c as usize) as u16)
                } else if c as usize > i {
                    Ok(c as u16)
                } else {
                    // Row sets flow in node order; LightGBM numbers children after parents.
                    Err(ModelError::Unsupported(format!(
                        "tree {t}: node {i} has an earlier child {c}"
                    )))
                }
            };
            let children = [child(node.left)?, child(node.right)?];
            let kind = slot_kind(node);
            splits.push(if kind == SlotKind::Raw {
                cat_ranges.push((node.cat_start as u32, node.cat_len as u32));
                Split {
                    column: raw_index[&node.feature] as u32,
                    cat_range: (cat_ranges.len() - 1) as u32,
                    key: 0,
                    categorical: true,
                    children,
                }
            } else {
                let at = bin_index[&(node.feature, kind)];
                // Index of the threshold: `x <= t_k` iff bin <= k.
                let key = bin_columns[at]
                    .thresholds
                    .partition_point(|&v| v < node.threshold) as u8;
                Split {
                    column: at as u32,
                    cat_range: 0,
                    key: biased(key),
                    categorical: false,
                    children,
                }
            });
        }
    }
    let max_sets = compiled
        .iter()
        .map(|t| usize::from(t.inner) + usize::from(t.leaves))
        .max()
        .unwrap_or(0)
        .max(1);
    let byte_trees = byte_trees(&compiled, &splits, &leaf_values);
    Ok(NativeModel {
        byte_trees,
        max_sets,
        num_features,
        bin_columns,
        raw_columns,
        trees: compiled,
        splits,
        leaf_values,
        cat_words,
        cat_ranges,
        transform,
        average_output,
    })
}

/// The trees renumbered breadth first with byte ids (see [`ByteTrees`]), or `None` when a
/// tree has more than 256 nodes or a categorical split.
fn byte_trees(trees: &[CompiledTree], splits: &[Split], leaf_values: &[f64]) -> Option<ByteTrees> {
    let mut out = ByteTrees::default();
    let mut queue = std::collections::VecDeque::new();
    for tree in trees {
        let inner = usize::from(tree.inner);
        let nodes = inner + usize::from(tree.leaves);
        let tree_splits = &splits[tree.first_split as usize..][..inner];
        if nodes > 256 || tree_splits.iter().any(|s| s.categorical) {
            return None;
        }
        let leaves = &leaf_values[tree.first_leaf as usize..][..usize::from(tree.leaves)];
        let (first_split, first_value) = (out.splits.len(), out.values.len());
        out.values.resize(first_value + nodes, 0.0);
        // (row-set index, byte id), from the root.
        queue.push_back((0usize, 0u8));
        let mut next_id = 1usize;
        while let Some((set, id)) = queue.pop_front() {
            if set >= inner {
                out.values[first_value + usize::from(id)] = leaves[set - inner];
                continue;
            }
            let split = &tree_splits[set];
            // At most 255 after the last pair: a binary tree of `nodes` nodes has
            // (nodes - 1) / 2 splits.
            let left = next_id as u8;
            next_id += 2;
            out.splits.push(ByteSplit {
                column: split.column,
                key: split.key,
                id,
                left,
            });
            queue.push_back((usize::from(split.children[0]), left));
            queue.push_back((usize::from(split.children[1]), left + 1));
        }
        out.trees.push(ByteTree {
            first_split: first_split as u32,
            splits: (out.splits.len() - first_split) as u16,
            first_value: first_value as u32,
            nodes: nodes as u16,
        });
    }
    Some(out)
}

fn slot_kind(node: &Node) -> SlotKind {
    let missing = (node.decision >> 2) & 3;
    let default_left = node.decision & DEFAULT_LEFT_MASK != 0;
    if node.decision & CATEGORICAL_MASK != 0 {
        SlotKind::Raw
    } else if missing == MISSING_ZERO {
        if default_left {
            SlotKind::ZeroLeft
        } else {
            SlotKind::ZeroRight
        }
    } else if missing == MISSING_NAN {
        if default_left {
            SlotKind::NanLeft
        } else {
            SlotKind::NanRight
        }
    } else {
        SlotKind::NanAsZero
    }
}

fn transform_of(objective: &str) -> Result<Transform, ModelError> {
    let mut parts = objective.split_whitespace();
    let name = parts.next().unwrap_or("");
    let params: Vec<&str> = parts.collect();
    Ok(match name {
        "lambdarank" | "rank_xendcg" => Transform::Identity,
        "regression" | "regression_l1" | "huber" | "fair" | "quantile" | "mape" => {
            if params.contains(&"sqrt") {
                Transform::SignedSquare
            } else {
                Transform::Identity
            }
        }
        "binary" => {
            let sigmoid = params
                .iter()
                .find_map(|p| p.strip_prefix("sigmoid:"))
                .map(|v| {
                    v.parse::<f64>()
                        .map_err(|_| ModelError::Format(format!("objective `{objective}`")))
                })
                .transpose()?
                .unwrap_or(1.0);
            Transform::Sigmoid(sigmoid)
        }
        "cross_entropy" => Transform::Sigmoid(1.0),
        "cross_entropy_lambda" => Transform::Log1pExp,
        "poisson" | "gamma" | "tweedie" => Transform::Exp,
        other => {
            return Err(ModelError::Unsupported(format!(
                "objective `{other}` has no exact native output transform"
            )))
        }
    })
}

fn parse_tree(
    block: &str,
    num_features: usize,
    cat_words: &mut Vec<u32>,
) -> Result<Tree, ModelError> {
    let field = |key: &str| -> Option<&str> {
        block
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    };
    let err = |what: String| {
        ModelError::Format(format!(
            "tree {}: {what}",
            block.lines().next().unwrap_or("?")
        ))
    };
    fn list<T: std::str::FromStr>(value: Option<&str>) -> Option<Vec<T>> {
        value?.split_whitespace().map(|v| v.parse().ok()).collect()
    }
    if field("is_linear").is_some_and(|v| v.trim() != "0") {
        return Err(ModelError::Unsupported("linear trees".into()));
    }
    let num_leaves: usize = field("num_leaves")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| err("no num_leaves".into()))?;
    let leaves: Vec<f64> = list(field("leaf_value")).ok_or_else(|| err("bad leaf_value".into()))?;
    if leaves.len() != num_leaves || num_leaves == 0 {
        return Err(err(format!(
            "{} leaf values for {num_leaves} leaves",
            leaves.len()
        )));
    }
    if num_leaves == 1 {
        return Ok(Tree {
            nodes: Vec::new(),
            leaves,
        });
    }
    let inner = num_leaves - 1;
    let features: Vec<usize> =
        list(field("split_feature")).ok_or_else(|| err("bad split_feature".into()))?;
    let thresholds: Vec<f64> =
        list(field("threshold")).ok_or_else(|| err("bad threshold".into()))?;
    let decisions: Vec<u8> =
        list(field("decision_type")).ok_or_else(|| err("bad decision_type".into()))?;
    let lefts: Vec<i32> = list(field("left_child")).ok_or_else(|| err("bad left_child".into()))?;
    let rights: Vec<i32> =
        list(field("right_child")).ok_or_else(|| err("bad right_child".into()))?;
    if [
        features.len(),
        thresholds.len(),
        decisions.len(),
        lefts.len(),
        rights.len(),
    ]
    .iter()
    .any(|&n| n != inner)
    {
        return Err(err(format!("node arrays are not all {inner} long")));
    }
    let num_cat: usize = field("num_cat")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let (boundaries, words): (Vec<usize>, Vec<u32>) = if num_cat > 0 {
        (
            list(field("cat_boundaries")).ok_or_else(|| err("bad cat_boundaries".into()))?,
            list(field("cat_threshold")).ok_or_else(|| err("bad cat_threshold".into()))?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    if num_cat > 0
        && (boundaries.len() != num_cat + 1
            || boundaries.first() != Some(&0)
            || boundaries.windows(2).any(|w| w[0] > w[1])
            || boundaries.last() != Some(&words.len()))
    {
        return Err(err("cat_boundaries do not match cat_threshold".into()));
    }
    let base = cat_words.len();
    cat_words.extend_from_slice(&words);
    let child_ok = |c: i32| {
        if c >= 0 {
            (c as usize) < inner
        } else {
            ((!c) as usize) < num_leaves
        }
    };
    // A tree: the root is nobody's child, every other node and every leaf exactly one node's.
    // (LightGBM loads any indices; a cycle or a shared subtree would hang or blow up `compile`.)
    let mut node_refs = vec![0u32; inner];
    let mut leaf_refs = vec![0u32; num_leaves];
    for &c in lefts.iter().chain(&rights) {
        if c >= 0 {
            if let Some(r) = node_refs.get_mut(c as usize) {
                *r += 1;
            }
        } else if let Some(r) = leaf_refs.get_mut(!c as usize) {
            *r += 1;
        }
    }
    if node_refs[0] != 0
        || node_refs[1..].iter().any(|&r| r != 1)
        || leaf_refs.iter().any(|&r| r != 1)
    {
        return Err(err("child indices do not form a tree".into()));
    }
    let mut nodes = Vec::with_capacity(inner);
    for i in 0..inner {
        if features[i] >= num_features || !child_ok(lefts[i]) || !child_ok(rights[i]) {
            return Err(err(format!(
                "node {i} points outside the tree or the features"
            )));
        }
        let (cat_start, cat_len) = if decisions[i] & CATEGORICAL_MASK != 0 {
            let t = thresholds[i] as usize;
            if t + 1 >= boundaries.len() {
                return Err(err(format!(
                    "node {i}: categorical split {t} has no bitset"
                )));
            }
            (base + boundaries[t], boundaries[t + 1] - boundaries[t])
        } else {
            (0, 0)
        };
        nodes.push(Node {
            feature: features[i],
            threshold: thresholds[i],
            decision: decisions[i],
            left: lefts[i],
            right: rights[i],
            cat_start,
            cat_len,
        });
    }
    Ok(Tree { nodes, leaves })
}

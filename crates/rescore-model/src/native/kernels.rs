//! The scoring kernels over a call's [`Blocks`]: a walk per row below 4 rows, row sets
//! flowing down each tree (one word of 64 rows, or 256-row blocks), and on AVX2 the byte
//! node ids of `simd` for 256-row blocks (ADR 0003, part 2). Every kernel adds the trees'
//! leaf values in LightGBM's tree order from 0.0.

use super::bin::Blocks;
use super::simd::{Avx2, Baseline, Compare};
use super::NativeModel;

/// 64-row words per block for large batches: a node's row set in a block is `[u64; 4]`.
/// Four words give the CPU independent work per node and per leaf and spread each node's
/// fixed costs. Batches of up to 64 rows use one word and skip empty row sets (few rows
/// reach most nodes).
pub(super) const LARGE_WORDS: usize = 4;
const SMALL_BATCH: usize = 64;
/// Below this many rows, each row walks its path down each tree instead.
const WALK_BATCH: usize = 4;

/// 64-row words per block for a call of `n_rows` rows.
pub(super) fn words_for(n_rows: usize) -> usize {
    if n_rows <= SMALL_BATCH {
        1
    } else {
        LARGE_WORDS
    }
}

impl NativeModel {
    /// Every row's prediction: the walk below [`WALK_BATCH`] rows, else the block kernels.
    pub(super) fn score(&self, mut blocks: Blocks) -> Vec<f64> {
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

    /// Adds every tree's leaf value to every row's sum, tree after tree (LightGBM's order,
    /// from 0.0). For each tree and each block of 64 rows, the block's row set flows from the
    /// root down: a split divides its row set with one comparison of 64 bins against its key,
    /// and each leaf adds its value to the rows that reach it.
    fn score_blocks<const CATEGORICAL: bool>(&self, blocks: &mut Blocks) {
        if let Some(avx2) = Avx2::detect() {
            if let (Some(byte_trees), LARGE_WORDS) = (&self.byte_trees, blocks.words) {
                avx2.score_byte_trees(byte_trees, self.bin_columns.len(), blocks);
            } else {
                avx2.score_row_sets::<CATEGORICAL>(self, blocks);
            }
            return;
        }
        if blocks.words == 1 {
            self.score_blocks_with::<CATEGORICAL, Baseline, 1, true>(Baseline, blocks)
        } else {
            self.score_blocks_with::<CATEGORICAL, Baseline, LARGE_WORDS, false>(Baseline, blocks)
        }
    }

    /// The row-set kernel with the byte compare of `isa`, `W` words per block; `SPARSE` skips
    /// splits and leaves that no row reaches (a
    /// branch that pays off only when most sets are empty, i.e. for small batches).
    #[inline(always)]
    pub(super) fn score_blocks_with<
        const CATEGORICAL: bool,
        I: Compare,
        const W: usize,
        const SPARSE: bool,
    >(
        &self,
        isa: I,
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
                        greater_mask::<I, W>(isa, column, split.key)
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
    pub(super) fn category_left(&self, first: u32, len: u32, x: f64) -> bool {
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
}

/// Bit r set iff `column[r] > key` (biased bins compare as signed bytes).
#[inline(always)]
fn greater_mask<I: Compare, const W: usize>(isa: I, column: &[i8], key: i8) -> [u64; W] {
    std::array::from_fn(|w| {
        let column: &[i8; 64] = column[64 * w..64 * (w + 1)].try_into().expect("64 bins");
        isa.greater_mask_64(column, key)
    })
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

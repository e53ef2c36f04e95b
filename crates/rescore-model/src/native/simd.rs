//! Every CPU-specific instruction of the native evaluator, behind a safe API. [`Avx2`] is a
//! proof that the CPU has AVX2 and POPCNT (only [`Avx2::detect`] makes one), so its safe
//! methods may run AVX2 code; [`Baseline`] is SSE2 (part of x86_64) or a portable loop. The
//! evaluator's `unsafe` blocks are all in this file, each with its SAFETY reasoning.

use super::bin::{biased, BinColumn, Blocks, NAN_BIN};
use super::compile::ByteTrees;
use super::kernels::LARGE_WORDS;
use super::NativeModel;

/// The byte compare of the row-set kernels.
pub(super) trait Compare: Copy {
    /// Bit r set iff `column[r] > key` (biased bins compare as signed bytes).
    fn greater_mask_64(self, column: &[i8; 64], key: i8) -> u64;
}

/// The compare every CPU runs: SSE2 on x86_64, a portable loop elsewhere.
#[derive(Clone, Copy)]
pub(super) struct Baseline;

impl Compare for Baseline {
    #[inline(always)]
    fn greater_mask_64(self, column: &[i8; 64], key: i8) -> u64 {
        #[cfg(target_arch = "x86_64")]
        {
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
}

#[cfg(target_arch = "x86_64")]
type Detected = ();
/// No value: off x86_64 an [`Avx2`] cannot exist.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy)]
enum Detected {}

/// Proof that the CPU has AVX2 and POPCNT.
#[derive(Clone, Copy)]
pub(super) struct Avx2(Detected);

impl Avx2 {
    pub(super) fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            return Some(Avx2(()));
        }
        None
    }

    /// The biased bins of the first `rows` of `values` (mapped) in `column`, counted rather
    /// than searched (see `bin_64_avx2`); equal to `bin::bin_64`.
    pub(super) fn bin_64(
        self,
        column: &BinColumn,
        values: &[f64; 64],
        out: &mut [i8; 64],
        rows: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self` proves the CPU has AVX2 and POPCNT.
        #[allow(unsafe_code)]
        unsafe {
            bin_64_avx2(column, values, out, rows)
        };
        #[cfg(not(target_arch = "x86_64"))]
        match self.0 {}
    }

    /// The row-set kernel compiled for AVX2 (its byte compares are [`Avx2`]'s).
    pub(super) fn score_row_sets<const CATEGORICAL: bool>(
        self,
        model: &NativeModel,
        blocks: &mut Blocks,
    ) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self` proves the CPU has AVX2.
        #[allow(unsafe_code)]
        unsafe {
            row_sets_avx2::<CATEGORICAL>(self, model, blocks)
        };
        #[cfg(not(target_arch = "x86_64"))]
        match self.0 {}
    }

    /// The byte-node-id kernel (`score_byte_trees_avx2`) over blocks of 256 rows.
    pub(super) fn score_byte_trees(
        self,
        byte_trees: &ByteTrees,
        n_bins: usize,
        blocks: &mut Blocks,
    ) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self` proves the CPU has AVX2.
        #[allow(unsafe_code)]
        unsafe {
            score_byte_trees_avx2(byte_trees, n_bins, blocks)
        };
        #[cfg(not(target_arch = "x86_64"))]
        match self.0 {}
    }
}

impl Compare for Avx2 {
    #[inline(always)]
    fn greater_mask_64(self, column: &[i8; 64], key: i8) -> u64 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self` proves the CPU has AVX2.
        #[allow(unsafe_code)]
        return unsafe { greater_mask_avx2(column, key) };
        #[cfg(not(target_arch = "x86_64"))]
        match self.0 {}
    }
}

/// The generic row-set kernel inlined into an AVX2 function, so that its compares compile
/// to AVX2 instructions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn row_sets_avx2<const CATEGORICAL: bool>(avx2: Avx2, model: &NativeModel, blocks: &mut Blocks) {
    if blocks.words == 1 {
        model.score_blocks_with::<CATEGORICAL, Avx2, 1, true>(avx2, blocks)
    } else {
        model.score_blocks_with::<CATEGORICAL, Avx2, LARGE_WORDS, false>(avx2, blocks)
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
fn score_byte_trees_avx2(byte_trees: &ByteTrees, n_bins: usize, blocks: &mut Blocks) {
    use std::arch::x86_64::{
        __m256i, _mm256_blendv_epi8, _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_loadu_si256,
        _mm256_set1_epi8, _mm256_setzero_si256, _mm256_storeu_si256, _mm256_sub_epi8,
    };
    const BLOCK: usize = 64 * LARGE_WORDS;
    let mut ids = [0u8; BLOCK];
    for tree in &byte_trees.trees {
        let splits = &byte_trees.splits[tree.first_split as usize..][..usize::from(tree.splits)];
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
                    let bins = unsafe { _mm256_loadu_si256(column.as_ptr().add(32 * k).cast()) };
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

/// `bin::bin_64` without searches: the bin of `x` is 16 * (the number of groups of 16 thresholds
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

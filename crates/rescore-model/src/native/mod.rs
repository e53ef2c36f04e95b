//! A pure-Rust evaluator of LightGBM text models that reproduces LightGBM's prediction
//! exactly (the same decisions, the same summation order, the same output transforms).
//! Models it cannot score exactly (linear trees, several classes, unknown objectives, more
//! than 254 thresholds on one feature) are refused with `ModelError::Unsupported`, so that
//! they stay on the `lightgbm3` engine. The technique (exact bins from the model's own
//! thresholds; byte node ids advanced by vector compares for 256-row blocks, row sets flowing
//! down each tree for small batches) is described in docs/adr/0003.
//!
//! One concern per module: `parse` reads the tree blocks of model.txt, `compile` turns them
//! into bin columns, splits and byte trees, `bin` quantises rows into a call's blocks,
//! `kernels` scores the blocks, `transform` applies the objective's output transform, `probe`
//! builds the self-check's rows, and `simd` holds every CPU-specific instruction behind a
//! safe API.

mod bin;
mod compile;
mod kernels;
mod parse;
mod probe;
mod simd;
#[cfg(test)]
pub(crate) mod testing;
mod transform;

pub(crate) use parse::check_complete;

use crate::{ModelError, ModelHeader};
use bin::{BinColumn, Blocks};
use compile::{ByteSplit, ByteTree, ByteTrees, CompiledTree, Split};
use transform::Transform;

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

impl NativeModel {
    pub fn from_text(text: &str, header: &ModelHeader) -> Result<Self, ModelError> {
        if header.num_class != 1 || header.num_tree_per_iteration != 1 {
            return Err(ModelError::Unsupported(format!(
                "{} classes",
                header.num_class
            )));
        }
        let transform = transform::transform_of(header.objective.as_deref().unwrap_or(""))?;
        let (trees, cat_words) = parse::parse_trees(text, header)?;
        compile::compile(
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

    /// Standard prediction for each row of a row-major matrix (NaN = missing).
    pub fn predict(&self, rows: &[f64]) -> Vec<f64> {
        let n_rows = rows.len() / self.num_features.max(1);
        let blocks = self.blocks_of(rows, kernels::words_for(n_rows));
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
        self.bin_columns[column].bin(x)
    }

    /// Scores `n_rows` rows given as bins: row-major, one byte per bin column (see
    /// [`Self::bin_features`]). Equal to [`Self::predict`] on the rows the bins came from.
    ///
    /// # Panics
    /// If `rows` does not hold `n_rows` rows of bins (a caller's bug).
    pub fn predict_binned(&self, rows: &[u8], n_rows: usize) -> Vec<f64> {
        let n_bins = self.bin_columns.len();
        assert_eq!(rows.len(), n_rows * n_bins, "binned rows of the wrong size");
        self.score(Blocks::of_binned(
            rows,
            n_rows,
            n_bins,
            kernels::words_for(n_rows),
        ))
    }
}

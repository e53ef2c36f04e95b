//! The compiled form: bin columns over the models' thresholds, each tree's splits in
//! LightGBM's node order (keys are bin indices, children are row-set indices), and the same
//! trees renumbered breadth first with byte node ids for the 256-row kernel.

use super::bin::{biased, BinColumn, SlotKind, MAX_THRESHOLDS};
use super::parse::{Node, Tree, CATEGORICAL_MASK, DEFAULT_LEFT_MASK, MISSING_NAN, MISSING_ZERO};
use super::transform::Transform;
use super::NativeModel;
use crate::ModelError;

/// One split of the compiled form. Trees are kept in LightGBM's node order (a parent before
/// its children); children are indices into the tree's row sets: inner nodes `0..inner`,
/// leaves `inner..inner + leaves`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Split {
    /// Bin column (numerical) or raw column (categorical).
    pub(super) column: u32,
    /// Categorical: the split's `cat_ranges` index.
    pub(super) cat_range: u32,
    /// Numerical: a row goes right when its (biased) bin is greater.
    pub(super) key: i8,
    pub(super) categorical: bool,
    pub(super) children: [u16; 2],
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct CompiledTree {
    pub(super) first_split: u32,
    pub(super) inner: u16,
    pub(super) first_leaf: u32,
    pub(super) leaves: u16,
}

/// Trees whose nodes are numbered breadth first (a parent before its children, siblings
/// next to each other) so that a node id fits a byte and a row's next node is
/// `left + (bin > key)`: 256 rows' current nodes then fit eight AVX2 registers.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct ByteTrees {
    pub(super) trees: Vec<ByteTree>,
    pub(super) splits: Vec<ByteSplit>,
    /// Per tree, by node id: the leaf value (0.0 for inner nodes).
    pub(super) values: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ByteTree {
    pub(super) first_split: u32,
    pub(super) splits: u16,
    pub(super) first_value: u32,
    pub(super) nodes: u16,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ByteSplit {
    pub(super) column: u32,
    pub(super) key: i8,
    pub(super) id: u8,
    /// The left child's id; the right child is `left + 1`.
    pub(super) left: u8,
}

/// Compiles the parsed trees: one bin column per (feature, missing-value rule) over the
/// distinct thresholds of its splits, one raw column per categorical feature, and per tree
/// its splits (bin keys, children as row-set indices) and leaf values.
pub(super) fn compile(
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
pub(super) fn byte_trees(
    trees: &[CompiledTree],
    splits: &[Split],
    leaf_values: &[f64],
) -> Option<ByteTrees> {
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

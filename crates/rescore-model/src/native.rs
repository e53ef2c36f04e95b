//! A pure-Rust evaluator of LightGBM text models that reproduces LightGBM's prediction
//! exactly (same comparisons in f64, same summation order, same output transforms).
//! Models it cannot score exactly (linear trees, several classes, unknown objectives) are
//! refused with `ModelError::Unsupported`, so that they stay on the `lightgbm3` engine.
//!
//! This is the correctness baseline of the native engine; the cache-friendly layout and the
//! load-time self-check against `lightgbm3` come with the evaluator issue.

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

/// Node of the compiled form. Leaves are nodes too: they point to themselves and always go
/// "left", so a traversal step is the same branch-free operation everywhere, and rows that
/// reached their leaf simply stay there while the other rows of their group continue.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FlatNode {
    threshold: f64,
    /// Index into the compact row (only features used by some split).
    feature: u32,
    /// `SLOW_*` bits; 0 for plain numerical splits and leaves.
    flags: u32,
    /// Absolute indices into `NativeModel::nodes`.
    left: u32,
    right: u32,
}

const SLOW_CATEGORICAL: u32 = 1;
const SLOW_ZERO_MISSING: u32 = 2;
/// Plain numerical nodes: where NaN goes (LightGBM's missing-type rules folded in).
const NAN_LEFT: u32 = 4;
const DEFAULT_LEFT: u32 = 8;

/// Rows traversed in lockstep through one tree: independent rows give the CPU parallel work.
/// Measured on the 500x63 LETOR model: 4 beats 1, 8 and 16 (deeper groups wait for their
/// deepest row).
const GROUP: usize = 4;
/// Rows per block: all trees run over one block. Small models: 16 rows, whose compact rows
/// stay in L1 while the trees stream from L2. Models whose nodes outgrow L2 several times over
/// re-read every tree once per block, so they use larger blocks. Measured (1,000 rows, this
/// machine): 100x31 and 500x63 are fastest at 16, 1000x127 (6 MB of nodes) at 256.
const SMALL_BLOCK: usize = 16;
const LARGE_BLOCK: usize = 256;
const LARGE_MODEL_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct NativeModel {
    num_features: usize,
    /// Model feature index of each compact-row slot.
    used_features: Vec<usize>,
    /// Root node index of each tree, in tree order.
    roots: Vec<u32>,
    nodes: Vec<FlatNode>,
    /// Leaf value per node index (0.0 for inner nodes).
    values: Vec<f64>,
    /// Categorical bitset words; a node's range is (threshold as start, cat_len in `feature` hi).
    cat_words: Vec<u32>,
    cat_ranges: Vec<(u32, u32)>,
    transform: Transform,
    average_output: bool,
    block_rows: usize,
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
        Ok(compile(
            header.num_features,
            &trees,
            cat_words,
            transform,
            header.average_output,
        ))
    }

    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Bytes held by the compiled model.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.used_features.len() * std::mem::size_of::<usize>()
            + self.roots.len() * 4
            + self.nodes.len() * std::mem::size_of::<FlatNode>()
            + self.values.len() * 8
            + self.cat_words.len() * 4
            + self.cat_ranges.len() * 8
    }

    /// `n` deterministic rows (row-major, all model features) that exercise the model's
    /// decisions: every split threshold and its neighbouring doubles, the categories of every
    /// bitset and ids beside them, NaN, signed zeros and values LightGBM reads as zero.
    pub fn probe_rows(&self, n: usize) -> Vec<f64> {
        use rand::{Rng, SeedableRng};
        let mut candidates: Vec<Vec<f64>> =
            vec![
                vec![f64::NAN, 0.0, -0.0, 1e-36, -1e-36, 1.0, -1.0, 1e300];
                self.used_features.len()
            ];
        for node in self.nodes.iter().filter(|n| n.left != n.right) {
            let values = &mut candidates[node.feature as usize];
            if node.flags & SLOW_CATEGORICAL != 0 {
                let (first, len) = self.cat_ranges[node.threshold as usize];
                for w in 0..len {
                    let word = self.cat_words[(first + w) as usize];
                    for bit in (0..32).filter(|b| (word >> b) & 1 == 1) {
                        let category = f64::from(w * 32 + bit);
                        values.extend([category, category + 1.0, category + 0.5]);
                    }
                }
                values.extend([-1.0, -0.5, f64::from(len * 32), 1e10]);
            } else {
                let t = node.threshold;
                values.extend([t, t.next_up(), t.next_down()]);
            }
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
        let mut rows = vec![0.0; n * self.num_features];
        for (r, row) in rows.chunks_exact_mut(self.num_features).enumerate() {
            for (slot, &feature) in self.used_features.iter().enumerate() {
                row[feature] = match r {
                    0 => f64::NAN,
                    1 => 0.0,
                    _ => {
                        let values = &candidates[slot];
                        values[rng.gen_range(0..values.len())]
                    }
                };
            }
        }
        rows
    }

    /// Standard prediction for each row of a row-major matrix (NaN = missing).
    pub fn predict(&self, rows: &[f64]) -> Vec<f64> {
        let n_rows = rows.len() / self.num_features.max(1);
        let width = self.used_features.len().max(1);
        let mut out = Vec::with_capacity(n_rows);
        let block_rows = self.block_rows;
        let mut compact = vec![0.0; block_rows * width];
        let mut sums = vec![0.0f64; block_rows];
        for block in rows
            .chunks(block_rows * self.num_features)
            .take(n_rows.div_ceil(block_rows))
        {
            let in_block = block.len() / self.num_features;
            // Compact rows of the used features. LightGBM's dense-row reader keeps only
            // |x| > kZeroThreshold or NaN; everything else reaches the trees as an exact 0.0.
            for (r, row) in block.chunks_exact(self.num_features).enumerate() {
                let dst = &mut compact[r * width..(r + 1) * width];
                for (d, &f) in dst.iter_mut().zip(&self.used_features) {
                    let x = row[f];
                    *d = if x.is_nan() || x.abs() > ZERO_THRESHOLD {
                        x
                    } else {
                        0.0
                    };
                }
            }
            sums[..in_block].fill(0.0);
            for &root in &self.roots {
                for start in (0..in_block).step_by(GROUP) {
                    let end = (start + GROUP).min(in_block);
                    self.traverse_group(root, &compact, width, start..end, &mut sums);
                }
            }
            out.extend(sums[..in_block].iter().map(|&s| self.output(s)));
        }
        out
    }

    /// Moves the rows of `group` from `root` to their leaves in lockstep and adds the leaf
    /// values to their sums (tree order per row, as LightGBM sums). A step is branch-free;
    /// rows at a leaf stay there (leaves loop to themselves) until the whole group is done.
    fn traverse_group(
        &self,
        root: u32,
        compact: &[f64],
        width: usize,
        group: std::ops::Range<usize>,
        sums: &mut [f64],
    ) {
        let mut at = [root; GROUP];
        let n = group.len();
        loop {
            let mut moved = false;
            for k in 0..n {
                let node = &self.nodes[at[k] as usize];
                let x = compact[(group.start + k) * width + node.feature as usize];
                let left = if node.flags & (SLOW_CATEGORICAL | SLOW_ZERO_MISSING) == 0 {
                    (x <= node.threshold) | (x.is_nan() & (node.flags & NAN_LEFT != 0))
                } else {
                    self.slow_left(node, x)
                };
                let next = if left { node.left } else { node.right };
                moved |= next != at[k];
                at[k] = next;
            }
            if !moved {
                break;
            }
        }
        for k in 0..n {
            sums[group.start + k] += self.values[at[k] as usize];
        }
    }

    fn slow_left(&self, node: &FlatNode, x: f64) -> bool {
        if node.flags & SLOW_CATEGORICAL != 0 {
            if x.is_nan() {
                return false;
            }
            // C++ `static_cast<int>` truncates toward zero; out-of-range values saturate here
            // and fall outside every bitset, which also sends them right.
            let category = x as i32;
            if category < 0 {
                return false;
            }
            let (first, len) = self.cat_ranges[node.threshold as usize];
            let word = category as u32 / 32;
            return word < len
                && (self.cat_words[(first + word) as usize] >> (category % 32)) & 1 == 1;
        }
        // Zero-as-missing: NaN counts as zero; rows were already mapped so that "zero" is 0.0.
        if x.is_nan() || x == 0.0 {
            return node.flags & DEFAULT_LEFT != 0;
        }
        x <= node.threshold
    }

    fn output(&self, sum: f64) -> f64 {
        let sum = if self.average_output {
            sum / self.roots.len() as f64
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

/// Lays the parsed trees out as one node array (pre-order per tree, leaves as self-loops) over
/// a compact row of the features the splits use.
fn compile(
    num_features: usize,
    trees: &[Tree],
    cat_words: Vec<u32>,
    transform: Transform,
    average_output: bool,
) -> NativeModel {
    let mut slot_of = vec![u32::MAX; num_features];
    let mut used_features = Vec::new();
    for node in trees.iter().flat_map(|t| &t.nodes) {
        if slot_of[node.feature] == u32::MAX {
            slot_of[node.feature] = used_features.len() as u32;
            used_features.push(node.feature);
        }
    }
    let mut nodes = Vec::new();
    let mut values = Vec::new();
    let mut roots = Vec::with_capacity(trees.len());
    let mut cat_ranges = Vec::new();
    for tree in trees {
        roots.push(nodes.len() as u32);
        if tree.nodes.is_empty() {
            push_leaf(&mut nodes, &mut values, tree.leaves[0]);
            continue;
        }
        // Pre-order: a node's left subtree follows it, which keeps common paths close.
        let mut stack = vec![(0i32, None::<(usize, bool)>)];
        while let Some((child, parent)) = stack.pop() {
            let index = nodes.len() as u32;
            if let Some((p, is_left)) = parent {
                let p: &mut FlatNode = &mut nodes[p];
                if is_left {
                    p.left = index
                } else {
                    p.right = index
                }
            }
            if child < 0 {
                push_leaf(&mut nodes, &mut values, tree.leaves[!child as usize]);
                continue;
            }
            let src = &tree.nodes[child as usize];
            let missing = (src.decision >> 2) & 3;
            let default_left = src.decision & DEFAULT_LEFT_MASK != 0;
            let (flags, threshold) = if src.decision & CATEGORICAL_MASK != 0 {
                cat_ranges.push((src.cat_start as u32, src.cat_len as u32));
                (SLOW_CATEGORICAL, (cat_ranges.len() - 1) as f64)
            } else if missing == MISSING_ZERO {
                (
                    SLOW_ZERO_MISSING | if default_left { DEFAULT_LEFT } else { 0 },
                    src.threshold,
                )
            } else {
                // NaN with missing type NaN takes the default side; with None it is read as 0.0.
                let nan_left = if missing == MISSING_NAN {
                    default_left
                } else {
                    0.0 <= src.threshold
                };
                (if nan_left { NAN_LEFT } else { 0 }, src.threshold)
            };
            let me = nodes.len();
            nodes.push(FlatNode {
                threshold,
                feature: slot_of[src.feature],
                flags,
                left: 0,
                right: 0,
            });
            values.push(0.0);
            // Right is pushed first so that the left subtree is laid out next.
            stack.push((src.right, Some((me, false))));
            stack.push((src.left, Some((me, true))));
        }
    }
    let block_rows = if nodes.len() * std::mem::size_of::<FlatNode>() > LARGE_MODEL_BYTES {
        LARGE_BLOCK
    } else {
        SMALL_BLOCK
    };
    NativeModel {
        block_rows,
        num_features,
        used_features,
        roots,
        nodes,
        values,
        cat_words,
        cat_ranges,
        transform,
        average_output,
    }
}

fn push_leaf(nodes: &mut Vec<FlatNode>, values: &mut Vec<f64>, value: f64) {
    let index = nodes.len() as u32;
    nodes.push(FlatNode {
        threshold: f64::INFINITY,
        feature: 0,
        flags: NAN_LEFT,
        left: index,
        right: index,
    });
    values.push(value);
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

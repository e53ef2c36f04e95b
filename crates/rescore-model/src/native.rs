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

/// Node of the compiled form, 16 bytes. Every tree is laid out so that a node's two children
/// are adjacent (`right = left + 1`), and the trees of a block are chained: a leaf is a node
/// whose value is added to the row's sum and whose only successor is the next tree's root (the
/// block's last leaves go to [`END`]). Scoring a row through a block of trees is then one
/// long sequence of identical branch-free steps — no per-tree loop, no "is this a leaf"
/// branch — and many rows run such sequences side by side.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct FlatNode {
    /// Split threshold (inner nodes), categorical range index (categorical splits) or leaf
    /// value (leaves).
    value: f64,
    /// Compact-row slot (low 24 bits) and `FLAG_*` bits.
    meta: u32,
    /// Absolute index of the left child; the right child follows it.
    left: u32,
}

const SLOT_MASK: u32 = 0x00ff_ffff;
/// Bit 31, so that `(meta as i32) >> 31` is the all-ones mask of a leaf.
const FLAG_LEAF: u32 = 1 << 31;
/// Categorical split: decided by [`NativeModel::categorical_left`] on the raw value.
const FLAG_CATEGORICAL: u32 = 1 << 30;
/// The sentinel a block's last leaves lead to; it loops to itself and adds 0.0.
const END: u32 = 0;

/// How a compact-row slot holds a model feature. LightGBM's missing-value rules depend on
/// the split (`missing_type`, `default_left`), so a feature gets one slot per rule that its
/// splits use, with missing values replaced by a value that the plain test `x <= threshold`
/// sends the split's default way: every numerical split is then the same single compare.
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
    #[inline(always)]
    fn map(self, x: f64) -> f64 {
        match self {
            SlotKind::NanAsZero if x.is_nan() => 0.0,
            SlotKind::NanLeft if x.is_nan() => f64::NEG_INFINITY,
            SlotKind::ZeroLeft if x.is_nan() || x == 0.0 => f64::NEG_INFINITY,
            SlotKind::ZeroRight if x == 0.0 => f64::NAN,
            _ => x,
        }
    }

    /// Whether `x <= threshold` on mapped values is LightGBM's decision for every input:
    /// the replacement for missing must land on the default side of the threshold.
    fn exact_for(self, threshold: f64) -> bool {
        match self {
            SlotKind::NanLeft | SlotKind::ZeroLeft => !threshold.is_nan(),
            SlotKind::NanRight | SlotKind::ZeroRight | SlotKind::NanAsZero | SlotKind::Raw => true,
        }
    }
}

/// Rows advanced side by side: independent dependency chains for the CPU to overlap.
const LANES: usize = 8;
/// Steps between two "has every lane reached END?" checks.
const UNROLL: usize = 8;
/// Rows per block: a block's compact rows stay in cache while every tree block runs over it.
const BLOCK_ROWS: usize = 64;
/// Node bytes per tree block: a tree block stays in L2 while the row block runs through it.
const TREE_BLOCK_BYTES: usize = 256 << 10;

#[derive(Debug, Clone, PartialEq)]
pub struct NativeModel {
    num_features: usize,
    /// Model feature and kind of each compact-row slot. The compact row has one more slot,
    /// always -inf, that leaves read: `-inf <= value` holds for every (non-NaN) leaf value, so
    /// a leaf always continues to its left successor, the next tree's root.
    slots: Vec<(usize, SlotKind)>,
    /// First root of each tree block; the block's trees are chained from it to [`END`].
    block_roots: Vec<u32>,
    nodes: Vec<FlatNode>,
    /// Categorical bitset words; a categorical node's `value` indexes `cat_ranges`.
    cat_words: Vec<u32>,
    cat_ranges: Vec<(u32, u32)>,
    num_trees: usize,
    transform: Transform,
    average_output: bool,
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
            + self.slots.len() * std::mem::size_of::<(usize, SlotKind)>()
            + self.block_roots.len() * 4
            + self.nodes.len() * std::mem::size_of::<FlatNode>()
            + self.cat_words.len() * 4
            + self.cat_ranges.len() * 8
    }

    /// `n` deterministic rows (row-major, all model features) that exercise the model's
    /// decisions: every split threshold and its neighbouring doubles, the categories of every
    /// bitset and ids beside them, NaN, signed zeros and values LightGBM reads as zero.
    pub fn probe_rows(&self, n: usize) -> Vec<f64> {
        use rand::{Rng, SeedableRng};
        let mut features: Vec<usize> = self.slots.iter().map(|&(f, _)| f).collect();
        features.sort_unstable();
        features.dedup();
        let mut candidates: Vec<Vec<f64>> =
            vec![vec![f64::NAN, 0.0, -0.0, 1e-36, -1e-36, 1.0, -1.0, 1e300]; features.len()];
        for node in self.nodes.iter().filter(|n| n.meta & FLAG_LEAF == 0) {
            let feature = self.slots[(node.meta & SLOT_MASK) as usize].0;
            let values = &mut candidates[features.binary_search(&feature).unwrap_or(0)];
            if node.meta & FLAG_CATEGORICAL != 0 {
                let (first, len) = self.cat_ranges[node.value as usize];
                for w in 0..len {
                    let word = self.cat_words[(first + w) as usize];
                    for bit in (0..32).filter(|b| (word >> b) & 1 == 1) {
                        let category = f64::from(w * 32 + bit);
                        values.extend([category, category + 1.0, category + 0.5]);
                    }
                }
                values.extend([-1.0, -0.5, f64::from(len * 32), 1e10]);
            } else {
                let t = node.value;
                values.extend([t, t.next_up(), t.next_down()]);
            }
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
        if self.cat_ranges.is_empty() {
            self.predict_with::<false>(rows)
        } else {
            self.predict_with::<true>(rows)
        }
    }

    fn predict_with<const CATEGORICAL: bool>(&self, rows: &[f64]) -> Vec<f64> {
        let num_features = self.num_features.max(1);
        let n_rows = rows.len() / num_features;
        let width = self.slots.len() + 1;
        let mut out = Vec::with_capacity(n_rows);
        let mut compact = vec![f64::NEG_INFINITY; BLOCK_ROWS * width];
        let mut sums = [0.0f64; BLOCK_ROWS];
        for block in rows[..n_rows * num_features].chunks(BLOCK_ROWS * num_features) {
            let in_block = block.len() / num_features;
            for (row, dst) in block
                .chunks_exact(num_features)
                .zip(compact.chunks_exact_mut(width))
            {
                for (d, &(f, kind)) in dst.iter_mut().zip(&self.slots) {
                    // LightGBM's dense-row reader keeps only |x| > kZeroThreshold or NaN;
                    // everything else reaches the trees as an exact 0.0.
                    let x = row[f];
                    let x = if x.is_nan() || x.abs() > ZERO_THRESHOLD {
                        x
                    } else {
                        0.0
                    };
                    *d = kind.map(x);
                }
            }
            // LightGBM sums the trees in order from 0.0; the blocks run in tree order.
            sums[..in_block].fill(0.0);
            for &root in &self.block_roots {
                for start in (0..in_block).step_by(LANES) {
                    let lanes = (in_block - start).min(LANES);
                    let group = &compact[start * width..(start + LANES) * width];
                    self.run_chains::<CATEGORICAL>(
                        root,
                        group,
                        width,
                        &mut sums[start..start + lanes],
                    );
                }
            }
            out.extend(sums[..in_block].iter().map(|&s| self.output(s)));
        }
        out
    }

    /// Runs up to `LANES` rows (`rows`: `LANES` compact rows, `width` apart) through the
    /// chained trees from `root` until each reaches [`END`], adding the leaf values to `sums`
    /// in tree order. Inner steps add +0.0, which leaves any sum unchanged (a sum that starts
    /// at +0.0 is never -0.0 in round-to-nearest).
    #[inline(always)]
    fn run_chains<const CATEGORICAL: bool>(
        &self,
        root: u32,
        rows: &[f64],
        width: usize,
        sums: &mut [f64],
    ) {
        assert!(rows.len() >= LANES * width && sums.len() <= LANES);
        let lanes = sums.len();
        let mut at = [END; LANES];
        let mut acc = [0.0f64; LANES];
        at[..lanes].fill(root);
        acc[..lanes].copy_from_slice(sums);
        let nodes = &self.nodes[..];
        loop {
            for _ in 0..UNROLL {
                for k in 0..LANES {
                    // SAFETY: `compile` checked that every child index (`left + 1`) is inside
                    // `nodes` and every slot below `width`; `k * width + slot` is inside
                    // `rows` (asserted above).
                    #[allow(unsafe_code)]
                    let (node, x) = unsafe {
                        let node = *nodes.get_unchecked(at[k] as usize);
                        let x = *rows.get_unchecked(k * width + (node.meta & SLOT_MASK) as usize);
                        (node, x)
                    };
                    let leaf_mask = ((node.meta as i32) >> 31) as i64 as u64;
                    acc[k] += f64::from_bits(node.value.to_bits() & leaf_mask);
                    let left = if CATEGORICAL && node.meta & FLAG_CATEGORICAL != 0 {
                        self.categorical_left(node.value, x)
                    } else {
                        x <= node.value
                    };
                    at[k] = node.left + u32::from(!left);
                }
            }
            if at.iter().all(|&a| a == END) {
                break;
            }
        }
        sums.copy_from_slice(&acc[..lanes]);
    }

    /// LightGBM's `CategoricalDecision` on the (zero-mapped) value: NaN and negative
    /// categories go right, others left when their bit is set.
    #[cold]
    fn categorical_left(&self, range: f64, x: f64) -> bool {
        if x.is_nan() {
            return false;
        }
        // C++ `static_cast<int>` truncates toward zero; out-of-range values saturate here
        // and fall outside every bitset, which also sends them right.
        let category = x as i32;
        if category < 0 {
            return false;
        }
        let (first, len) = self.cat_ranges[range as usize];
        let word = category as u32 / 32;
        word < len && (self.cat_words[(first + word) as usize] >> (category % 32)) & 1 == 1
    }

    fn output(&self, sum: f64) -> f64 {
        let sum = if self.average_output {
            sum / self.num_trees as f64
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

/// Lays the parsed trees out as chained node arrays (see [`FlatNode`]) over a compact row of
/// the features the splits use, in tree blocks of about [`TREE_BLOCK_BYTES`].
fn compile(
    num_features: usize,
    trees: &[Tree],
    cat_words: Vec<u32>,
    transform: Transform,
    average_output: bool,
) -> Result<NativeModel, ModelError> {
    if let Some(tree) = trees
        .iter()
        .position(|t| t.leaves.iter().any(|v| v.is_nan()))
    {
        // A NaN leaf would not pass its leaf's `-inf <= value` step; lightgbm3 serves it.
        return Err(ModelError::Unsupported(format!(
            "tree {tree} has a NaN leaf value"
        )));
    }
    let mut slot_of = std::collections::HashMap::new();
    let mut slots = Vec::new();
    for node in trees.iter().flat_map(|t| &t.nodes) {
        let kind = slot_kind(node);
        if !kind.exact_for(node.threshold) {
            return Err(ModelError::Unsupported(format!(
                "threshold {} with missing-value rule {kind:?}",
                node.threshold
            )));
        }
        slot_of.entry((node.feature, kind)).or_insert_with(|| {
            slots.push((node.feature, kind));
            (slots.len() - 1) as u32
        });
    }
    if slots.len() >= SLOT_MASK as usize {
        return Err(ModelError::Unsupported("too many features".into()));
    }
    let leaf_slot = slots.len() as u32;
    let mut nodes = vec![FlatNode {
        value: 0.0,
        meta: FLAG_LEAF | leaf_slot,
        left: END,
    }];
    let mut cat_ranges = Vec::new();
    let mut block_roots = Vec::new();
    let mut block_bytes = usize::MAX;
    let mut last_tree = 0;
    for tree in trees {
        let size = 2 * tree.leaves.len() - 1;
        if block_bytes.saturating_add(size * std::mem::size_of::<FlatNode>()) > TREE_BLOCK_BYTES {
            // Close the previous block: its last tree's leaves go to END.
            end_chain(&mut nodes[last_tree..]);
            block_roots.push(nodes.len() as u32);
            block_bytes = 0;
        }
        block_bytes += size * std::mem::size_of::<FlatNode>();
        let base = nodes.len();
        last_tree = base;
        lay_out_tree(tree, &slot_of, leaf_slot, &mut nodes, &mut cat_ranges);
        // Leaves continue to the next tree's root, laid out right after this tree; the last
        // tree of a block is redirected to END when the block closes.
        let next = nodes.len() as u32;
        for node in &mut nodes[base..] {
            if node.meta & FLAG_LEAF != 0 {
                node.left = next;
            }
        }
    }
    end_chain(&mut nodes[last_tree..]);
    // The traversal reads `nodes[left + 1]` and row slots without bounds checks.
    if nodes.len() >= u32::MAX as usize
        || nodes
            .iter()
            .any(|n| n.left as usize + 1 >= nodes.len() || n.meta & SLOT_MASK > leaf_slot)
    {
        return Err(ModelError::Unsupported("model too large".into()));
    }
    Ok(NativeModel {
        num_features,
        slots,
        block_roots,
        nodes,
        cat_words,
        cat_ranges,
        num_trees: trees.len(),
        transform,
        average_output,
    })
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

/// Points the leaves of the last tree laid out (`tree`) to [`END`].
fn end_chain(tree: &mut [FlatNode]) {
    for node in tree.iter_mut().filter(|n| n.meta & FLAG_LEAF != 0) {
        node.left = END;
    }
}

/// Appends one tree: the root first, then each inner node's two children as an adjacent pair,
/// depth first so that a subtree stays close to its parent.
fn lay_out_tree(
    tree: &Tree,
    slot_of: &std::collections::HashMap<(usize, SlotKind), u32>,
    leaf_slot: u32,
    nodes: &mut Vec<FlatNode>,
    cat_ranges: &mut Vec<(u32, u32)>,
) {
    let placeholder = FlatNode {
        value: 0.0,
        meta: 0,
        left: 0,
    };
    let root_at = nodes.len();
    nodes.push(placeholder);
    // Parsed child references: >= 0 inner node, < 0 leaf (!index).
    let mut stack = vec![(if tree.nodes.is_empty() { -1 } else { 0i32 }, root_at)];
    while let Some((child, at)) = stack.pop() {
        if child < 0 {
            nodes[at] = FlatNode {
                value: tree.leaves[!child as usize],
                meta: FLAG_LEAF | leaf_slot,
                left: END,
            };
            continue;
        }
        let src = &tree.nodes[child as usize];
        let kind = slot_kind(src);
        let (flag, value) = if kind == SlotKind::Raw {
            cat_ranges.push((src.cat_start as u32, src.cat_len as u32));
            (FLAG_CATEGORICAL, (cat_ranges.len() - 1) as f64)
        } else {
            (0, src.threshold)
        };
        let pair = nodes.len();
        nodes.push(placeholder);
        nodes.push(placeholder);
        nodes[at] = FlatNode {
            value,
            meta: flag | slot_of[&(src.feature, kind)],
            left: pair as u32,
        };
        // Right is pushed first so that the left subtree is laid out next.
        stack.push((src.right, pair + 1));
        stack.push((src.left, pair));
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

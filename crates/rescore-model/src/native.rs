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
    /// Categorical splits: the bitset's range in `NativeModel::cat_words`.
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

#[derive(Debug, Clone, PartialEq)]
pub struct NativeModel {
    num_features: usize,
    trees: Vec<Tree>,
    cat_words: Vec<u32>,
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
        Ok(NativeModel {
            num_features: header.num_features,
            trees,
            cat_words,
            transform,
            average_output: header.average_output,
        })
    }

    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Standard prediction for each row of a row-major matrix (NaN = missing).
    pub fn predict(&self, rows: &[f64]) -> Vec<f64> {
        let mut row_buf = vec![0.0; self.num_features];
        rows.chunks_exact(self.num_features)
            .map(|row| {
                // LightGBM's dense-row reader keeps only |x| > kZeroThreshold or NaN; the rest
                // reach the trees as exact zeros.
                for (dst, &x) in row_buf.iter_mut().zip(row) {
                    *dst = if x.is_nan() || x.abs() > ZERO_THRESHOLD {
                        x
                    } else {
                        0.0
                    };
                }
                self.predict_row(&row_buf)
            })
            .collect()
    }

    fn predict_row(&self, row: &[f64]) -> f64 {
        let mut sum = 0.0;
        for tree in &self.trees {
            sum += self.leaf_value(tree, row);
        }
        if self.average_output {
            sum /= self.trees.len() as f64;
        }
        match self.transform {
            Transform::Identity => sum,
            Transform::SignedSquare => sum.signum() * sum * sum,
            Transform::Sigmoid(s) => 1.0 / (1.0 + (-s * sum).exp()),
            Transform::Log1pExp => sum.exp().ln_1p(),
            Transform::Exp => sum.exp(),
        }
    }

    fn leaf_value(&self, tree: &Tree, row: &[f64]) -> f64 {
        if tree.nodes.is_empty() {
            return tree.leaves[0];
        }
        let mut node = 0usize;
        loop {
            let n = &tree.nodes[node];
            let x = row[n.feature];
            let next = if n.decision & CATEGORICAL_MASK != 0 {
                self.categorical(n, x)
            } else {
                numerical(n, x)
            };
            if next < 0 {
                return tree.leaves[!next as usize];
            }
            node = next as usize;
        }
    }

    fn categorical(&self, n: &Node, x: f64) -> i32 {
        if x.is_nan() {
            return n.right;
        }
        // C++ `static_cast<int>` truncates toward zero; out-of-range values saturate here and
        // fall outside every bitset, which also sends them right.
        let category = x as i32;
        if category < 0 {
            return n.right;
        }
        let word = category as usize / 32;
        if word >= n.cat_len {
            return n.right;
        }
        if (self.cat_words[n.cat_start + word] >> (category % 32)) & 1 == 1 {
            n.left
        } else {
            n.right
        }
    }
}

fn numerical(n: &Node, x: f64) -> i32 {
    let missing = (n.decision >> 2) & 3;
    let x = if x.is_nan() && missing != MISSING_NAN {
        0.0
    } else {
        x
    };
    let is_missing = match missing {
        MISSING_ZERO => (-ZERO_THRESHOLD..=ZERO_THRESHOLD).contains(&x),
        MISSING_NAN => x.is_nan(),
        _ => false,
    };
    if is_missing {
        return if n.decision & DEFAULT_LEFT_MASK != 0 {
            n.left
        } else {
            n.right
        };
    }
    if x <= n.threshold {
        n.left
    } else {
        n.right
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
    if num_cat > 0 && (boundaries.len() != num_cat + 1 || boundaries.last() != Some(&words.len())) {
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

//! The tree blocks of a LightGBM text model (`Tree=...` up to `end of trees`), read into
//! nodes and leaves and checked to form trees; the header is `crate::header`'s.

use crate::{ModelError, ModelHeader};

/// `decision_type` bits (LightGBM's `kCategoricalMask`, `kDefaultLeftMask`, missing type in
/// bits 2-3).
pub(super) const CATEGORICAL_MASK: u8 = 1;
pub(super) const DEFAULT_LEFT_MASK: u8 = 2;
pub(super) const MISSING_ZERO: u8 = 1;
pub(super) const MISSING_NAN: u8 = 2;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Node {
    pub(super) feature: usize,
    pub(super) threshold: f64,
    pub(super) decision: u8,
    pub(super) left: i32,
    pub(super) right: i32,
    /// Categorical splits: the bitset's range in the model's bitset words.
    pub(super) cat_start: usize,
    pub(super) cat_len: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Tree {
    pub(super) nodes: Vec<Node>,
    pub(super) leaves: Vec<f64>,
}

/// The trees of a model's text, in LightGBM's order, and every categorical bitset word (each
/// categorical node holds its range in them).
pub(super) fn parse_trees(
    text: &str,
    header: &ModelHeader,
) -> Result<(Vec<Tree>, Vec<u32>), ModelError> {
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
    Ok((trees, cat_words))
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

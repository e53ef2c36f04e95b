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

/// Refuses a text cut short (no `end of trees` line), naming its last line. Checked before
/// LightGBM reads the text: LightGBM reports such a file as a failed internal check, and
/// was seen to crash the process on one while other threads used it.
pub(crate) fn check_complete(text: &str) -> Result<(), ModelError> {
    if text.contains("\nend of trees") {
        return Ok(());
    }
    let last = text.lines().count();
    let place = match text.rsplit_once("\nTree=") {
        Some((_, block)) => format!("tree {}", block.lines().next().unwrap_or("?")),
        None => "the header".to_string(),
    };
    Err(ModelError::Format(format!(
        "line {last}: the file ends inside {place}, before `end of trees` (a truncated file?)"
    )))
}

/// The trees of a model's text, in LightGBM's order, and every categorical bitset word (each
/// categorical node holds its range in them).
pub(super) fn parse_trees(
    text: &str,
    header: &ModelHeader,
) -> Result<(Vec<Tree>, Vec<u32>), ModelError> {
    check_complete(text)?;
    let mut trees = Vec::with_capacity(header.num_trees);
    let mut cat_words = Vec::new();
    let mut blocks = text.split("\nTree=");
    // The line number (from 1) of each block's `Tree=` line.
    let mut line = blocks.next().map_or(0, |head| head.matches('\n').count()) + 2;
    for block in blocks {
        let body = block.split("\nend of trees").next().unwrap_or(block);
        trees.push(parse_tree(body, line, header.num_features, &mut cat_words)?);
        line += block.matches('\n').count() + 1;
    }
    if trees.len() != header.num_trees {
        return Err(ModelError::Format(format!(
            "found {} tree blocks in {} lines, the header counted {} trees (a truncated file?)",
            trees.len(),
            text.lines().count(),
            header.num_trees
        )));
    }
    Ok((trees, cat_words))
}

/// One tree block (the text after `Tree=`), whose `Tree=` line is line `first_line` of the
/// file: errors name the line at fault.
fn parse_tree(
    block: &str,
    first_line: usize,
    num_features: usize,
    cat_words: &mut Vec<u32>,
) -> Result<Tree, ModelError> {
    let tree = block.lines().next().unwrap_or("?");
    let line_of = |key: &str| {
        block.lines().position(|l| {
            l.strip_prefix(key)
                .is_some_and(|rest| rest.starts_with('='))
        })
    };
    let field = |key: &str| -> Option<&str> {
        block
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    };
    // "line N: tree T: ..." at the key's line, or at the `Tree=` line when the key is absent.
    let err_at = |key: &str, what: String| {
        let line = line_of(key).map_or(first_line, |i| first_line + i);
        ModelError::Format(format!("line {line}: tree {tree}: {what}"))
    };
    let err = |what: String| ModelError::Format(format!("line {first_line}: tree {tree}: {what}"));
    // A field's values, or an error naming its line: absent, or a value that does not parse.
    fn list<T: std::str::FromStr>(value: Option<&str>) -> Option<Vec<T>> {
        value?.split_whitespace().map(|v| v.parse().ok()).collect()
    }
    let bad = |key: &str| match field(key) {
        None => err_at(key, format!("no `{key}=` line (a truncated file?)")),
        Some(_) => err_at(key, format!("`{key}=` holds a value that is not a number")),
    };
    if field("is_linear").is_some_and(|v| v.trim() != "0") {
        return Err(ModelError::Unsupported("linear trees".into()));
    }
    let num_leaves: usize = field("num_leaves")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| err_at("num_leaves", "no valid `num_leaves=` line".into()))?;
    let leaves: Vec<f64> = list(field("leaf_value")).ok_or_else(|| bad("leaf_value"))?;
    if leaves.len() != num_leaves || num_leaves == 0 {
        return Err(err_at(
            "leaf_value",
            format!(
                "`leaf_value=` has {} values for num_leaves={num_leaves} (a truncated file?)",
                leaves.len()
            ),
        ));
    }
    if num_leaves == 1 {
        return Ok(Tree {
            nodes: Vec::new(),
            leaves,
        });
    }
    let inner = num_leaves - 1;
    let features: Vec<usize> = list(field("split_feature")).ok_or_else(|| bad("split_feature"))?;
    let thresholds: Vec<f64> = list(field("threshold")).ok_or_else(|| bad("threshold"))?;
    let decisions: Vec<u8> = list(field("decision_type")).ok_or_else(|| bad("decision_type"))?;
    let lefts: Vec<i32> = list(field("left_child")).ok_or_else(|| bad("left_child"))?;
    let rights: Vec<i32> = list(field("right_child")).ok_or_else(|| bad("right_child"))?;
    for (key, n) in [
        ("split_feature", features.len()),
        ("threshold", thresholds.len()),
        ("decision_type", decisions.len()),
        ("left_child", lefts.len()),
        ("right_child", rights.len()),
    ] {
        if n != inner {
            return Err(err_at(
                key,
                format!(
                    "`{key}=` has {n} values, num_leaves={num_leaves} needs {inner} (a truncated file?)"
                ),
            ));
        }
    }
    let num_cat: usize = field("num_cat")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let (boundaries, words): (Vec<usize>, Vec<u32>) = if num_cat > 0 {
        (
            list(field("cat_boundaries")).ok_or_else(|| bad("cat_boundaries"))?,
            list(field("cat_threshold")).ok_or_else(|| bad("cat_threshold"))?,
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

//! Versioned item updates for direct ETL (`rescore-sidecar items put|delete`): one JSON object
//! per line, `{"op": "put", "id": "...", "version": N, "features": {...}}` or
//! `{"op": "delete", "id": "...", "version": N}`.

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::Deserialize;

/// Versions are compared exactly in Redis' Lua (doubles): at most 2^53.
pub const MAX_VERSION: u64 = 1 << 53;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Put,
    Delete,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOp {
    /// Replaces the item's features as a whole.
    Put(Vec<(String, f64)>),
    Delete,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub id: String,
    pub version: u64,
    pub op: UpdateOp,
    /// 1-based input line, for error messages.
    pub line: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("cannot read updates: {0}")]
    Io(#[from] std::io::Error),
    #[error("update line {line}: {problem}")]
    Line { line: usize, problem: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    op: Option<OpKind>,
    id: String,
    version: u64,
    features: Option<BTreeMap<String, Option<f64>>>,
}

/// Parses update lines lazily. `default_op` applies to lines without `op` (`items put` and
/// `items delete` set it; `items apply` requires `op` on every line). Blank lines are skipped.
pub fn parse_updates(
    reader: impl BufRead,
    default_op: Option<OpKind>,
) -> impl Iterator<Item = Result<Update, UpdateError>> {
    reader.lines().enumerate().filter_map(move |(i, line)| {
        let line_no = i + 1;
        let text = match line {
            Ok(t) => t,
            Err(e) => return Some(Err(UpdateError::Io(e))),
        };
        if text.trim().is_empty() {
            return None;
        }
        Some(parse_line(&text, line_no, default_op))
    })
}

fn parse_line(text: &str, line: usize, default_op: Option<OpKind>) -> Result<Update, UpdateError> {
    let bad = |problem: String| UpdateError::Line { line, problem };
    let parsed: Line = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    if parsed.version > MAX_VERSION {
        return Err(bad(format!(
            "version {} is above 2^53 ({MAX_VERSION})",
            parsed.version
        )));
    }
    if parsed.id.is_empty() {
        return Err(bad("id: must not be empty".into()));
    }
    let op = match parsed.op.or(default_op) {
        Some(op) => op,
        None => return Err(bad("op: required (\"put\" or \"delete\")".into())),
    };
    let op = match op {
        OpKind::Put => UpdateOp::Put(
            parsed
                .features
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect(),
        ),
        OpKind::Delete => {
            if parsed.features.is_some() {
                return Err(bad("features: not allowed with op \"delete\"".into()));
            }
            UpdateOp::Delete
        }
    };
    Ok(Update {
        id: parsed.id,
        version: parsed.version,
        op,
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_and_errors_name_the_line() {
        let text = "{\"id\":\"a\",\"version\":3,\"features\":{\"p\":1.5,\"n\":null}}\n\n{\"op\":\"delete\",\"id\":\"b\",\"version\":4}\n";
        let got: Vec<_> = parse_updates(text.as_bytes(), Some(OpKind::Put))
            .collect::<Result<_, _>>()
            .expect("valid");
        assert_eq!(got[0].op, UpdateOp::Put(vec![("p".into(), 1.5)]));
        assert_eq!((got[1].op.clone(), got[1].line), (UpdateOp::Delete, 3));
        for (bad, default) in [
            ("{\"id\":\"a\"}", Some(OpKind::Put)),
            ("{\"id\":\"a\",\"version\":1}", None),
            (
                "{\"id\":\"a\",\"version\":9007199254740993}",
                Some(OpKind::Put),
            ),
            ("{\"id\":\"a\",\"version\":-1}", Some(OpKind::Put)),
            (
                "{\"op\":\"delete\",\"id\":\"a\",\"version\":1,\"features\":{}}",
                None,
            ),
            (
                "{\"id\":\"a\",\"version\":1,\"features\":{\"p\":\"x\"}}",
                Some(OpKind::Put),
            ),
            ("{\"id\":\"\",\"version\":1}", Some(OpKind::Put)),
        ] {
            let text = format!("\n{bad}\n");
            let first = parse_updates(text.as_bytes(), default).next();
            match first {
                Some(Err(UpdateError::Line { line: 2, .. })) => {}
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}

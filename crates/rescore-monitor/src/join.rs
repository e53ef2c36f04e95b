//! Joins feature logs with click/label files into LightGBM training data: a libsvm file
//! (`label idx:value ...`, indices are the model's feature columns, missing = `nan`) and its
//! `.query` file (rows per query group), as LightGBM's CLI and `Dataset(path)` read them.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::feature_log::LogRecord;

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("{path}: line {line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

/// `(request_id, hit id) → label`.
#[derive(Debug, Default)]
pub struct Labels {
    by_request: HashMap<String, HashMap<String, f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelLine {
    request_id: String,
    id: String,
    label: f64,
}

impl Labels {
    /// JSON Lines (`{"request_id": "...", "id": "...", "label": 2}`) or, for a `.csv` file,
    /// CSV with the header `request_id,id,label`. A repeated pair keeps the highest label.
    pub fn read(path: &Path) -> Result<Self, JoinError> {
        let file = std::fs::File::open(path)
            .map_err(|e| JoinError::Invalid(format!("{}: {e}", path.display())))?;
        let reader = std::io::BufReader::new(file);
        let csv = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let mut labels = Labels::default();
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            let err = |message: String| JoinError::Line {
                path: path.display().to_string(),
                line: i + 1,
                message,
            };
            if line.trim().is_empty() {
                continue;
            }
            let parsed = if csv {
                if i == 0 {
                    let header: Vec<&str> = line.split(',').map(str::trim).collect();
                    if header != ["request_id", "id", "label"] {
                        return Err(err("the header must be `request_id,id,label`".into()));
                    }
                    continue;
                }
                let cells: Vec<&str> = line.split(',').map(str::trim).collect();
                let [request_id, id, label] = cells[..] else {
                    return Err(err(format!("{} cells, expected 3", cells.len())));
                };
                LabelLine {
                    request_id: request_id.into(),
                    id: id.into(),
                    label: label
                        .parse()
                        .map_err(|_| err(format!("label `{label}` is not a number")))?,
                }
            } else {
                serde_json::from_str::<LabelLine>(&line).map_err(|e| err(e.to_string()))?
            };
            if !parsed.label.is_finite() || parsed.label < 0.0 {
                return Err(err(format!(
                    "label {} must be a non-negative number",
                    parsed.label
                )));
            }
            let slot = labels
                .by_request
                .entry(parsed.request_id)
                .or_default()
                .entry(parsed.id)
                .or_insert(parsed.label);
            *slot = slot.max(parsed.label);
        }
        Ok(labels)
    }

    pub fn insert(&mut self, request_id: &str, id: &str, label: f64) {
        self.by_request
            .entry(request_id.into())
            .or_default()
            .insert(id.into(), label);
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct JoinSummary {
    /// Log records read (for the selected model).
    pub records: u64,
    /// Query groups written (requests with at least one label; records sharing a request id,
    /// e.g. one per shard, form one group).
    pub groups: u64,
    /// Rows written.
    pub rows: u64,
    /// Rows with a label from the label file (the others are labelled 0).
    pub labelled_rows: u64,
    /// Logged requests without any label (skipped).
    pub requests_without_labels: u64,
    pub feature_names: Vec<String>,
}

struct Group {
    rows: Vec<(f64, Vec<Option<f64>>)>,
}

/// Joins the records of `log_files` for `model` (all models when None; they must then share
/// one feature list) with `labels`, writing `data` (libsvm) and `query` (group sizes).
pub fn join(
    log_files: &[std::path::PathBuf],
    model: Option<&str>,
    labels: &Labels,
    data: &mut impl Write,
    query: &mut impl Write,
) -> Result<JoinSummary, JoinError> {
    let mut summary = JoinSummary::default();
    let mut names: Option<Arc<[String]>> = None;
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Group> = HashMap::new();
    let mut unlabelled: std::collections::HashSet<String> = Default::default();
    for path in log_files {
        let file = std::fs::File::open(path)
            .map_err(|e| JoinError::Invalid(format!("{}: {e}", path.display())))?;
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let err = |message: String| JoinError::Line {
                path: path.display().to_string(),
                line: i + 1,
                message,
            };
            let record: LogRecord = serde_json::from_str(&line).map_err(|e| err(e.to_string()))?;
            if model.is_some_and(|m| m != record.model) {
                continue;
            }
            summary.records += 1;
            match &names {
                None => names = Some(record.feature_names.clone()),
                Some(n) if **n == *record.feature_names => {}
                Some(n) => {
                    return Err(err(format!(
                        "model {} version {} logs features [{}], earlier records [{}]: join one model (--model) whose versions share their features",
                        record.model,
                        record.version,
                        record.feature_names.join(", "),
                        n.join(", ")
                    )))
                }
            }
            let Some(request_labels) = labels.by_request.get(&record.request_id) else {
                unlabelled.insert(record.request_id);
                continue;
            };
            let group = groups.entry(record.request_id.clone()).or_insert_with(|| {
                order.push(record.request_id.clone());
                Group { rows: Vec::new() }
            });
            for hit in record.hits {
                let label = request_labels.get(&hit.id).copied();
                if label.is_some() {
                    summary.labelled_rows += 1;
                }
                group.rows.push((label.unwrap_or(0.0), hit.features));
            }
        }
    }
    let mut line = String::new();
    for request_id in &order {
        let Some(group) = groups.get(request_id) else {
            continue;
        };
        for (label, features) in &group.rows {
            line.clear();
            line.push_str(&label.to_string());
            for (idx, v) in features.iter().enumerate() {
                match v {
                    Some(v) if *v == 0.0 => {} // absent = 0.0 in libsvm
                    Some(v) => line.push_str(&format!(" {idx}:{v}")),
                    None => line.push_str(&format!(" {idx}:nan")),
                }
            }
            line.push('\n');
            data.write_all(line.as_bytes())?;
            summary.rows += 1;
        }
        writeln!(query, "{}", group.rows.len())?;
        summary.groups += 1;
    }
    summary.requests_without_labels = unlabelled.len() as u64;
    summary.feature_names = names.map(|n| n.to_vec()).unwrap_or_default();
    data.flush()?;
    query.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{read_rows, DataFormat};
    use crate::feature_log::LoggedHit;

    fn record(request_id: &str, model: &str, hits: &[(&str, [Option<f64>; 2])]) -> String {
        serde_json::to_string(&LogRecord {
            ts_ms: 1,
            request_id: request_id.into(),
            model: model.into(),
            version: "1".into(),
            variant: "live".into(),
            feature_names: vec!["a".to_string(), "b".to_string()].into(),
            hits: hits
                .iter()
                .map(|(id, f)| LoggedHit {
                    id: (*id).into(),
                    features: f.to_vec(),
                    score: 0.0,
                })
                .collect(),
        })
        .expect("json")
    }

    #[test]
    fn groups_by_request_and_writes_libsvm_with_nan_for_missing() {
        let dir = std::env::temp_dir().join(format!("rescore-join-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let log = dir.join("features-1.jsonl");
        let lines = [
            record(
                "q1",
                "m",
                &[("x", [Some(0.1), None]), ("y", [Some(0.0), Some(2.5)])],
            ),
            record("q2", "m", &[("z", [Some(1.0), Some(1.0)])]),
            record("q1", "m", &[("w", [Some(7.0), Some(-3.0)])]), // a second shard of q1
            record("q3", "other", &[("v", [Some(1.0), Some(1.0)])]),
        ];
        std::fs::write(&log, lines.join("\n") + "\n").expect("write");
        let labels_path = dir.join("labels.csv");
        std::fs::write(
            &labels_path,
            "request_id,id,label\nq1,y,2\nq1,w,1\nq9,a,1\n",
        )
        .expect("write");
        let labels = Labels::read(&labels_path).expect("labels");
        let (mut data, mut query) = (Vec::new(), Vec::new());
        let summary = join(&[log], Some("m"), &labels, &mut data, &mut query).expect("join");
        let data = String::from_utf8(data).expect("utf-8");
        assert_eq!(data, "0 0:0.1 1:nan\n2 1:2.5\n1 0:7 1:-3\n");
        assert_eq!(String::from_utf8(query).expect("utf-8"), "3\n");
        assert_eq!(summary.groups, 1);
        assert_eq!(summary.labelled_rows, 2);
        assert_eq!(summary.requests_without_labels, 1);
        assert_eq!(summary.records, 3);
        // The output reads back as the same values.
        let rows = read_rows(
            data.as_bytes(),
            DataFormat::Libsvm,
            &["a".into(), "b".into()],
            "label",
        )
        .expect("libsvm");
        assert_eq!(rows.labels, vec![0.0, 2.0, 1.0]);
        assert!(rows.values[1].is_nan());
        assert_eq!(rows.values[4], 7.0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_label_lines_are_named() {
        let dir = std::env::temp_dir().join(format!("rescore-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("labels.jsonl");
        std::fs::write(
            &p,
            "{\"request_id\":\"q\",\"id\":\"a\",\"label\":1}\n{\"request_id\":\"q\"}\n",
        )
        .expect("write");
        let err = Labels::read(&p).expect_err("must fail").to_string();
        assert!(
            err.contains("line 2") && err.contains("missing field"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

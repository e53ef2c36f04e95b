//! Reading training data for reference statistics: LightGBM's libsvm/svmlight text format
//! (`label idx:value ...`, 0-based column indices, absent = 0.0) and CSV with a header row.

use std::io::BufRead;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    Libsvm,
    Csv,
}

impl DataFormat {
    /// `.csv` is CSV; anything else is read as libsvm, as LightGBM does.
    pub fn from_path(path: &std::path::Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => DataFormat::Csv,
            _ => DataFormat::Libsvm,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Rows in model feature order, row-major (NaN = missing).
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    pub width: usize,
    pub values: Vec<f64>,
    pub labels: Vec<f64>,
    /// Query groups from libsvm `qid:` tokens (consecutive rows with one qid), as group
    /// sizes; empty when the data has none.
    pub qid_groups: Vec<usize>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A number as LightGBM's text parser reads it: also `nan`, `na`, `null` (missing).
fn parse_value(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "nan" | "na" | "null" | "" => Some(f64::NAN),
        _ => s.parse::<f64>().ok(),
    }
}

/// Reads rows for a model with `feature_names`: libsvm indices are model columns; CSV columns
/// are matched by header name (`label_column` is the label; other unknown columns are ignored,
/// model features without a column are missing).
pub fn read_rows(
    reader: impl BufRead,
    format: DataFormat,
    feature_names: &[String],
    label_column: &str,
) -> Result<Rows, DataError> {
    match format {
        DataFormat::Libsvm => read_libsvm(reader, feature_names.len()),
        DataFormat::Csv => read_csv(reader, feature_names, label_column),
    }
}

fn read_libsvm(reader: impl BufRead, width: usize) -> Result<Rows, DataError> {
    let mut rows = Rows {
        width,
        values: Vec::new(),
        labels: Vec::new(),
        qid_groups: Vec::new(),
    };
    let mut last_qid: Option<String> = None;
    for (i, line) in reader.lines().enumerate() {
        let line_no = i + 1;
        let err = |message: String| DataError::Line {
            line: line_no,
            message,
        };
        let line = line?;
        let content = line.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let mut tokens = content.split_whitespace();
        let label = tokens
            .next()
            .and_then(parse_value)
            .ok_or_else(|| err("the first token must be the label".into()))?;
        let start = rows.values.len();
        rows.values.resize(start + width, 0.0);
        for token in tokens {
            let (idx, value) = token
                .split_once(':')
                .ok_or_else(|| err(format!("`{token}` is not index:value")))?;
            if idx == "qid" {
                match (&last_qid, rows.qid_groups.last_mut()) {
                    (Some(last), Some(size)) if last == value => *size += 1,
                    _ => {
                        if rows.qid_groups.iter().sum::<usize>() != rows.labels.len() {
                            return Err(err("a qid, but earlier rows have none".into()));
                        }
                        rows.qid_groups.push(1);
                        last_qid = Some(value.to_string());
                    }
                }
                continue;
            }
            let idx: usize = idx
                .parse()
                .map_err(|_| err(format!("`{idx}` is not a feature index")))?;
            if idx >= width {
                return Err(err(format!(
                    "feature index {idx}, but the model has {width} features (indices 0..{})",
                    width.saturating_sub(1)
                )));
            }
            rows.values[start + idx] =
                parse_value(value).ok_or_else(|| err(format!("`{value}` is not a number")))?;
        }
        rows.labels.push(label);
        if last_qid.is_some() && rows.qid_groups.iter().sum::<usize>() != rows.labels.len() {
            return Err(err("no qid, but earlier rows have one".into()));
        }
    }
    Ok(rows)
}

/// A LightGBM group file (`data.query`): the number of rows of each query group, one per line.
pub fn read_group_file(reader: impl BufRead) -> Result<Vec<usize>, DataError> {
    let mut sizes = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        match t.parse::<usize>() {
            Ok(n) if n > 0 => sizes.push(n),
            _ => {
                return Err(DataError::Line {
                    line: i + 1,
                    message: format!("`{t}` is not a group size (a positive integer)"),
                })
            }
        }
    }
    Ok(sizes)
}

fn read_csv(
    reader: impl BufRead,
    feature_names: &[String],
    label_column: &str,
) -> Result<Rows, DataError> {
    let mut lines = reader.lines().enumerate();
    let header = match lines.next() {
        Some((_, line)) => line?,
        None => return Err(DataError::Invalid("empty CSV file: no header row".into())),
    };
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    // For each CSV column: the model feature it fills, if any.
    let targets: Vec<Option<usize>> = names
        .iter()
        .map(|n| feature_names.iter().position(|f| f == n))
        .collect();
    let label_at = names.iter().position(|n| *n == label_column);
    if targets.iter().all(Option::is_none) {
        return Err(DataError::Invalid(format!(
            "no CSV column is named after a model feature ({})",
            feature_names.join(", ")
        )));
    }
    let width = feature_names.len();
    let mut rows = Rows {
        width,
        values: Vec::new(),
        labels: Vec::new(),
        qid_groups: Vec::new(),
    };
    for (i, line) in lines {
        let line_no = i + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != names.len() {
            return Err(DataError::Line {
                line: line_no,
                message: format!("{} cells, the header has {}", cells.len(), names.len()),
            });
        }
        let start = rows.values.len();
        rows.values.resize(start + width, f64::NAN);
        for (cell, target) in cells.iter().zip(&targets) {
            if let Some(t) = target {
                rows.values[start + t] = parse_value(cell).ok_or_else(|| DataError::Line {
                    line: line_no,
                    message: format!("`{cell}` is not a number (column `{}`)", feature_names[*t]),
                })?;
            }
        }
        rows.labels.push(
            label_at
                .and_then(|l| parse_value(cells[l]))
                .unwrap_or(f64::NAN),
        );
    }
    Ok(rows)
}

/// Indices of the categorical features declared in a LightGBM text model
/// (`[categorical_feature: 12,15,28]` in its parameters section).
pub fn categorical_features(model_text: &str) -> Vec<usize> {
    model_text
        .lines()
        .find_map(|l| l.strip_prefix("[categorical_feature:"))
        .map(|rest| {
            rest.trim_end_matches(']')
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libsvm_rows_are_dense_with_zero_for_absent() {
        let text = "1 qid:7 0:0.5 2:3\n# comment\n\n0 qid:7 1:nan 2:-1e-3 # trailing\n";
        let rows = read_rows(text.as_bytes(), DataFormat::Libsvm, &names(3), "label").expect("ok");
        assert_eq!(rows.labels, vec![1.0, 0.0]);
        assert_eq!(rows.values[..3], [0.5, 0.0, 3.0]);
        assert_eq!(rows.values[3], 0.0);
        assert!(rows.values[4].is_nan());
        assert_eq!(rows.values[5], -1e-3);
        assert_eq!(rows.qid_groups, [2]);
        let grouped = "1 qid:7 0:1\n0 qid:7 0:2\n2 qid:3 0:3\n";
        let rows =
            read_rows(grouped.as_bytes(), DataFormat::Libsvm, &names(3), "label").expect("ok");
        assert_eq!(rows.qid_groups, [2, 1]);
        let err = read_rows(
            "1 0:1\n0 qid:7 0:2\n".as_bytes(),
            DataFormat::Libsvm,
            &names(3),
            "label",
        )
        .expect_err("mixed")
        .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert_eq!(read_group_file("3\n\n2\n".as_bytes()).expect("ok"), [3, 2]);
        assert!(read_group_file("3\nx\n".as_bytes()).is_err());
        let err = read_rows("1 3:1\n".as_bytes(), DataFormat::Libsvm, &names(3), "label")
            .expect_err("must fail")
            .to_string();
        assert_eq!(
            err,
            "line 1: feature index 3, but the model has 3 features (indices 0..2)"
        );
        let err = read_rows("1 0=1\n".as_bytes(), DataFormat::Libsvm, &names(3), "label")
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("not index:value"), "{err}");
    }

    #[test]
    fn csv_columns_match_by_name() {
        let text = "label,f2,extra,f0\n1,2.5,x,\n0,NA,y,4\n";
        let rows = read_rows(text.as_bytes(), DataFormat::Csv, &names(3), "label").expect("ok");
        assert_eq!(rows.len(), 2);
        assert!(rows.values[0].is_nan() && rows.values[1].is_nan());
        assert_eq!(rows.values[2], 2.5);
        assert_eq!(rows.values[3], 4.0);
        assert!(rows.values[5].is_nan());
        let err = read_rows("f0\nabc\n".as_bytes(), DataFormat::Csv, &names(1), "label")
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("line 2") && err.contains("`abc`"), "{err}");
    }

    #[test]
    fn categorical_features_from_the_model_text() {
        assert_eq!(
            categorical_features("x\n[categorical_feature: 12,15,28]\n"),
            vec![12, 15, 28]
        );
        assert!(categorical_features("[categorical_feature: ]\n").is_empty());
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("f{i}")).collect()
    }
}

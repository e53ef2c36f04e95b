//! Subcommands for jobs other than serving: reference statistics for a model version, and
//! training data from feature logs joined with labels (docs/monitoring.md).

use std::io::Write;
use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use rescore_model::EnginePreference;
use rescore_monitor::dataset::{categorical_features, read_group_file, read_rows, DataFormat};
use rescore_monitor::feature_log::log_files;
use rescore_monitor::join::{join, Labels};
use rescore_monitor::{ReferenceBuilder, REFERENCE_FILE};

#[derive(Debug, Subcommand)]
pub enum Job {
    /// Computes reference statistics (quantile bins of every feature and of the score) of a
    /// model version from its training data and writes them beside the model as reference.json.
    Reference {
        /// The model version directory, e.g. models/marketplace/3 (holds model.txt).
        #[arg(long, value_name = "DIR")]
        model: PathBuf,
        /// Training data: LightGBM's libsvm text format (`label idx:value ...`, column index =
        /// model feature, absent = 0), or CSV with a header row (columns named by feature).
        #[arg(long, value_name = "FILE")]
        data: PathBuf,
        /// Data format [default: csv for *.csv files, else libsvm].
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// CSV: the label column (ignored for statistics).
        #[arg(long, default_value = "label")]
        label_column: String,
        /// Quantile bins per numeric feature and for the score.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(2..=100))]
        bins: u16,
        /// Features treated as categorical (comma-separated names) [default: the model's
        /// categorical features].
        #[arg(long, value_delimiter = ',')]
        categorical: Option<Vec<String>>,
        /// Output file [default: DIR/reference.json].
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Query groups: a LightGBM group file (rows per query, one per line) [default:
        /// DATA.query if it exists, else the libsvm data's `qid:` tokens]. Query-level
        /// features (the manifest's `query`, `query_tokens`, `categorical` sources) are then
        /// counted once per group, as serving counts them once per request.
        #[arg(long, value_name = "FILE")]
        groups: Option<PathBuf>,
    },
    /// Joins feature logs with a label file into LightGBM training data: OUT (libsvm, one row
    /// per logged hit, missing = nan) and OUT.query (rows per request).
    TrainingData {
        /// Feature log files or directories of them (repeatable).
        #[arg(long, value_name = "PATH", required = true, num_args = 1..)]
        logs: Vec<PathBuf>,
        /// Labels: JSON Lines {"request_id","id","label"} or CSV (request_id,id,label).
        #[arg(long, value_name = "FILE")]
        labels: PathBuf,
        /// Only records of this model [default: all; they must share one feature list].
        #[arg(long)]
        model: Option<String>,
        /// Output libsvm file; OUT.query gets the group sizes.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// For a model version and rows of typical windows, how far setting each seller-controlled
    /// feature of one item to a plausible extreme moves its score and rank (docs/monitoring.md).
    AuditSensitivity(crate::audit::SensitivityArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Libsvm,
    Csv,
}

pub fn run(job: Job) -> std::process::ExitCode {
    let result = match job {
        Job::Reference {
            model,
            data,
            format,
            label_column,
            bins,
            categorical,
            out,
            groups,
        } => reference(
            model,
            data,
            format,
            &label_column,
            usize::from(bins),
            categorical,
            out,
            groups,
        ),
        Job::TrainingData {
            logs,
            labels,
            model,
            out,
        } => training_data(logs, labels, model, out),
        Job::AuditSensitivity(args) => crate::audit::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rescore-sidecar: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn reference(
    dir: PathBuf,
    data: PathBuf,
    format: Option<Format>,
    label_column: &str,
    bins: usize,
    categorical: Option<Vec<String>>,
    out: Option<PathBuf>,
    groups: Option<PathBuf>,
) -> anyhow::Result<()> {
    let model_path = dir.join(rescore_serving::MODEL_FILE);
    let text = std::fs::read_to_string(&model_path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", model_path.display()))?;
    // The version as serving loads it (the engine choice: native when its self-check against
    // LightGBM passes; the manifest, for the features that are the same for a whole request).
    let version =
        rescore_serving::LoadedVersion::load("reference", 0, &dir, EnginePreference::Auto)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let model = &version.model;
    let query_level = version.spec.per_request();
    let names = model.feature_names().to_vec();
    let categorical: Vec<bool> = match categorical {
        Some(list) => {
            if let Some(unknown) = list.iter().find(|n| !names.contains(n)) {
                anyhow::bail!("--categorical names `{unknown}`, which the model does not have");
            }
            names.iter().map(|n| list.contains(n)).collect()
        }
        None => {
            let idx = categorical_features(&text);
            (0..names.len()).map(|i| idx.contains(&i)).collect()
        }
    };
    let format = match format {
        Some(Format::Libsvm) => DataFormat::Libsvm,
        Some(Format::Csv) => DataFormat::Csv,
        None => DataFormat::from_path(&data),
    };
    let file =
        std::fs::File::open(&data).map_err(|e| anyhow::anyhow!("{}: {e}", data.display()))?;
    let rows = read_rows(std::io::BufReader::new(file), format, &names, label_column)
        .map_err(|e| anyhow::anyhow!("{}: {e}", data.display()))?;
    if rows.is_empty() {
        anyhow::bail!("{}: no rows", data.display());
    }
    let width = names.len();
    let default_groups = PathBuf::from(format!("{}.query", data.display()));
    let group_sizes = match groups.or_else(|| default_groups.exists().then_some(default_groups)) {
        Some(path) => {
            let file = std::fs::File::open(&path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let sizes = read_group_file(std::io::BufReader::new(file))
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let total: usize = sizes.iter().sum();
            if total != rows.len() {
                anyhow::bail!(
                    "{}: groups of {total} rows in all, the data has {} rows",
                    path.display(),
                    rows.len()
                );
            }
            sizes
        }
        None => rows.qid_groups.clone(),
    };
    let grouped = !group_sizes.is_empty();
    let per_request: Vec<bool> = query_level.iter().map(|&q| q && grouped).collect();
    let scores = model
        .predict(&rows.values)
        .map_err(|e| anyhow::anyhow!("scoring the data: {e}"))?;
    let mut builder = ReferenceBuilder::new(names.clone(), categorical.clone())
        .with_per_request(per_request.clone());
    if grouped {
        let mut start = 0;
        for size in group_sizes {
            builder.push_group(
                &rows.values[start * width..(start + size) * width],
                &scores[start..start + size],
            );
            start += size;
        }
    } else {
        for (row, score) in rows.values.chunks(width.max(1)).zip(&scores) {
            builder.push(row, *score);
        }
    }
    let reference = builder.finish(
        bins,
        format!(
            "rescore-sidecar {} reference --data {} ({:?}, {} rows, {} bins)",
            env!("CARGO_PKG_VERSION"),
            data.display(),
            format,
            rows.len(),
            bins
        ),
    );
    reference
        .check(&names)
        .map_err(|e| anyhow::anyhow!("internal: {e}"))?;
    let out = out.unwrap_or_else(|| dir.join(REFERENCE_FILE));
    let json = serde_json::to_string_pretty(&reference)?;
    std::fs::write(&out, json + "\n").map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    let once = |flags: &[bool]| -> Vec<&str> {
        names
            .iter()
            .zip(flags)
            .filter(|(_, f)| **f)
            .map(|(n, _)| n.as_str())
            .collect()
    };
    println!(
        "{}: {} rows, {} features ({} categorical, {} counted once per query group), engine {}",
        out.display(),
        rows.len(),
        width,
        categorical.iter().filter(|c| **c).count(),
        per_request.iter().filter(|c| **c).count(),
        model.engine_kind().as_str()
    );
    let ungrouped = once(&query_level);
    if !grouped && !ungrouped.is_empty() {
        eprintln!(
            "note: the data has no query groups (no DATA.query, --groups or qid:), so the query-level features {} are counted per row, and so at serving",
            ungrouped.join(", ")
        );
    }
    Ok(())
}

fn training_data(
    logs: Vec<PathBuf>,
    labels: PathBuf,
    model: Option<String>,
    out: PathBuf,
) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for path in logs {
        if path.is_dir() {
            files.extend(log_files(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?);
        } else {
            files.push(path);
        }
    }
    if files.is_empty() {
        anyhow::bail!("no feature log files found");
    }
    let labels = Labels::read(&labels)?;
    let query_path = PathBuf::from(format!("{}.query", out.display()));
    let create = |p: &PathBuf| {
        std::fs::File::create(p)
            .map(std::io::BufWriter::new)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
    };
    let (mut data, mut query) = (create(&out)?, create(&query_path)?);
    let summary = join(&files, model.as_deref(), &labels, &mut data, &mut query)?;
    data.flush()?;
    query.flush()?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

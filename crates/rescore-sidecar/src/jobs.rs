//! Subcommands for jobs other than serving: reference statistics for a model version, and
//! training data from feature logs joined with labels (docs/monitoring.md).

use std::io::Write;
use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use rescore_model::{EnginePreference, Model};
use rescore_monitor::dataset::{categorical_features, read_rows, DataFormat};
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
        } => reference(
            model,
            data,
            format,
            &label_column,
            usize::from(bins),
            categorical,
            out,
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

fn reference(
    dir: PathBuf,
    data: PathBuf,
    format: Option<Format>,
    label_column: &str,
    bins: usize,
    categorical: Option<Vec<String>>,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let model_path = dir.join(rescore_serving::MODEL_FILE);
    let text = std::fs::read_to_string(&model_path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", model_path.display()))?;
    // The serving engine choice: native when its self-check against LightGBM passes.
    let model = Model::from_text(&text, EnginePreference::Auto)
        .map_err(|e| anyhow::anyhow!("{}: {e}", model_path.display()))?;
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
    let mut builder = ReferenceBuilder::new(names.clone(), categorical.clone());
    for block in rows.values.chunks(4096 * width) {
        let scores = model
            .predict(block)
            .map_err(|e| anyhow::anyhow!("scoring the data: {e}"))?;
        for (row, score) in block.chunks(width).zip(scores) {
            builder.push(row, score);
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
    println!(
        "{}: {} rows, {} features ({} categorical), engine {}",
        out.display(),
        rows.len(),
        width,
        categorical.iter().filter(|c| **c).count(),
        model.engine_kind().as_str()
    );
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

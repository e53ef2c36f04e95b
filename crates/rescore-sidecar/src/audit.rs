//! `rescore-sidecar audit-sensitivity`: for a model version and rows of typical windows (its
//! training or logged data), how far a plausible manipulation of each seller-controlled feature
//! moves an item's score and rank within its window (ADR 0011): the features worth guarding.
//!
//! A manipulation sets one item's feature to the data's 1st or 99th percentile (what a seller
//! can claim without standing out as impossible) and leaves the rest of the window as it is;
//! the item's new rank is counted against the others' unchanged scores.

use std::path::PathBuf;

use rescore_model::{EnginePreference, Model};
use rescore_monitor::dataset::{read_rows, DataFormat};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct SensitivityArgs {
    /// The model version directory (model.txt and manifest.toml with `seller_controlled` marks).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Rows of the model's features: libsvm (`label idx:value ...`) or CSV with a header.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Group sizes, one per line (LightGBM's .query file) [default: consecutive windows of
    /// --window rows].
    #[arg(long, value_name = "FILE")]
    pub query: Option<PathBuf>,
    /// Rows per window without --query.
    #[arg(long, default_value_t = 100)]
    pub window: usize,
    /// At most this many windows (the first ones).
    #[arg(long, default_value_t = 200)]
    pub max_windows: usize,
    /// Write the figures as JSON to this file too.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// The figures of one feature and direction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sensitivity {
    pub feature: String,
    /// `p99` or `p1`: the value the manipulated items claim.
    pub to: &'static str,
    pub value: f64,
    pub items: usize,
    pub mean_score_delta: f64,
    /// Places gained (positive: up), mean and 90th percentile over the items.
    pub mean_rank_gain: f64,
    pub p90_rank_gain: f64,
    /// Items outside their window's top 10 that the manipulation puts into it.
    pub share_entering_top10: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Rank of `score` among `others` (0 = top; ties go to the earlier position `at`).
fn rank_among(scores: &[f64], at: usize, score: f64) -> usize {
    scores
        .iter()
        .enumerate()
        .filter(|&(j, s)| j != at && (*s > score || (*s == score && j < at)))
        .count()
}

/// The audit over `rows` (row-major, `width` features) cut into `groups`.
pub fn audit(
    model: &Model,
    seller: &[(String, usize)],
    rows: &[f64],
    groups: &[usize],
) -> anyhow::Result<Vec<Sensitivity>> {
    let width = model.num_features();
    let mut out = Vec::new();
    for (name, col) in seller {
        let mut values: Vec<f64> = rows
            .chunks(width)
            .map(|r| r[*col])
            .filter(|v| v.is_finite())
            .collect();
        values.sort_by(f64::total_cmp);
        for (to, value) in [
            ("p99", percentile(&values, 0.99)),
            ("p1", percentile(&values, 0.01)),
        ] {
            let (mut deltas, mut gains, mut entering, mut outside) = (0.0, Vec::new(), 0, 0);
            let mut first = 0;
            for &size in groups {
                let window = &rows[first * width..(first + size) * width];
                first += size;
                let base = model.predict(window)?;
                let mut changed = window.to_vec();
                for row in changed.chunks_mut(width) {
                    row[*col] = value;
                }
                let moved = model.predict(&changed)?;
                for (j, (b, m)) in base.iter().zip(&moved).enumerate() {
                    let before = rank_among(&base, j, *b);
                    let after = rank_among(&base, j, *m);
                    deltas += m - b;
                    gains.push(before as f64 - after as f64);
                    if before >= 10 {
                        outside += 1;
                        entering += usize::from(after < 10);
                    }
                }
            }
            let items = gains.len();
            let mean_gain = gains.iter().sum::<f64>() / items.max(1) as f64;
            gains.sort_by(f64::total_cmp);
            out.push(Sensitivity {
                feature: name.clone(),
                to,
                value,
                items,
                mean_score_delta: deltas / items.max(1) as f64,
                mean_rank_gain: mean_gain,
                p90_rank_gain: percentile(&gains, 0.9),
                share_entering_top10: entering as f64 / outside.max(1) as f64,
            });
        }
    }
    Ok(out)
}

pub fn run(args: &SensitivityArgs) -> anyhow::Result<()> {
    let model_path = args.model.join(rescore_serving::MODEL_FILE);
    let model = Model::load(&model_path, EnginePreference::Auto)
        .map_err(|e| anyhow::anyhow!("{}: {e}", model_path.display()))?;
    let manifest =
        rescore_serving::Manifest::read(&args.model.join(rescore_serving::MANIFEST_FILE))
            .map_err(anyhow::Error::msg)?;
    let names = model.feature_names().to_vec();
    let seller: Vec<(String, usize)> = manifest
        .features
        .iter()
        .filter(|(_, d)| d.seller_controlled)
        .filter_map(|(n, _)| Some((n.clone(), names.iter().position(|m| m == n)?)))
        .collect();
    anyhow::ensure!(
        !seller.is_empty(),
        "{}: no feature is marked seller_controlled in its manifest",
        args.model.display()
    );
    anyhow::ensure!(args.window >= 2, "--window must be at least 2");
    let file = std::fs::File::open(&args.data)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.data.display()))?;
    let rows = read_rows(
        std::io::BufReader::new(file),
        DataFormat::from_path(&args.data),
        &names,
        "label",
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", args.data.display()))?;
    let mut groups: Vec<usize> = match &args.query {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                l.trim()
                    .parse::<usize>()
                    .map_err(|e| anyhow::anyhow!("{}: `{l}`: {e}", path.display()))
            })
            .collect::<anyhow::Result<_>>()?,
        None => vec![args.window; rows.len() / args.window],
    };
    anyhow::ensure!(
        groups.iter().sum::<usize>() <= rows.len(),
        "{}: the groups hold more rows than the data ({})",
        args.data.display(),
        rows.len()
    );
    groups.truncate(args.max_windows);
    anyhow::ensure!(
        !groups.is_empty(),
        "{}: not one window of rows",
        args.data.display()
    );
    let figures = audit(&model, &seller, &rows.values, &groups)?;
    println!(
        "{} windows, {} items; each seller-controlled feature of one item set to the data's p99 or p1, the window unchanged",
        groups.len(),
        groups.iter().sum::<usize>()
    );
    println!("| feature | to | value | mean score delta | mean rank gain | p90 rank gain | entering top 10 |");
    println!("|---|---|---|---|---|---|---|");
    for f in &figures {
        println!(
            "| {} | {} | {} | {:+.4} | {:+.2} | {:+.0} | {:.1}% |",
            f.feature,
            f.to,
            f.value,
            f.mean_score_delta,
            f.mean_rank_gain,
            f.p90_rank_gain,
            f.share_entering_top10 * 100.0
        );
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "model": args.model, "data": args.data, "windows": groups.len(), "features": figures,
        }))?;
        std::fs::write(path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_counts_only_others_above() {
        let scores = [3.0, 1.0, 2.0, 2.0];
        assert_eq!(rank_among(&scores, 1, 1.0), 3);
        assert_eq!(rank_among(&scores, 1, 5.0), 0);
        assert_eq!(rank_among(&scores, 3, 2.0), 2); // the tie at 2 goes to the earlier hit
    }

    #[test]
    fn the_demo_model_rewards_bought_views_and_the_audit_says_so() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/marketplace/1");
        let model = Model::load(&dir.join("model.txt"), EnginePreference::Auto).expect("model");
        let names = model.feature_names().to_vec();
        let col = |n: &str| names.iter().position(|m| m == n).expect("feature");
        // 20 windows of 50 plausible rows (bm25, tokens, cat, brand, ratio, price, cond,
        // rating, age, popularity), deterministic.
        let mut rows = Vec::new();
        for i in 0..1000u32 {
            let x = f64::from(i % 97) / 97.0;
            let y = f64::from((i * 31) % 89) / 89.0;
            rows.extend([
                8.0 * x,
                2.0,
                f64::from(i % 3 == 0),
                f64::NAN,
                0.5 + y,
                20.0 + 200.0 * y,
                f64::from(i % 5),
                3.5 + 1.5 * x,
                100.0 * y,
                (30.0 * x).round(),
            ]);
        }
        let seller = vec![("popularity".to_string(), col("popularity"))];
        let figures = audit(&model, &seller, &rows, &[50; 20]).expect("audit");
        assert_eq!(figures.len(), 2);
        let up = &figures[0];
        assert_eq!(
            (up.feature.as_str(), up.to, up.items),
            ("popularity", "p99", 1000)
        );
        assert!(
            up.mean_rank_gain > 0.0 && up.mean_score_delta > 0.0,
            "{up:?}"
        );
        let down = &figures[1];
        assert!(down.mean_rank_gain < up.mean_rank_gain, "{down:?}");
    }
}

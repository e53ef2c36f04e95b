//! `rescore-demo build`: generate the world, train the LambdaRank model on the training
//! queries, write the model directory and the item snapshot, print offline figures.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use lightgbm3::{Booster, Dataset, ImportanceType};
use serde::Serialize;
use serde_json::json;

use crate::catalog::CATEGORIES;
use crate::features::{feature_row, ItemFeatures, FEATURE_NAMES};
use crate::metrics::mean_ndcg;
use crate::world::{item_id, Query, QueryKind, World, CANDIDATES, CLASSIFIER_ACCURACY};

pub const MODEL_NAME: &str = "marketplace";
const NUM_TREES: u32 = 250;

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Seed of the synthetic world (and of LightGBM).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Models root: the model goes to <models-dir>/marketplace/<version>/.
    #[arg(long, default_value = "models")]
    models_dir: PathBuf,
    /// Version directory to write (docs/operations.md builds a version 2 to roll out).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    version: u64,
    /// Boosting rounds (trees) of the LambdaRank model.
    #[arg(long, default_value_t = NUM_TREES, value_parser = clap::value_parser!(u32).range(1..=5000))]
    trees: u32,
    /// Item snapshot for the sidecar's item store (JSON Lines).
    #[arg(long, default_value = "demo/items.jsonl")]
    items_out: PathBuf,
}

/// The feature rows of `queries`' candidates, row-major, in candidate order.
pub fn feature_matrix<'a>(world: &World, queries: impl IntoIterator<Item = &'a Query>) -> Vec<f64> {
    let mut rows = Vec::new();
    for q in queries {
        for c in &q.candidates {
            let item = &world.items[c.item].features;
            rows.extend(feature_row(Some(&q.text), c.score, item, &q.features));
        }
    }
    rows
}

pub fn run(args: &BuildArgs) -> Result<()> {
    let world = World::generate(args.seed);
    let train: Vec<&Query> = world.train_queries().collect();
    let held_out: Vec<&Query> = world.held_out_queries().collect();
    print_world_summary(&world);

    write_items(&world, &args.items_out)?;
    println!(
        "wrote {} items to {}",
        world.items.len(),
        args.items_out.display()
    );

    let booster = train_model(&world, &train, args.seed, args.trees)?;
    let model_dir = args
        .models_dir
        .join(MODEL_NAME)
        .join(args.version.to_string());
    fs::create_dir_all(&model_dir).with_context(|| format!("creating {}", model_dir.display()))?;
    let model_path = model_dir.join("model.txt");
    booster
        .save_file(path_str(&model_path)?)
        .context("saving model.txt")?;
    // The sidecar loads model.txt, not this in-memory booster: score with the reloaded file.
    let reloaded = Booster::from_file(path_str(&model_path)?).context("reloading model.txt")?;
    let train_scores = predict(&reloaded, &world, train.iter().copied())?;
    let cap = crate::gaming::cap_score(&train_scores);
    fs::write(
        model_dir.join("manifest.toml"),
        crate::gaming::manifest(cap),
    )
    .context("writing manifest.toml")?;
    println!(
        "wrote {} and manifest.toml ({} trees, guard cap_score {cap})",
        model_path.display(),
        booster.num_iterations()
    );
    print_importance(&reloaded)?;
    println!("\nNDCG@10 offline (baseline = BM25 order, ties by rank; model = reloaded model.txt)");
    report_ndcg("train", train.iter().copied().zip(&train_scores));
    let held_scores = predict(&reloaded, &world, held_out.iter().copied())?;
    report_ndcg("held-out", held_out.iter().copied().zip(&held_scores));
    for kind in QueryKind::ALL {
        let of_kind = held_out
            .iter()
            .copied()
            .zip(&held_scores)
            .filter(|(q, _)| q.kind == kind);
        report_ndcg(&format!("  held-out {}", kind.as_str()), of_kind);
    }
    Ok(())
}

/// Model scores per query, in candidate order.
pub fn predict<'a>(
    booster: &Booster,
    world: &World,
    queries: impl IntoIterator<Item = &'a Query> + Clone,
) -> Result<Vec<Vec<f64>>> {
    let rows = feature_matrix(world, queries.clone());
    let flat = booster
        .predict(&rows, FEATURE_NAMES.len() as i32, true)
        .context("predicting")?;
    let n_rows = rows.len() / FEATURE_NAMES.len();
    ensure!(
        flat.len() == n_rows,
        "LightGBM returned {} scores for {n_rows} rows",
        flat.len()
    );
    let mut scores = flat.into_iter();
    Ok(queries
        .into_iter()
        .map(|q| scores.by_ref().take(q.candidates.len()).collect())
        .collect())
}

/// Prints baseline and model NDCG@10 over (query, model scores) pairs.
fn report_ndcg<'a>(name: &str, rows: impl IntoIterator<Item = (&'a Query, &'a Vec<f64>)>) {
    let rows: Vec<(Vec<u8>, Vec<f64>, &[f64])> = rows
        .into_iter()
        .map(|(q, scores)| {
            let labels = q.candidates.iter().map(|c| c.label).collect();
            let baseline = q.candidates.iter().map(|c| c.score).collect();
            (labels, baseline, scores.as_slice())
        })
        .collect();
    let (base, skipped) = mean_ndcg(rows.iter().map(|r| (r.0.as_slice(), r.1.as_slice())), 10);
    let (model, _) = mean_ndcg(rows.iter().map(|r| (r.0.as_slice(), r.2)), 10);
    let note = if skipped > 0 {
        format!("  ({skipped} without any relevant candidate excluded)")
    } else {
        String::new()
    };
    println!(
        "{name:<22} queries {:>4}  baseline {base:.4}  model {model:.4}  gain {:+.4}{note}",
        rows.len(),
        model - base,
    );
}

/// One libsvm training line: the grade, then every feature as `index:value`. Zeros are written
/// too, and missing values as `nan`: LightGBM reads an absent entry as 0, which is not what
/// the sidecar will send for a missing value.
fn libsvm_line(label: u8, row: &[f64]) -> String {
    let mut line = label.to_string();
    for (i, v) in row.iter().enumerate() {
        // `{}` prints the shortest text that parses back to the same f64.
        let _ = if v.is_nan() {
            write!(line, " {i}:nan")
        } else {
            write!(line, " {i}:{v}")
        };
    }
    line
}

/// Writes the training set of `train` to `path` as libsvm plus `path.query`, the group file
/// LightGBM picks up by name (lightgbm3 has no group setter); returns the feature rows.
fn write_training_data(world: &World, train: &[&Query], path: &Path) -> Result<Vec<f64>> {
    let mut data = BufWriter::new(
        fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut groups = String::new();
    let rows = feature_matrix(world, train.iter().copied());
    let labels = train
        .iter()
        .flat_map(|q| q.candidates.iter().map(|c| c.label));
    for (row, label) in rows.chunks(FEATURE_NAMES.len()).zip(labels) {
        writeln!(data, "{}", libsvm_line(label, row))?;
    }
    data.flush()?;
    drop(data);
    for q in train {
        writeln!(groups, "{}", q.candidates.len())?;
    }
    fs::write(format!("{}.query", path.display()), groups).context("writing group file")?;
    Ok(rows)
}

/// `rescore-demo training-data`: the training set the demo model was trained on.
#[derive(Debug, clap::Args)]
pub struct TrainingDataArgs {
    /// Seed of the synthetic world (the one the model was built with).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output libsvm file; OUT.query gets the group sizes.
    #[arg(long)]
    out: PathBuf,
}

/// Writes the demo model's training data (for `rescore-sidecar reference`, docs/monitoring.md).
pub fn run_training_data(args: &TrainingDataArgs) -> Result<()> {
    let world = World::generate(args.seed);
    let train: Vec<&Query> = world.train_queries().collect();
    let rows = write_training_data(&world, &train, &args.out)?;
    println!(
        "wrote {} rows in {} groups to {} (+ .query)",
        rows.len() / FEATURE_NAMES.len(),
        train.len(),
        args.out.display()
    );
    Ok(())
}

/// Loads the training set written by [`write_training_data`] and trains.
fn train_model(world: &World, train: &[&Query], seed: u64, trees: u32) -> Result<Booster> {
    let dir = TempDir::new("train")?;
    let data_path = dir.0.join("train.libsvm");
    let rows = write_training_data(world, train, &data_path)?;

    let mut dataset = Dataset::from_file(path_str(&data_path)?).context("loading training set")?;
    let (n_rows, n_features) = dataset.size().context("dataset size")?;
    ensure!(
        n_features as usize == FEATURE_NAMES.len()
            && n_rows as usize == rows.len() / n_features as usize,
        "LightGBM read {n_rows} rows x {n_features} features"
    );
    let names: Vec<String> = FEATURE_NAMES.iter().map(|s| s.to_string()).collect();
    dataset
        .set_feature_names(&names)
        .context("setting feature names")?;
    let params = json!({
        "objective": "lambdarank",
        "num_iterations": trees,
        "num_leaves": 31,
        "learning_rate": 0.05,
        "min_data_in_leaf": 20,
        "deterministic": true,
        "force_row_wise": true,
        "num_threads": 1,
        // LightGBM's seed is a C int; it only matters for sampling options left off here.
        "seed": seed % i32::MAX as u64,
        "verbose": -1,
    });
    println!(
        "training LambdaRank: {} queries, {n_rows} rows, {trees} trees",
        train.len()
    );
    Booster::train(dataset, &params).context("training")
}

fn print_importance(booster: &Booster) -> Result<()> {
    let gains = booster
        .feature_importance(ImportanceType::Gain)
        .context("feature importance")?;
    let total: f64 = gains.iter().sum();
    let mut line = String::from("feature importance (gain share):");
    for (name, g) in FEATURE_NAMES.iter().zip(&gains) {
        write!(
            line,
            " {name} {:.1}%",
            100.0 * g / total.max(f64::MIN_POSITIVE)
        )?;
    }
    println!("{line}");
    Ok(())
}

fn print_world_summary(world: &World) {
    let train = world.train_queries().count();
    let held = world.held_out_queries().count();
    println!(
        "world: {} items, {} brands, {} users, {} queries ({train} train, {held} held out)",
        world.items.len(),
        world.brands.len(),
        world.users.len(),
        world.queries.len()
    );
    let mut per_category = String::from("items per category:");
    for (c, def) in CATEGORIES.iter().enumerate() {
        let n = world
            .items
            .iter()
            .filter(|i| i.features.category as usize == c)
            .count();
        let _ = write!(per_category, " {c}={} {n},", def.name);
    }
    println!("{}", per_category.trim_end_matches(','));
    let mut by_kind = String::new();
    for kind in QueryKind::ALL {
        let qs: Vec<&Query> = world.queries.iter().filter(|q| q.kind == kind).collect();
        let right = qs
            .iter()
            .filter(|q| q.features.intent_category as usize == q.intent)
            .count();
        let target = CLASSIFIER_ACCURACY
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0.0, |(_, a)| *a);
        let _ = write!(
            by_kind,
            " {} {} (classifier {:.1}%, target {:.0}%);",
            kind.as_str(),
            qs.len(),
            100.0 * right as f64 / qs.len().max(1) as f64,
            100.0 * target
        );
    }
    let right = world
        .queries
        .iter()
        .filter(|q| q.features.intent_category as usize == q.intent)
        .count();
    println!(
        "queries:{by_kind} classifier overall {:.1}%",
        100.0 * right as f64 / world.queries.len() as f64
    );
    let padded: usize = world
        .queries
        .iter()
        .map(|q| q.candidates.iter().filter(|c| c.score == 0.0).count())
        .sum();
    let in_intent: usize = world
        .queries
        .iter()
        .map(|q| {
            q.candidates
                .iter()
                .filter(|c| world.items[c.item].features.category as usize == q.intent)
                .count()
        })
        .sum();
    let total = world.queries.len() * CANDIDATES;
    println!(
        "candidates: {total}, {:.1}% in the true intent category, {:.1}% padding (BM25 0)",
        100.0 * in_intent as f64 / total as f64,
        100.0 * padded as f64 / total as f64
    );
    let mut counts = [0usize; 5];
    for q in &world.queries {
        for c in &q.candidates {
            counts[usize::from(c.label)] += 1;
        }
    }
    let mut dist = String::from("label distribution (all candidates):");
    for (grade, n) in counts.iter().enumerate() {
        let _ = write!(
            dist,
            " {grade}: {n} ({:.1}%)",
            100.0 * *n as f64 / total as f64
        );
    }
    println!("{dist}");
    let known_budget = world
        .users
        .iter()
        .filter(|u| u.estimated_price_level.is_some())
        .count();
    let known_brand = world.users.iter().filter(|u| u.brand_known).count();
    println!(
        "users: {known_budget} with a known budget, {known_brand} with a known favourite brand"
    );
}

/// One snapshot line per item.
#[derive(Serialize)]
struct ItemLine<'a> {
    id: String,
    features: &'a ItemFeatures,
}

fn write_items(world: &World, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    for (i, item) in world.items.iter().enumerate() {
        let line = ItemLine {
            id: item_id(i),
            features: &item.features,
        };
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("path is not UTF-8: {}", path.display()))
}

/// A scratch directory removed on drop (the training files are only needed while loading).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Result<Self> {
        let name = format!("rescore-demo-{}-{tag}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rescore_api::FeatureMap;

    #[test]
    fn libsvm_lines_keep_zeros_and_mark_missing() {
        assert_eq!(
            libsvm_line(3, &[0.0, 2.5, f64::NAN, 0.1 + 0.2]),
            "3 0:0 1:2.5 2:nan 3:0.30000000000000004"
        );
    }

    #[test]
    fn item_snapshot_round_trips_exactly() -> Result<()> {
        let world = World::generate(3);
        let dir = TempDir::new("items-test")?;
        let path = dir.0.join("items.jsonl");
        write_items(&world, &path)?;
        let text = fs::read_to_string(&path)?;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), world.items.len());
        #[derive(serde::Deserialize)]
        struct Line {
            id: String,
            features: FeatureMap,
        }
        for (i, line) in [0, 1, world.items.len() - 1].map(|i| (i, lines[i])) {
            let parsed: Line = serde_json::from_str(line)?;
            assert_eq!(parsed.id, item_id(i));
            let item = &world.items[i].features;
            assert_eq!(parsed.features.len(), 7);
            for (name, value) in &parsed.features {
                // What the item store will read is bit for bit what training used.
                assert_eq!(*value, item.get(name), "{name} of item {i}");
            }
        }
        Ok(())
    }
}

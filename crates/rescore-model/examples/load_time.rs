//! Time to load a model with the default engine choice (lightgbm3 load, native compile and
//! its self-check), on the 500-tree x 63-leaf LambdaRank model over LETOR's 300 features that
//! the evaluators bench trains (trained here, with the same parameters, if it is not cached).
//! `cargo run --release -p rescore-model --example load_time -- [model.txt] [reps]`
use std::path::PathBuf;
use std::time::Instant;

use rescore_model::{EnginePreference, Model};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/tmp/bench-lambdarank-500x63.txt")
    });
    let reps: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(5);
    if !path.exists() {
        let data =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/letor/rank.train");
        let dataset = lightgbm3::Dataset::from_file(data.to_str().expect("utf-8"))
            .expect("LETOR data at ../shared/data/letor");
        let params = serde_json::json!({
            "objective": "lambdarank", "num_iterations": 500, "num_leaves": 63,
            "learning_rate": 0.05, "min_data_in_leaf": 5, "min_sum_hessian_in_leaf": 0.0,
            "seed": 7, "deterministic": true, "num_threads": 2, "verbose": -1,
        });
        let booster = lightgbm3::Booster::train(dataset, &params).expect("training");
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("mkdir");
        booster
            .save_file(path.to_str().expect("utf-8"))
            .expect("save");
    }
    let text = std::fs::read_to_string(&path).expect("model text");
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let started = Instant::now();
        let model = Model::from_text(&text, EnginePreference::Auto).expect("model");
        times.push(started.elapsed().as_secs_f64());
        assert!(model.native().is_some(), "{:?}", model.native_refusal());
    }
    let model = Model::from_text(&text, EnginePreference::Auto).expect("model");
    let native = model.native().expect("native");
    let started = Instant::now();
    let rows = native.probe_rows();
    let build = started.elapsed().as_secs_f64();
    let probe_rows = rows.len() / model.num_features();
    let reference = Model::from_text(&text, EnginePreference::LightGbm).expect("model");
    let started = Instant::now();
    reference.predict(&rows).expect("scores");
    let lightgbm = started.elapsed().as_secs_f64();
    let started = Instant::now();
    native.predict(&rows);
    let native_all = started.elapsed().as_secs_f64();
    println!("probe rows built in {build:.3} s; LightGBM scores them in {lightgbm:.3} s, native (one batch) in {native_all:.3} s");
    times.sort_by(f64::total_cmp);
    println!(
        "{}: {} trees, {} features, {probe_rows} probe rows; load with self-check: min {:.3} s, median {:.3} s, max {:.3} s ({reps} loads)",
        path.display(),
        model.header().num_trees,
        model.num_features(),
        times[0],
        times[reps / 2],
        times[reps - 1],
    );
}

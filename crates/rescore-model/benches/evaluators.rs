//! Native evaluator vs LightGBM's C API (`lightgbm3`) on the same rows, one thread.
//! Models are trained on the fly on ../shared/data/letor (LambdaRank, fixed seed) and cached
//! in the target directory. `cargo bench -p rescore-model --bench evaluators`.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rescore_model::{EnginePreference, Model, ModelHeader, NativeModel};

const SHAPES: [(usize, usize); 3] = [(100, 31), (500, 63), (1000, 127)];
const BATCHES: [usize; 4] = [1, 10, 100, 1000];

fn letor() -> PathBuf {
    let dir = std::env::var_os("LETOR_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/letor")
        });
    assert!(
        dir.join("rank.train").exists(),
        "no LETOR data at {} (set LETOR_DIR)",
        dir.display()
    );
    dir
}

/// Trains (or reuses) a LambdaRank model with `trees` trees of up to `leaves` leaves.
pub fn model_text(trees: usize, leaves: usize) -> String {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-lambdarank-{trees}x{leaves}.txt"));
    if let Ok(text) = std::fs::read_to_string(&cache) {
        return text;
    }
    let data = letor().join("rank.train");
    let dataset =
        lightgbm3::Dataset::from_file(data.to_str().expect("utf-8")).expect("letor dataset");
    let params = serde_json::json!({
        "objective": "lambdarank", "num_iterations": trees, "num_leaves": leaves,
        "learning_rate": 0.05, "min_data_in_leaf": 5, "min_sum_hessian_in_leaf": 0.0,
        "seed": 7, "deterministic": true, "num_threads": 2, "verbose": -1,
    });
    let booster = lightgbm3::Booster::train(dataset, &params).expect("training");
    booster
        .save_file(cache.to_str().expect("utf-8"))
        .expect("save");
    std::fs::read_to_string(&cache).expect("saved model")
}

/// Test rows of the LETOR data, dense (absent = 0.0), repeated up to `n` rows.
pub fn rows(n: usize, num_features: usize) -> Vec<f64> {
    let text = std::fs::read_to_string(letor().join("rank.test")).expect("rank.test");
    let parsed: Vec<Vec<f64>> = text
        .lines()
        .map(|line| {
            let mut row = vec![0.0; num_features];
            for pair in line.split_whitespace().skip(1) {
                let (i, v) = pair.split_once(':').expect("idx:value");
                let i: usize = i.parse().expect("index");
                if i < num_features {
                    row[i] = v.parse().expect("value");
                }
            }
            row
        })
        .collect();
    parsed.iter().cycle().take(n).flatten().copied().collect()
}

fn bench(c: &mut Criterion) {
    for (trees, leaves) in SHAPES {
        let text = model_text(trees, leaves);
        let header = ModelHeader::parse(&text).expect("header");
        let reference = Model::from_text(&text, EnginePreference::LightGbm).expect("lightgbm3");
        let native = NativeModel::from_text(&text, &header).expect("native");
        let all = rows(1000, header.num_features);
        // Exactness first: a fast wrong answer is not a result.
        let want = reference.predict(&all).expect("predict");
        let got = native.predict(&all);
        let worst = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-9,
            "{trees}x{leaves}: native differs from lightgbm3 by {worst}"
        );

        let mut group = c.benchmark_group(format!("{trees}x{leaves}"));
        for batch in BATCHES {
            let input = &all[..batch * header.num_features];
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::new("lightgbm3", batch), input, |b, input| {
                b.iter(|| reference.predict(input).expect("predict"))
            });
            group.bench_with_input(BenchmarkId::new("native", batch), input, |b, input| {
                b.iter(|| native.predict(input))
            });
            // The same rows as bins made beforehand: what the sidecar scores when the items'
            // bins are cached with the item records (no f64 rows, no binning).
            let bin_features = native.bin_features().expect("numerical splits only");
            let binned: Vec<u8> = input
                .chunks_exact(header.num_features)
                .flat_map(|row| {
                    let native = &native;
                    bin_features
                        .iter()
                        .enumerate()
                        .map(move |(c, &f)| native.bin(c, row[f]))
                })
                .collect();
            assert_eq!(native.predict_binned(&binned, batch), native.predict(input));
            group.bench_with_input(
                BenchmarkId::new("native_cached_bins", batch),
                &binned,
                |b, binned| b.iter(|| native.predict_binned(binned, batch)),
            );
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);

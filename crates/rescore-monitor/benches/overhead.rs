//! What monitoring adds per request of 1,000 hits, next to the scoring it watches, same run:
//! the model's prediction (native evaluator), the drift/outlier observation (default row
//! sample and with every row), and building + serialising one feature-log record (paid only
//! by sampled requests). `cargo bench -p rescore-monitor --bench overhead`.
//!
//! Models: the demo model (models/marketplace/1, 10 features x 250 trees, synthetic rows) and
//! LambdaRank models on ../shared/data/letor (301 features; 100x31 and 500x63, trained and
//! cached by `cargo bench -p rescore-model --bench evaluators`, skipped if absent).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use rescore_model::{EnginePreference, Model};
use rescore_monitor::feature_log::PendingRecord;
use rescore_monitor::{DriftConfig, DriftSketch, ReferenceBuilder};

const HITS: usize = 1000;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// LETOR test rows (absent = 0.0), repeated to `n`.
fn letor_rows(n: usize, width: usize) -> Vec<f64> {
    let path = repo().join("../shared/data/letor/rank.test");
    let text = std::fs::read_to_string(&path).expect("LETOR rank.test");
    let parsed: Vec<Vec<f64>> = text
        .lines()
        .map(|line| {
            let mut row = vec![0.0; width];
            for pair in line.split_whitespace().skip(1) {
                let (i, v) = pair.split_once(':').expect("idx:value");
                row[i.parse::<usize>().expect("index")] = v.parse().expect("value");
            }
            row
        })
        .collect();
    parsed.iter().cycle().take(n).flatten().copied().collect()
}

/// Demo-like rows: 10 features of plausible ranges from a fixed splitmix64 stream.
fn demo_rows(n: usize) -> Vec<f64> {
    let mut state = 7u64;
    let mut u = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .flat_map(|_| {
            [
                u() * 15.0,
                (1.0 + u() * 6.0).floor(),
                f64::from(u8::from(u() < 0.3)),
                f64::from(u8::from(u() < 0.1)),
                u() * 3.0,
                5.0 + u() * u() * 500.0,
                (u() * 5.0).floor(),
                1.0 + u() * 4.0,
                (u() * 365.0).floor(),
                (u() * u() * 3000.0).floor(),
            ]
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut cases: Vec<(String, String, Vec<f64>)> = Vec::new();
    let demo =
        std::fs::read_to_string(repo().join("models/marketplace/1/model.txt")).expect("demo model");
    cases.push(("demo-10f-250x31".into(), demo, demo_rows(HITS)));
    for shape in ["100x31", "500x63"] {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("bench-lambdarank-{shape}.txt"));
        match std::fs::read_to_string(&path) {
            Ok(text) => cases.push((format!("letor-301f-{shape}"), text, letor_rows(HITS, 301))),
            Err(_) => eprintln!(
                "skipping {shape}: run `cargo bench -p rescore-model --bench evaluators` first"
            ),
        }
    }
    for (name, text, rows) in cases {
        let model = Model::from_text(&text, EnginePreference::Auto).expect("model");
        let width = model.num_features();
        assert_eq!(rows.len(), HITS * width);
        let scores = model.predict(&rows).expect("predict");
        // Reference from the same kind of rows (the binning cost does not depend on the data).
        let mut builder = ReferenceBuilder::new(model.feature_names().to_vec(), vec![false; width]);
        for (row, s) in rows.chunks(width).zip(&scores) {
            builder.push(row, *s);
        }
        let reference = builder.finish(10, "bench".into());
        let sampled = DriftSketch::new(reference.clone(), &DriftConfig::default());
        let every_row = DriftSketch::new(
            reference,
            &DriftConfig {
                row_sample_rate: 1.0,
                ..DriftConfig::default()
            },
        );
        let ids: Vec<String> = (0..HITS).map(|i| format!("item-{i}")).collect();
        let names: std::sync::Arc<[String]> = model.feature_names().to_vec().into();

        let mut group = c.benchmark_group(name);
        group.bench_function("score", |b| {
            b.iter(|| model.predict(black_box(&rows)).expect("predict"))
        });
        group.bench_function("drift_observe_default", |b| {
            b.iter(|| sampled.observe(black_box(&rows), black_box(&scores)))
        });
        group.bench_function("drift_observe_every_row", |b| {
            b.iter(|| every_row.observe(black_box(&rows), black_box(&scores)))
        });
        group.bench_function("log_record_build_and_serialise", |b| {
            let mut line = Vec::with_capacity(1 << 20);
            b.iter(|| {
                let pending = PendingRecord {
                    request_id: "r".into(),
                    model: "m".into(),
                    version: "1".into(),
                    variant: "live".into(),
                    feature_names: names.clone(),
                    hit_ids: ids.clone(),
                    rows: rows.clone(),
                    scores: scores.clone(),
                    ts_ms: 0,
                };
                line.clear();
                serde_json::to_writer(&mut line, &pending.into_record()).expect("json");
                line.len()
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);

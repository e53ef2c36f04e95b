//! What monitoring adds to the path that serves, same run, side by side: a model version
//! scoring requests of 1,000 hits from the items' cached bins (`LoadedVersion::score`, items
//! in a real embedded store, bins already cached), without a monitor, with the default drift
//! sample, with drift on every row, and with the feature log taking every request (the
//! request-path cost of one logged request: its 1,000 rows assembled as f64 and queued);
//! plus the writer thread's cost of serialising one logged record.
//! `cargo bench -p rescore-serving --bench monitoring_overhead` (docs/benchmarks.md).
//!
//! Models: the demo model (models/marketplace/1, 10 features x 250 trees; its features read
//! from the item store here, synthetic values) and LambdaRank models trained on
//! ../shared/data/letor (301 features; 100 x 31 and 500 x 63; cached in the target directory
//! under the names the evaluator bench uses), the LETOR test rows as item values.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use rescore_api::{Hit, RescoreRequest};
use rescore_features::{CacheConfig, CachedItems, DataDir, RequestItems};
use rescore_model::{EnginePreference, Model};
use rescore_monitor::feature_log::PendingRecord;
use rescore_monitor::{DriftConfig, Monitor, MonitorConfig, ReferenceBuilder, REFERENCE_FILE};
use rescore_serving::LoadedVersion;

const HITS: usize = 1000;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn letor() -> PathBuf {
    std::env::var_os("LETOR_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/data/letor"))
}

/// A LambdaRank model on the LETOR data (the evaluator bench's parameters and cache file).
fn letor_model(trees: usize, leaves: usize) -> Option<String> {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-lambdarank-{trees}x{leaves}.txt"));
    if let Ok(text) = std::fs::read_to_string(&cache) {
        return Some(text);
    }
    let data = letor().join("rank.train");
    if !data.exists() {
        eprintln!("skipping LETOR models: no {}", data.display());
        return None;
    }
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
    std::fs::read_to_string(&cache).ok()
}

/// LETOR test rows (absent = 0.0), repeated to `n`.
fn letor_rows(n: usize, width: usize) -> Vec<f64> {
    let text = std::fs::read_to_string(letor().join("rank.test")).expect("LETOR rank.test");
    let parsed: Vec<Vec<f64>> = text
        .lines()
        .map(|line| {
            let mut row = vec![0.0; width];
            for pair in line.split_whitespace().skip(1) {
                let (i, v) = pair.split_once(':').expect("idx:value");
                if let Ok(i) = i.parse::<usize>() {
                    if i < width {
                        row[i] = v.parse().expect("value");
                    }
                }
            }
            row
        })
        .collect();
    parsed.iter().cycle().take(n).flatten().copied().collect()
}

/// Demo-like values: 10 features of plausible ranges from a fixed splitmix64 stream.
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

/// A version directory (model.txt, reference.json from the rows) and an embedded store of
/// `HITS` items holding the rows, read through the item cache.
fn setup(
    tmp: &Path,
    name: &str,
    text: &str,
    rows: &[f64],
) -> (PathBuf, Vec<String>, RequestItems, Arc<CachedItems>) {
    let dir = tmp.join(name).join("1");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("model.txt"), text).expect("model");
    let model = Model::from_text(text, EnginePreference::Auto).expect("model");
    let names = model.feature_names().to_vec();
    let width = names.len();
    let scores = model.predict(rows).expect("predict");
    let mut builder = ReferenceBuilder::new(names.clone(), vec![false; width]);
    for (row, s) in rows.chunks(width).zip(&scores) {
        builder.push(row, *s);
    }
    let reference = builder.finish(10, "bench".into());
    std::fs::write(
        dir.join(REFERENCE_FILE),
        serde_json::to_string(&reference).expect("json"),
    )
    .expect("reference");
    let mut lines = String::new();
    for (i, row) in rows.chunks(width).enumerate() {
        let features: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(row)
            .map(|(n, v)| (n.clone(), serde_json::json!(v)))
            .collect();
        lines.push_str(&format!(
            "{}\n",
            serde_json::json!({"id": format!("i{i}"), "features": features})
        ));
    }
    let snapshot = tmp.join(format!("{name}-items.jsonl"));
    std::fs::write(&snapshot, lines).expect("snapshot");
    let data = DataDir::open(&tmp.join(format!("{name}-data"))).expect("data dir");
    let (generation, _) = data.ensure_snapshot(&snapshot, 1 << 26).expect("build");
    let cached = Arc::new(CachedItems::embedded(generation, &CacheConfig::default()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ids: Vec<String> = (0..HITS).map(|i| format!("i{i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let view = runtime.block_on(cached.for_request(ids.iter().map(String::as_str), deadline));
    (dir, names, view, cached)
}

fn version(dir: &Path, names: &[String], config: Option<MonitorConfig>) -> LoadedVersion {
    let mut v = LoadedVersion::load("bench", 1, dir, EnginePreference::Auto).expect("loads");
    if let Some(config) = config {
        let monitor = Monitor::new(config).expect("monitor");
        v.monitor = monitor
            .attach("bench", 1, dir, names, &vec![false; names.len()])
            .expect("reference");
        assert!(v.monitor.is_some());
    }
    v
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut cases: Vec<(String, String, Vec<f64>)> = Vec::new();
    let demo =
        std::fs::read_to_string(repo().join("models/marketplace/1/model.txt")).expect("demo model");
    cases.push(("serving-demo-10f-250x31".into(), demo, demo_rows(HITS)));
    for (trees, leaves) in [(100, 31), (500, 63)] {
        if let Some(text) = letor_model(trees, leaves) {
            cases.push((
                format!("serving-letor-301f-{trees}x{leaves}"),
                text,
                letor_rows(HITS, 301),
            ));
        }
    }
    let request = RescoreRequest {
        hits: (0..HITS)
            .map(|i| Hit {
                id: format!("i{i}"),
                score: (i % 17) as f64,
                features: Default::default(),
            })
            .collect(),
        ..Default::default()
    };
    let drift = |row_sample_rate: f64| DriftConfig {
        row_sample_rate,
        ..DriftConfig::default()
    };
    for (name, text, rows) in cases {
        let (dir, names, items, _cached) = setup(tmp.path(), &name, &text, &rows);
        let log_dir = tmp.path().join(format!("{name}-log"));
        let mut logged = MonitorConfig {
            drift: drift(DriftConfig::default().row_sample_rate),
            ..Default::default()
        };
        logged.feature_log.enabled = true;
        logged.feature_log.dir = Some(log_dir);
        logged.feature_log.sample_rate = 1.0;
        // Most records are dropped (queue full, counted): the request path's cost is the same,
        // and the writer thread does not take the other core from the next setup.
        logged.feature_log.queue_capacity = 1;
        let setups = [
            ("binned_no_monitor", version(&dir, &names, None)),
            (
                "binned_drift_default",
                version(
                    &dir,
                    &names,
                    Some(MonitorConfig {
                        drift: drift(DriftConfig::default().row_sample_rate),
                        ..Default::default()
                    }),
                ),
            ),
            (
                "binned_drift_every_row",
                version(
                    &dir,
                    &names,
                    Some(MonitorConfig {
                        drift: drift(1.0),
                        ..Default::default()
                    }),
                ),
            ),
            (
                "binned_drift_default_logged_request",
                version(&dir, &names, Some(logged)),
            ),
        ];
        // The serving path's scores, and every setup scoring alike.
        let far = || Instant::now() + Duration::from_secs(3600);
        let want = setups[0]
            .1
            .score(&request, Some(&items), far(), Some("live"))
            .expect("scored");
        for (label, v) in &setups {
            let got = v
                .score(&request, Some(&items), far(), Some("live"))
                .expect("scored");
            assert_eq!(got, want, "{label}");
        }
        let mut group = c.benchmark_group(name);
        for (label, v) in &setups {
            group.bench_function(*label, |b| {
                b.iter(|| {
                    v.score(black_box(&request), Some(&items), far(), Some("live"))
                        .expect("scored")
                })
            });
        }
        let assembled = setups[0].1.spec.assemble(&request, Some(&items)).rows;
        let ids: Vec<String> = request.hits.iter().map(|h| h.id.clone()).collect();
        let feature_names: Arc<[String]> = names.clone().into();
        group.bench_function("log_record_serialise_writer_thread", |b| {
            let mut line = Vec::with_capacity(1 << 20);
            b.iter(|| {
                let pending = PendingRecord {
                    request_id: "r".into(),
                    model: "m".into(),
                    version: "1".into(),
                    variant: "live".into(),
                    feature_names: feature_names.clone(),
                    hit_ids: ids.clone(),
                    rows: assembled.clone(),
                    scores: want.clone(),
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
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);

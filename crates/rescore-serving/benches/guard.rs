//! The gamed-listing guard's cost against scoring, same run, same requests:
//! `cargo bench -p rescore-serving --bench guard` (docs/benchmarks.md#gamed-listing-guard).
//!
//! `score` is the demo model's native prediction for the request's rows (the denominator,
//! without feature assembly: the share is an upper bound); `guard_cap` is what the guard adds
//! under policy cap: selecting the model's top 20, a suspicion look-up for each, and the
//! first-pass rank of the suspicious ones. Every hit carries inline suspicion over the
//! threshold: the worst case (each of the 20 pays its first-pass rank, O(hits)).

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::{Rng, SeedableRng};
use rescore_api::{GuardPolicy, Hit, RescoreRequest};
use rescore_model::{EnginePreference, Model};
use rescore_serving::GuardConfig;

fn request(rng: &mut impl Rng, hits: usize) -> (RescoreRequest, Vec<f64>) {
    let mut rows = Vec::with_capacity(hits * 10);
    let hits = (0..hits)
        .map(|i| {
            let bm25: f64 = rng.gen_range(0.0..12.0);
            rows.extend([
                bm25,
                f64::from(rng.gen_range(1..4u8)),
                f64::from(rng.gen_bool(0.5)),
                f64::from(rng.gen_bool(0.2)),
                rng.gen_range(0.2..3.0),
                rng.gen_range(5.0..500.0),
                f64::from(rng.gen_range(0..5u8)),
                rng.gen_range(3.0..5.0),
                f64::from(rng.gen_range(0..200u16)),
                f64::from(rng.gen_range(0..300u16)),
            ]);
            let suspicious = rng.gen_bool(0.02);
            let features = [
                (
                    "suspicion".to_string(),
                    Some(if suspicious { 1.0 } else { 0.5 }),
                ),
                (
                    "suspicion_rules".to_string(),
                    Some(if suspicious { 1.0 } else { 0.0 }),
                ),
            ]
            .into_iter()
            .collect();
            Hit {
                id: format!("i{i}"),
                score: bm25,
                features,
            }
        })
        .collect();
    (
        RescoreRequest {
            hits,
            ..Default::default()
        },
        rows,
    )
}

fn bench(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model = Model::load(
        &root.join("models/marketplace/1/model.txt"),
        EnginePreference::Auto,
    )
    .expect("demo model");
    let guard = GuardConfig {
        policy: GuardPolicy::Cap,
        threshold: 0.995,
        min_rank_jump: 5,
        top_k: 20,
        cap_score: Some(-1.7),
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(19);
    let mut group = c.benchmark_group("guard_vs_scoring");
    for hits in [100usize, 1000] {
        let (req, rows) = request(&mut rng, hits);
        let scores = model.predict(&rows).expect("scores");
        group.bench_with_input(BenchmarkId::new("score", hits), &rows, |b, rows| {
            b.iter(|| model.predict(rows).expect("scores"))
        });
        group.bench_with_input(BenchmarkId::new("guard_cap", hits), &req, |b, req| {
            let mut s = scores.clone();
            b.iter(|| {
                s.copy_from_slice(&scores);
                guard.apply(GuardPolicy::Cap, req, None, &mut s)
            })
        });
        group.bench_with_input(BenchmarkId::new("guard_off", hits), &req, |b, req| {
            let mut s = scores.clone();
            b.iter(|| guard.apply(GuardPolicy::Off, req, None, &mut s))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

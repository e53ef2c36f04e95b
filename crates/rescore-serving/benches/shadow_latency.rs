//! Live latency with and without a shadow version, same process, same requests, interleaved
//! rounds: `cargo bench -p rescore-serving --bench shadow_latency` (docs/benchmarks.md).
//!
//! The demo model (250 trees) serves requests of 1,000 hits with inline features through
//! `Rescorer::rescore` (routing, scoring slots, blocking pool); the shadow setup adds a second
//! version of the same size scored after each response on the shadow thread.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rescore_api::{Hit, QueryContext, RescoreRequest};
use rescore_serving::{Discovery, ModelSources, Rescorer, ServingConfig};

const HITS: usize = 1000;
const ROUNDS: usize = 6;
const PER_ROUND: usize = 150;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tmp = std::env::temp_dir().join(format!("shadow-bench-{}", std::process::id()));
    let models = tmp.join("models");
    for v in ["1", "2"] {
        copy_dir(
            &root.join("models/marketplace/1"),
            &models.join("marketplace").join(v),
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let plain = setup(&models, "[models.marketplace]\nlive = 1\n");
    let shadowed = setup(&models, "[models.marketplace]\nlive = 1\nshadows = [2]\n");
    let requests = requests(64);
    let mut timings: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    // Warm-up, then alternate the two setups round by round so drift hits both alike.
    for r in [&plain, &shadowed] {
        run(&runtime, r, &requests, 50);
    }
    for _ in 0..ROUNDS {
        for (i, r) in [&plain, &shadowed].into_iter().enumerate() {
            timings[i].extend(run(&runtime, r, &requests, PER_ROUND));
        }
    }
    println!(
        "live latency, {HITS} hits per request, {} requests per setup (ms)",
        ROUNDS * PER_ROUND
    );
    for (name, t) in ["no shadow", "1 shadow"].iter().zip(timings.iter_mut()) {
        t.sort_by(f64::total_cmp);
        let mean = t.iter().sum::<f64>() / t.len() as f64;
        println!(
            "{name:>10}: mean {mean:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
            pct(t, 50.0),
            pct(t, 90.0),
            pct(t, 99.0),
            t[t.len() - 1]
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

fn setup(models: &Path, routing: &str) -> Rescorer {
    let routing_path = models.with_file_name(format!("routing-{}.toml", routing.len()));
    std::fs::write(&routing_path, routing).expect("routing");
    let discovery = Discovery::scan(models).expect("models");
    let sources = ModelSources::new(Some(models.to_path_buf()), Some(routing_path));
    let r = Rescorer::with_sources(ServingConfig::default(), &discovery, sources).expect("config");
    r.load_initial(&discovery, None);
    r
}

fn run(
    runtime: &tokio::runtime::Runtime,
    rescorer: &Rescorer,
    requests: &[RescoreRequest],
    n: usize,
) -> Vec<f64> {
    runtime.block_on(async {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let request = requests[i % requests.len()].clone();
            let started = Instant::now();
            let resp = rescorer.rescore(request).await.expect("answered");
            out.push(started.elapsed().as_secs_f64() * 1e3);
            assert!(resp.fallback.is_none(), "{:?}", resp.fallback);
        }
        out
    })
}

fn requests(n: usize) -> Vec<RescoreRequest> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    (0..n)
        .map(|q| {
            let mut query = QueryContext {
                text: Some("apple iphone charger cable".into()),
                user_id: Some(format!("u{q}")),
                ..Default::default()
            };
            for (k, v) in [
                ("intent_category", rng.gen_range(0..20) as f64),
                ("user_budget", rng.gen_range(10.0..500.0)),
                ("user_brand", rng.gen_range(0..30) as f64),
            ] {
                query.features.insert(k.into(), Some(v));
            }
            let hits = (0..HITS)
                .map(|i| {
                    let mut f = std::collections::HashMap::new();
                    for (k, v) in [
                        ("category", rng.gen_range(0..20) as f64),
                        ("brand", rng.gen_range(0..30) as f64),
                        ("price", rng.gen_range(1.0..1000.0)),
                        ("condition", rng.gen_range(0..5) as f64),
                        ("seller_rating", rng.gen_range(1.0..5.0)),
                        ("age_days", rng.gen_range(0.0..365.0)),
                        ("popularity", rng.gen_range(0.0..100.0)),
                    ] {
                        f.insert(k.to_string(), Some(v));
                    }
                    Hit {
                        id: format!("i{i}"),
                        score: rng.gen_range(0.0..20.0),
                        features: f,
                    }
                })
                .collect();
            RescoreRequest {
                model: Some("marketplace".into()),
                query: Some(query),
                hits,
                timeout_ms: Some(5000),
                ..Default::default()
            }
        })
        .collect()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

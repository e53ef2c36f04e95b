//! Feature assembly for 1,000 hits of a 30-feature model whose features all come from the item
//! store: item cache hot, cold with the embedded store, cold with Redis (a `redis-server`
//! started by the bench on a free loopback port). Then the whole request around the model for
//! 1,000 hits x 300 item features (the end-to-end bench's shape): the JSON body parsed into a
//! `RescoreRequest`, items, assembly, and the response serialised. Figures in
//! docs/benchmarks.md.
//!
//! ```sh
//! cargo bench -p rescore-features --bench assembly
//! ```

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rand::{Rng, SeedableRng};
use rescore_api::{Hit, RescoreRequest, RescoreResponse};
use rescore_features::{
    CacheConfig, CachedItems, DataDir, FeatureSpec, RedisConfig, RedisStore, Update, UpdateOp,
};

const ITEMS: usize = 100_000;
const HITS: usize = 1000;
const FEATURES: usize = 30;

struct Redis(Child);
impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bench(c: &mut Criterion) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let items: Vec<(String, Vec<(String, f64)>)> = (0..ITEMS)
        .map(|i| {
            let f = (0..FEATURES)
                .map(|f| (format!("f{f}"), rng.gen::<f64>() * 100.0))
                .collect();
            (format!("item{i}"), f)
        })
        .collect();
    let tmp = tempfile::tempdir().expect("tmp");
    let snapshot = tmp.path().join("items.jsonl");
    let mut text = String::new();
    for (id, f) in &items {
        let map: BTreeMap<&str, f64> = f.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        text.push_str(&serde_json::json!({"id": id, "features": map}).to_string());
        text.push('\n');
    }
    std::fs::write(&snapshot, text).expect("write");
    let data = DataDir::open(&tmp.path().join("data")).expect("dir");
    let (generation, _) = data.ensure_snapshot(&snapshot, 16 << 20).expect("build");
    let names: Vec<String> = (0..FEATURES).map(|f| format!("f{f}")).collect();
    let spec = FeatureSpec::new(&names, &BTreeMap::new()).expect("spec");
    let request = |rng: &mut rand_chacha::ChaCha8Rng| RescoreRequest {
        hits: (0..HITS)
            .map(|i| Hit {
                id: format!("item{}", rng.gen_range(0..ITEMS)),
                score: i as f64,
                features: Default::default(),
            })
            .collect(),
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let deadline = || Instant::now() + Duration::from_secs(5);
    let cache = CacheConfig::default();

    let embedded = Arc::new(CachedItems::embedded(generation, &cache));
    let mut group = c.benchmark_group("assemble_1000_hits_30_item_features");
    group.sample_size(30);
    let hot = request(&mut rng);
    let assemble = |items: &Arc<CachedItems>, req: &RescoreRequest| {
        let view =
            runtime.block_on(items.for_request(req.hits.iter().map(|h| h.id.as_str()), deadline()));
        let out = spec.assemble(req, Some(&view));
        assert!(out.missing.iter().all(|m| *m == 0));
        out
    };
    assemble(&embedded, &hot);
    group.bench_function("embedded_cache_hot", |b| {
        b.iter(|| assemble(&embedded, &hot))
    });
    group.bench_function("embedded_cache_cold", |b| {
        b.iter_batched(
            || {
                embedded.invalidate_all();
                request(&mut rng)
            },
            |req| assemble(&embedded, &req),
            BatchSize::PerIteration,
        )
    });

    // Redis on a free port, filled with the same items.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let _redis = Redis(
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    std::thread::sleep(Duration::from_millis(300));
    let config = RedisConfig {
        url: format!("redis://127.0.0.1:{port}/0"),
        timeout_ms: 1000,
        ..RedisConfig::default()
    };
    let redis = runtime.block_on(async {
        let store = RedisStore::new(&config).expect("store");
        for chunk in items.chunks(1000) {
            let updates: Vec<Update> = chunk
                .iter()
                .map(|(id, f)| Update {
                    id: id.clone(),
                    version: 1,
                    op: UpdateOp::Put(f.clone()),
                    line: 0,
                })
                .collect();
            store.apply(&updates).await.expect("put");
        }
        Arc::new(CachedItems::redis(
            store,
            Duration::from_millis(1000),
            &cache,
        ))
    });
    assemble(&redis, &hot);
    group.bench_function("redis_cache_hot", |b| b.iter(|| assemble(&redis, &hot)));
    group.bench_function("redis_cache_cold", |b| {
        b.iter_batched(
            || {
                redis.invalidate_all();
                request(&mut rng)
            },
            |req| assemble(&redis, &req),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// 1,000 hits x 300 features over 10,000 items: request JSON in, response JSON out, everything
/// but the model (its scores are a stand-in: the sum of each row).
fn request_300(c: &mut Criterion) {
    const ITEMS: usize = 10_000;
    const FEATURES: usize = 300;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let tmp = tempfile::tempdir().expect("tmp");
    let snapshot = tmp.path().join("items.jsonl");
    let mut text = String::new();
    for i in 0..ITEMS {
        let map: BTreeMap<String, f64> = (0..FEATURES)
            .map(|f| (format!("f{f:03}"), rng.gen::<f64>() * 100.0))
            .collect();
        text.push_str(&serde_json::json!({"id": format!("item{i}"), "features": map}).to_string());
        text.push('\n');
    }
    std::fs::write(&snapshot, text).expect("write");
    let data = DataDir::open(&tmp.path().join("data")).expect("dir");
    let (generation, _) = data.ensure_snapshot(&snapshot, 16 << 20).expect("build");
    let names: Vec<String> = (0..FEATURES).map(|f| format!("f{f:03}")).collect();
    let spec = FeatureSpec::new(&names, &BTreeMap::new()).expect("spec");
    let body = |rng: &mut rand_chacha::ChaCha8Rng| {
        let hits: Vec<serde_json::Value> = (0..HITS)
            .map(|i| serde_json::json!({"id": format!("item{}", rng.gen_range(0..ITEMS)), "score": i as f64 * 0.5}))
            .collect();
        serde_json::to_vec(&serde_json::json!({"hits": hits})).expect("json")
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let items = Arc::new(CachedItems::embedded(generation, &CacheConfig::default()));
    let serve = |body: &[u8]| {
        let request: RescoreRequest = serde_json::from_slice(body).expect("request");
        let view = runtime.block_on(items.for_request(
            request.hits.iter().map(|h| h.id.as_str()),
            Instant::now() + Duration::from_secs(5),
        ));
        let out = spec.assemble(&request, Some(&view));
        assert!(out.missing.iter().all(|m| *m == 0));
        let response = RescoreResponse {
            scores: out
                .rows
                .chunks_exact(FEATURES)
                .map(|r| r.iter().sum())
                .collect(),
            model: Some("m".into()),
            version: Some("1".into()),
            variant: Some("live".into()),
            fallback: None,
            took_us: 1,
            flags: None,
        };
        serde_json::to_vec(&response).expect("response")
    };
    let mut group = c.benchmark_group("request_1000_hits_300_item_features");
    group.sample_size(30);
    let hot = body(&mut rng);
    serve(&hot);
    group.bench_function("embedded_cache_hot", |b| b.iter(|| serve(&hot)));
    group.bench_function("embedded_cache_cold", |b| {
        b.iter_batched(
            || {
                items.invalidate_all();
                body(&mut rng)
            },
            |body| serve(&body),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench, request_300);
criterion_main!(benches);

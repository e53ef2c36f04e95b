//! Feature assembly for 1,000 hits of a 30-feature model whose features all come from the item
//! store: item cache hot, cold with the embedded store, cold with Redis (a `redis-server`
//! started by the bench on a free loopback port). Figures in docs/benchmarks.md.
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
use rescore_api::{Hit, RescoreRequest};
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

criterion_group!(benches, bench);
criterion_main!(benches);

//! Redis item values, text vs binary, side by side in one run (figures in docs/benchmarks.md):
//!
//! 1. One `MGET` of 1,000 random ids (round trip + decode, `RedisStore::mget`), per format.
//! 2. The real sidecar, one per format (`--item-store redis`, the demo model), answering
//!    requests of 1,000 ids its item cache has never seen: the server's `took_us`; then the
//!    same request again (item cache hot).
//!
//! Starts its own `redis-server` (no persistence) on a loopback port, fills it with N items of
//! 30 features under two key prefixes (`t:` text, `b:` binary), runs R rounds alternating
//! which format goes first.
//!
//! ```sh
//! cargo build --release -p rescore-sidecar --bin rescore-sidecar --example redis_values
//! target/release/examples/redis_values target/release/rescore-sidecar 200000 150
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rescore_features::{RedisConfig, RedisStore, Update, UpdateOp, ValueFormat};

const FEATURES: usize = 30;
const IDS: usize = 1000;
const FORMATS: [(ValueFormat, &str); 2] = [(ValueFormat::Text, "t:"), (ValueFormat::Binary, "b:")];

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The store_bench example's synthetic values: integers, prices with cents, full doubles.
fn value(rng: &mut rand_chacha::ChaCha8Rng, f: usize) -> f64 {
    match f % 3 {
        0 => rng.gen_range(0..5000) as f64,
        1 => (rng.gen_range(0.0..10_000.0f64) * 100.0).round() / 100.0,
        _ => rng.gen::<f64>() * 1e3 - 500.0,
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn summary(name: &str, mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "{name}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms (n = {})",
        quantile(&v, 0.5),
        quantile(&v, 0.9),
        quantile(&v, 0.99),
        v.len()
    )
}

/// Starts the sidecar; returns it and its address once it is ready. Its log is drained on a
/// thread of its own (a full pipe would block it).
fn sidecar(binary: &str, config: &std::path::Path) -> anyhow::Result<(Killed, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut child = Command::new(binary)
        .args(["--models", root.join("models").to_str().unwrap_or("models")])
        .args(["--config", config.to_str().unwrap_or_default()])
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("stderr"))?;
    let child = Killed(child);
    let mut lines = BufReader::new(stderr).lines();
    let mut addr = None;
    for line in lines.by_ref() {
        let line = line?;
        if let Some(at) = line.find("listen=") {
            addr = line[at + 7..].split_whitespace().next().map(str::to_string);
        }
        if line.trim_end().ends_with("ready") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok((
        child,
        addr.ok_or_else(|| anyhow::anyhow!("no listen address logged"))?,
    ))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, binary, n, rounds] = &args[..] else {
        anyhow::bail!("usage: redis_values SIDECAR_BINARY N_ITEMS ROUNDS");
    };
    let n: usize = n.parse()?;
    let rounds: usize = rounds.parse()?;
    anyhow::ensure!(
        rounds * IDS <= n,
        "ROUNDS x 1000 must not exceed N_ITEMS (fresh ids per round)"
    );
    let port = free_port()?;
    let _redis = Killed(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()?,
    );
    std::thread::sleep(Duration::from_millis(300));
    let url = format!("redis://127.0.0.1:{port}/0");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let names: Vec<String> = (0..FEATURES).map(|f| format!("f{f}")).collect();
    let stores: Vec<RedisStore> = FORMATS
        .iter()
        .map(|(format, prefix)| {
            let _guard = runtime.enter();
            RedisStore::new(&RedisConfig {
                url: url.clone(),
                key_prefix: prefix.to_string(),
                write_format: *format,
                timeout_ms: 5000,
                ..RedisConfig::default()
            })
        })
        .collect::<Result<_, _>>()?;

    // Fill: the same items under both prefixes.
    let started = Instant::now();
    runtime.block_on(async {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
        let mut batch = Vec::with_capacity(500);
        for i in 0..n {
            let features = names
                .iter()
                .enumerate()
                .map(|(f, name)| (name.clone(), value(&mut rng, f)))
                .collect();
            batch.push(Update {
                id: format!("item{i}"),
                version: 1,
                op: UpdateOp::Put(features),
                line: i + 1,
            });
            if batch.len() == 500 || i + 1 == n {
                for store in &stores {
                    store.apply(&batch).await?;
                }
                batch.clear();
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    eprintln!(
        "filled {n} items x 2 formats in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let client = redis::Client::open(url.as_str())?;
    let mut connection = client.get_connection()?;
    for (format, prefix) in FORMATS {
        let mut bytes = 0usize;
        for i in 0..1000 {
            let len: usize = redis::cmd("STRLEN")
                .arg(format!("{prefix}item{}", i * (n / 1000)))
                .query(&mut connection)?;
            bytes += len;
        }
        println!(
            "{format:?}: {:.0} bytes per value (mean of 1,000)",
            bytes as f64 / 1000.0
        );
    }

    // 1. One MGET of 1,000 random ids, decoded.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let all: Vec<usize> = (0..n).collect();
    let mut mget_ms = [Vec::new(), Vec::new()];
    for round in 0..rounds + 5 {
        let ids: Vec<Box<str>> = all
            .choose_multiple(&mut rng, IDS)
            .map(|i| format!("item{i}").into_boxed_str())
            .collect();
        for k in 0..2 {
            let which = (round + k) % 2;
            let started = Instant::now();
            let got = runtime.block_on(stores[which].mget(&ids))?;
            let ms = started.elapsed().as_secs_f64() * 1e3;
            anyhow::ensure!(got.iter().all(Option::is_some), "every id is stored");
            if round >= 5 {
                mget_ms[which].push(ms);
            }
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average after MGETs: {}", load.trim());
    for (k, (format, _)) in FORMATS.iter().enumerate() {
        println!(
            "{}",
            summary(
                &format!("MGET 1000 + decode, {format:?}"),
                mget_ms[k].clone()
            )
        );
    }

    // 2. The real sidecar per format: took_us for 1,000 ids it never saw, then again (hot).
    let tmp = std::env::temp_dir().join(format!("redis-values-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let mut sidecars = Vec::new();
    for (format, prefix) in FORMATS {
        let config = tmp.join(format!("{format:?}.toml"));
        std::fs::write(
            &config,
            format!(
                "[item_store]\nbackend = \"redis\"\n[item_store.redis]\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\ntimeout_ms = 1000\n"
            ),
        )?;
        sidecars.push(sidecar(binary, &config)?);
    }
    let agent = ureq::AgentBuilder::new().build();
    let mut order = all.clone();
    order.shuffle(&mut rng);
    let mut cold = [Vec::new(), Vec::new()];
    let mut hot = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        let hits: Vec<serde_json::Value> = order[round * IDS..(round + 1) * IDS]
            .iter()
            .map(|i| serde_json::json!({"id": format!("item{i}"), "score": 1.0}))
            .collect();
        let body = serde_json::json!({"model": "marketplace", "hits": hits, "timeout_ms": 5000})
            .to_string();
        for k in 0..2 {
            let which = (round + k) % 2;
            let url = format!("http://{}/v1/rescore", sidecars[which].1);
            for pass in [&mut cold, &mut hot] {
                let answer: serde_json::Value = agent
                    .post(&url)
                    .set("content-type", "application/json")
                    .send_string(&body)?
                    .into_json()?;
                anyhow::ensure!(answer["fallback"].is_null(), "fallback: {answer}");
                let took = answer["took_us"].as_f64().unwrap_or(f64::NAN) / 1e3;
                pass[which].push(took);
            }
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average after requests: {}", load.trim());
    for (k, (format, _)) in FORMATS.iter().enumerate() {
        println!(
            "{}",
            summary(
                &format!("sidecar took_us, 1000 ids, cache cold, {format:?}"),
                cold[k].clone()
            )
        );
        println!(
            "{}",
            summary(
                &format!("sidecar took_us, 1000 ids, cache hot, {format:?}"),
                hot[k].clone()
            )
        );
    }
    for (k, (format, _)) in FORMATS.iter().enumerate() {
        let text = agent
            .get(&format!("http://{}/metrics", sidecars[k].1))
            .call()?
            .into_string()?;
        let missing: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("rescore_item_store_fallbacks_total"))
            .collect();
        println!("{format:?} sidecar: {missing:?}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

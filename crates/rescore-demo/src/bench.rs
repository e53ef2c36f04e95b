//! `rescore-demo bench-engine`: the demo's searches through a search engine with the rescorer
//! plugin, timed: without rescore and with the `sidecar` rescore at several windows, at several
//! client concurrencies, side by side in one run (bench/engine-demo.sh starts the nodes). Not a
//! test: it checks only that every search succeeded without a fallback.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

use crate::engine::{search, search_body, stats, Engine, Flavor, INDEX};
use crate::metrics::percentile;
use crate::world::{Query, World};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Base URL of the search engine (plugin installed, catalogue indexed by `rescore-demo index`).
    #[arg(long, default_value = "http://127.0.0.1:9200")]
    engine: String,
    /// Which engine is expected there (detected when left out).
    #[arg(long, value_enum)]
    flavor: Option<Flavor>,
    #[arg(long, default_value = INDEX)]
    index: String,
    /// Seed of the world the index was built from.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Rescore windows to time (hits per shard); 0 = the search without rescore.
    #[arg(long, value_delimiter = ',', default_value = "0,10,100,1000")]
    windows: Vec<u32>,
    /// Client concurrencies (threads, each on its own keep-alive connection).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    concurrency: Vec<usize>,
    /// Measured searches per (window, concurrency) cell.
    #[arg(long, default_value_t = 400)]
    searches: usize,
    /// Unmeasured searches before each cell.
    #[arg(long, default_value_t = 40)]
    warmup: usize,
    /// The rescorer's timeout_ms.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
}

/// The model's item features, read by the plugin from doc values and sent inline (the item
/// store only knows the first 10,000 ids; a bigger catalogue's copies are not in it).
pub fn inline_fields() -> Value {
    json!({
        "category": "category_id", "brand": "brand_id", "price": "price",
        "condition": "condition", "seller_rating": "seller_rating", "age_days": "age_days",
        "popularity": "popularity"
    })
}

struct Cell {
    window: u32,
    concurrency: usize,
    client_ms: Vec<f64>,
    took_ms: Vec<f64>,
    wall_s: f64,
    failures: usize,
    calls: u64,
    fallbacks: u64,
    call_us: u64,
    took_us: u64,
}

/// What one run of a cell gave: (client ms, took ms) per successful search, wall time, failures.
struct Timed {
    times: Vec<(f64, f64)>,
    wall_s: f64,
    failures: usize,
}

fn run_cell(
    args: &BenchArgs,
    queries: &[&Query],
    window: u32,
    concurrency: usize,
    n: usize,
) -> Result<Timed> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(n));
    let failures = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for _ in 0..concurrency {
            handles.push(scope.spawn(|| -> Result<()> {
                let engine = Engine::new(
                    &args.engine,
                    Duration::from_millis(args.timeout_ms + 30_000),
                )?;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok(());
                    }
                    let q = queries[i % queries.len()];
                    let mut body = search_body(
                        q,
                        args.seed,
                        (window > 0).then_some((window, args.timeout_ms)),
                        10,
                    );
                    if window > 0 {
                        body["rescore"]["sidecar"]["fields"] = inline_fields();
                    }
                    match search(&engine, &args.index, &body, usize::MAX) {
                        Ok(a) => results
                            .lock()
                            .expect("results lock")
                            .push((a.client_ms, a.took_ms)),
                        Err(e) => {
                            if failures.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("window {window} query {}: {e:#}", q.id);
                            }
                        }
                    }
                }
            }));
        }
        for h in handles {
            h.join().expect("bench thread panicked")?;
        }
        Ok(())
    })?;
    let wall = start.elapsed().as_secs_f64();
    Ok(Timed {
        times: results.into_inner().expect("results lock"),
        wall_s: wall,
        failures: failures.into_inner(),
    })
}

pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    ensure!(
        !args.windows.is_empty() && !args.concurrency.is_empty(),
        "--windows and --concurrency need at least one value"
    );
    ensure!(
        args.concurrency.iter().all(|&c| (1..=256).contains(&c)),
        "--concurrency values must be 1..256"
    );
    ensure!(args.searches > 0, "--searches must be at least 1");
    let engine = Engine::new(&args.engine, Duration::from_secs(60))?;
    let engine_name = engine.check_flavor(args.flavor, Duration::ZERO)?;
    let count = engine
        .call("GET", &format!("/{}/_count", args.index), None)
        .with_context(|| format!("index {} (run `rescore-demo index` first)", args.index))?
        ["count"]
        .as_u64()
        .unwrap_or(0);
    let world = World::generate(args.seed);
    let queries: Vec<&Query> = world.held_out_queries().collect();
    println!(
        "{engine_name} at {}, index {} ({count} documents); {} held-out queries in turn, size 10; {} measured searches per cell after {} warm-up; inline features (fields), timeout_ms {}",
        args.engine, args.index, queries.len(), args.searches, args.warmup, args.timeout_ms
    );

    // A first warm-up through every window (JIT, caches, the index just written), then each
    // cell's own before it is measured.
    for &window in &args.windows {
        run_cell(args, &queries, window, 1, args.warmup)?;
    }
    let mut cells = Vec::new();
    for &concurrency in &args.concurrency {
        for &window in &args.windows {
            run_cell(args, &queries, window, concurrency, args.warmup)?;
            let before = stats(&engine)?;
            let Timed {
                times: results,
                wall_s,
                failures,
            } = run_cell(args, &queries, window, concurrency, args.searches)?;
            let after = stats(&engine)?;
            let fallbacks =
                after.fallbacks.values().sum::<u64>() - before.fallbacks.values().sum::<u64>();
            let mut client_ms: Vec<f64> = results.iter().map(|r| r.0).collect();
            let mut took_ms: Vec<f64> = results.iter().map(|r| r.1).collect();
            client_ms.sort_by(f64::total_cmp);
            took_ms.sort_by(f64::total_cmp);
            cells.push(Cell {
                window,
                concurrency,
                client_ms,
                took_ms,
                wall_s,
                failures,
                calls: after.calls - before.calls,
                fallbacks,
                call_us: after.call_micros_total - before.call_micros_total,
                took_us: after.sidecar_took_micros_total - before.sidecar_took_micros_total,
            });
        }
    }

    println!();
    println!("| window | conc. | searches/s | p50 ms | p95 ms | p99 ms | took p50 / p99 ms | added p50 ms | sidecar calls | per call: bridge µs | of which sidecar took_us | HTTP + JSON µs | failed | fallbacks |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut ok = true;
    for c in &cells {
        let base = cells
            .iter()
            .find(|b| b.window == 0 && b.concurrency == c.concurrency)
            .map(|b| percentile(&b.client_ms, 50.0));
        let p50 = percentile(&c.client_ms, 50.0);
        let added = match (c.window, base) {
            (0, _) | (_, None) => "-".to_owned(),
            (_, Some(b)) => format!("{:+.2}", p50 - b),
        };
        let per_call = |us: u64| {
            if c.calls == 0 {
                "-".to_owned()
            } else {
                format!("{:.0}", us as f64 / c.calls as f64)
            }
        };
        println!(
            "| {} | {} | {:.1} | {p50:.2} | {:.2} | {:.2} | {:.0} / {:.0} | {added} | {} | {} | {} | {} | {} | {} |",
            if c.window == 0 { "none".to_owned() } else { c.window.to_string() },
            c.concurrency,
            c.client_ms.len() as f64 / c.wall_s,
            percentile(&c.client_ms, 95.0),
            percentile(&c.client_ms, 99.0),
            percentile(&c.took_ms, 50.0),
            percentile(&c.took_ms, 99.0),
            c.calls,
            per_call(c.call_us),
            per_call(c.took_us),
            per_call(c.call_us.saturating_sub(c.took_us)),
            c.failures,
            c.fallbacks,
        );
        ok &= c.failures == 0 && c.fallbacks == 0;
    }
    println!("per call: the plugin's counters (GET /_sidecar/stats): the whole call as the bridge timed it, the sidecar's own took_us, and the difference (HTTP round trip, JSON both ways); 2 calls per search (one per shard)");
    if !ok {
        eprintln!("bench: some searches failed or fell back (see the table)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::index_body;

    #[test]
    fn inline_fields_cover_the_item_features_with_numeric_doc_values() {
        let world = World::generate(42);
        let fields = inline_fields();
        let fields = fields.as_object().expect("object form");
        let mapping = index_body();
        let names = [
            "category",
            "brand",
            "price",
            "condition",
            "seller_rating",
            "age_days",
            "popularity",
        ];
        assert_eq!(fields.len(), names.len());
        for name in names {
            // a feature the item store would have given ...
            assert!(world.items[0].features.get(name).is_some(), "{name}");
            // ... read from a numeric field of the mapping
            let field = fields[name].as_str().expect(name);
            let ty = mapping["mappings"]["properties"][field]["type"]
                .as_str()
                .unwrap_or_else(|| panic!("{field} is not mapped"));
            assert!(
                ["byte", "short", "integer", "float"].contains(&ty),
                "{field}: {ty}"
            );
        }
    }
}

//! Closed-loop load on a running sidecar, as many engine search threads would put it: N client
//! threads, each on its own keep-alive connection, POST a request of H hits (ids drawn from the
//! demo catalogue, `i0`..`i9999`), wait `think` ms (the engine's other work between calls), and
//! repeat for S seconds. Prints one JSON line: answers/s, scored answers/s, answers by fallback
//! reason, and latency quantiles of all answers, of scored ones and of fallbacks, as the client
//! measured them and as the sidecar did (`took_us`: the serving layer only; the difference is
//! connection queueing, body reading, parsing and the client's own scheduling).
//! `cargo run --release -p rescore-sidecar --example rescore_load -- ADDR CLIENTS HITS SECONDS TIMEOUT_MS [THINK_MS] [MODEL]`
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(serde::Deserialize)]
struct Answer {
    fallback: Option<String>,
    /// The sidecar's own time (from the request's arrival to the answer), µs.
    took_us: u64,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((q * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        anyhow::bail!(
            "usage: rescore_load ADDR CLIENTS HITS SECONDS TIMEOUT_MS [THINK_MS] [MODEL]"
        );
    }
    let addr = args[1].clone();
    let clients: usize = args[2].parse()?;
    let hits: usize = args[3].parse()?;
    let seconds: f64 = args[4].parse()?;
    let timeout_ms: u64 = args[5].parse()?;
    let think = Duration::from_millis(args.get(6).map_or(Ok(5), |s| s.parse())?);
    let model = args.get(7).cloned().unwrap_or_else(|| "marketplace".into());
    let url = format!("http://{addr}/v1/rescore");
    let stop_at = Instant::now() + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (url, model) = (url.clone(), model.clone());
            std::thread::spawn(move || -> Vec<(f64, Option<f64>, Option<String>)> {
                // a fixed pseudo-random id set per client (xorshift): deterministic, no extra crate
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1);
                let ids: Vec<String> = (0..hits)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        format!("i{}", x % 10_000)
                    })
                    .collect();
                let body = serde_json::json!({
                    "model": model,
                    "query": {"features": {"intent_category": 3, "user_budget": 80, "user_brand": 5}},
                    "hits": ids.iter().enumerate().map(|(i, id)| serde_json::json!({"id": id, "score": 10.0 - i as f64 * 0.001})).collect::<Vec<_>>(),
                    "timeout_ms": timeout_ms,
                })
                .to_string();
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_millis(timeout_ms * 20 + 1000))
                    .build();
                let mut out = Vec::new();
                while Instant::now() < stop_at {
                    let t0 = Instant::now();
                    let answer = agent
                        .post(&url)
                        .set("content-type", "application/json")
                        .send_string(&body)
                        .ok()
                        .and_then(|r| r.into_json::<Answer>().ok());
                    let ms = t0.elapsed().as_secs_f64() * 1e3;
                    out.push(match answer {
                        Some(a) => (ms, Some(a.took_us as f64 / 1e3), a.fallback),
                        None => (ms, None, Some("client_error".into())),
                    });
                    std::thread::sleep(think);
                }
                out
            })
        })
        .collect();
    let started = Instant::now();
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().expect("client thread"));
    }
    let wall = started.elapsed().as_secs_f64().max(seconds);
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    let mut every: Vec<f64> = Vec::new();
    let mut scored: Vec<f64> = Vec::new();
    let mut fallbacks: Vec<f64> = Vec::new();
    let mut server_all: Vec<f64> = Vec::new();
    let mut server_fallbacks: Vec<f64> = Vec::new();
    for (ms, server_ms, reason) in &all {
        every.push(*ms);
        server_all.extend(*server_ms);
        match reason {
            None => scored.push(*ms),
            Some(r) => {
                fallbacks.push(*ms);
                server_fallbacks.extend(*server_ms);
                *by_reason.entry(r.clone()).or_default() += 1;
            }
        }
    }
    for v in [
        &mut every,
        &mut scored,
        &mut fallbacks,
        &mut server_all,
        &mut server_fallbacks,
    ] {
        v.sort_by(f64::total_cmp);
    }
    let summary = serde_json::json!({
        "clients": clients, "hits": hits, "timeout_ms": timeout_ms, "think_ms": think.as_millis() as u64,
        "seconds": wall, "answers": every.len(), "answers_per_s": every.len() as f64 / wall,
        "scored_per_s": scored.len() as f64 / wall, "fallbacks": by_reason,
        "all_p50_ms": quantile(&every, 0.5), "all_p99_ms": quantile(&every, 0.99),
        "scored_p50_ms": quantile(&scored, 0.5), "scored_p99_ms": quantile(&scored, 0.99),
        "fallback_p50_ms": quantile(&fallbacks, 0.5), "fallback_p99_ms": quantile(&fallbacks, 0.99),
        "server_p50_ms": quantile(&server_all, 0.5), "server_p99_ms": quantile(&server_all, 0.99),
        "server_fallback_p50_ms": quantile(&server_fallbacks, 0.5),
        "server_fallback_p99_ms": quantile(&server_fallbacks, 0.99),
    });
    println!("{summary}");
    Ok(())
}

//! `rescore-demo replay`: send the held-out queries to a running sidecar and measure what its
//! re-ranking is worth (NDCG@10 against the BM25 order) and what it costs (latency).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lightgbm3::Booster;
use rescore_api::{Hit, QueryContext, RescoreRequest, RescoreResponse};

use crate::engine::{run_replay, EngineReplay, Flavor, INDEX};
use crate::metrics::{mean_ndcg, order_by_scores, percentile};
use crate::train::{predict, MODEL_NAME};
use crate::world::{item_id, user_id, Query, World};

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Base URL of the sidecar.
    #[arg(long, default_value = "http://127.0.0.1:9209")]
    url: String,
    /// Seed the model was built with (regenerates the same world).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// How many held-out queries to send (at most the 500 held out).
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// Fail (exit 1) when re-ranked NDCG@10 is not at least baseline + this.
    #[arg(long, default_value_t = 0.05)]
    min_gain: f64,
    /// Per-request budget sent as `timeout_ms`.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Models root; if <models-dir>/marketplace/1/model.txt exists, the sidecar's scores are
    /// compared with the file's local predictions (information only).
    #[arg(long, default_value = "models")]
    models_dir: PathBuf,
    /// Replay through a search engine at this URL instead (Elasticsearch or OpenSearch with the
    /// rescore-sidecar plugin, the catalogue indexed by `rescore-demo index`): each query is
    /// searched without and with the `sidecar` rescore clause; `--url` is then unused.
    #[arg(long)]
    engine: Option<String>,
    /// With --engine: which engine is expected there (detected when left out).
    #[arg(long, value_enum, requires = "engine")]
    flavor: Option<Flavor>,
    /// With --engine: the index `rescore-demo index` wrote.
    #[arg(long, default_value = INDEX, requires = "engine")]
    index: String,
    /// With --engine: the rescore window_size (hits rescored per shard).
    #[arg(long, default_value_t = 100, requires = "engine")]
    window: u32,
    /// With --engine: unmeasured searches (each both ways) before the measured ones.
    #[arg(long, default_value_t = 20, requires = "engine")]
    warmup: usize,
    /// Evaluate the gamed-listing guard instead: the sidecar serves the items of
    /// `rescore-demo gamed-items --gamed-share X`; each query is sent with guard policy off, flag
    /// and cap, and the issue 19 targets are checked (docs/demo.md).
    #[arg(long, default_value_t = 0.0, conflicts_with = "engine")]
    gamed_share: f64,
}

/// The request for one query: the BM25 candidates as hits, the client's query features.
pub fn request_for(query: &Query, timeout_ms: u64) -> RescoreRequest {
    RescoreRequest {
        model: Some(MODEL_NAME.to_owned()),
        query: Some(QueryContext {
            text: Some(query.text.clone()),
            user_id: Some(user_id(query.user)),
            features: query.features.to_map(),
            ..Default::default()
        }),
        hits: query
            .candidates
            .iter()
            .map(|c| Hit {
                id: item_id(c.item),
                score: c.score,
                features: Default::default(),
            })
            .collect(),
        timeout_ms: Some(timeout_ms),
        context: Default::default(),
        request_id: None,
        guard: None,
    }
}

/// `replay --gamed-share`: the guard's table and targets (crate::gaming).
fn run_guard_evaluation(args: &ReplayArgs, endpoint: &str) -> Result<ExitCode> {
    println!(
        "guard evaluation: {} held-out queries of the world with {} gamed listings (seed {}) to {endpoint}",
        args.queries, args.gamed_share, args.seed
    );
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_millis(args.timeout_ms + 5_000))
        .build();
    let problems = crate::gaming::evaluate(
        &agent,
        endpoint,
        args.seed,
        args.gamed_share,
        args.queries,
        args.timeout_ms,
    )?;
    if !problems.is_empty() {
        eprintln!("guard evaluation FAILED: {}", problems.join(", "));
        return Ok(ExitCode::FAILURE);
    }
    println!("guard evaluation OK");
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: &ReplayArgs) -> Result<ExitCode> {
    if let Some(engine) = &args.engine {
        return run_replay(&EngineReplay {
            engine,
            flavor: args.flavor,
            index: &args.index,
            seed: args.seed,
            queries: args.queries,
            min_gain: args.min_gain,
            timeout_ms: args.timeout_ms,
            window: args.window,
            warmup: args.warmup,
        });
    }
    let endpoint = format!("{}/v1/rescore", args.url.trim_end_matches('/'));
    if args.gamed_share > 0.0 {
        return run_guard_evaluation(args, &endpoint);
    }
    let world = World::generate(args.seed);
    let queries: Vec<&Query> = world.held_out_queries().take(args.queries).collect();
    println!(
        "replaying {} held-out queries (seed {}) to {endpoint}",
        queries.len(),
        args.seed
    );

    // One agent: its connection pool keeps the connection alive between requests.
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_millis(args.timeout_ms + 5_000))
        .build();
    let mut answered: Vec<(&Query, Vec<f64>)> = Vec::new();
    let mut versions: Vec<Option<String>> = Vec::new();
    let mut latencies_ms = Vec::new();
    let mut took_us = Vec::new();
    let mut failures = 0usize;
    let mut fallbacks: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut served_by: BTreeMap<String, usize> = BTreeMap::new();
    for query in &queries {
        let request = request_for(query, args.timeout_ms);
        let start = Instant::now();
        let result = agent
            .post(&endpoint)
            .send_json(&request)
            .map_err(anyhow::Error::from)
            .and_then(|r| r.into_json::<RescoreResponse>().map_err(Into::into));
        latencies_ms.push(start.elapsed().as_secs_f64() * 1e3);
        let response = match result {
            Ok(r) if r.scores.len() == query.candidates.len() => r,
            Ok(r) => {
                failures += 1;
                eprintln!(
                    "query {}: {} scores for {} hits",
                    query.id,
                    r.scores.len(),
                    query.candidates.len()
                );
                continue;
            }
            Err(e) => {
                failures += 1;
                eprintln!("query {}: {e:#}", query.id);
                continue;
            }
        };
        if let Some(reason) = response.fallback {
            *fallbacks.entry(reason.as_str()).or_default() += 1;
        }
        let who = format!(
            "{}/{}/{}",
            response.model.as_deref().unwrap_or("-"),
            response.version.as_deref().unwrap_or("-"),
            response.variant.as_deref().unwrap_or("-")
        );
        *served_by.entry(who).or_default() += 1;
        took_us.push(response.took_us as f64);
        versions.push(
            response
                .version
                .clone()
                .filter(|_| response.fallback.is_none()),
        );
        answered.push((query, response.scores));
    }

    let labels: Vec<Vec<u8>> = answered
        .iter()
        .map(|(q, _)| q.candidates.iter().map(|c| c.label).collect())
        .collect();
    let baseline: Vec<Vec<f64>> = answered
        .iter()
        .map(|(q, _)| q.candidates.iter().map(|c| c.score).collect())
        .collect();
    let (base, skipped) = mean_ndcg(
        labels
            .iter()
            .zip(&baseline)
            .map(|(l, s)| (l.as_slice(), s.as_slice())),
        10,
    );
    let (reranked, _) = mean_ndcg(
        labels
            .iter()
            .zip(&answered)
            .map(|(l, (_, s))| (l.as_slice(), s.as_slice())),
        10,
    );
    let gain = reranked - base;
    let n_fallbacks: usize = fallbacks.values().sum();

    println!("NDCG@10 baseline (BM25 order) : {base:.4}");
    println!("NDCG@10 re-ranked (sidecar)   : {reranked:.4}");
    println!(
        "gain                          : {gain:+.4} (required {:+.4})",
        args.min_gain
    );
    println!(
        "queries                       : {} answered, {failures} failed, {skipped} without any relevant candidate (excluded from NDCG)",
        answered.len()
    );
    println!("fallbacks                     : {n_fallbacks} {fallbacks:?}");
    println!("served by (model/version/variant): {served_by:?}");
    latencies_ms.sort_by(f64::total_cmp);
    took_us.sort_by(f64::total_cmp);
    println!(
        "latency, client round trip ms : mean {:.3}  p50 {:.3}  p99 {:.3}  max {:.3}",
        mean(&latencies_ms),
        percentile(&latencies_ms, 50.0),
        percentile(&latencies_ms, 99.0),
        latencies_ms.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "latency, server took_us       : mean {:.0}  p50 {:.0}  p99 {:.0}",
        mean(&took_us),
        percentile(&took_us, 50.0),
        percentile(&took_us, 99.0)
    );
    compare_with_local_model(args, &world, &answered, &versions)?;

    let mut problems = Vec::new();
    if failures > 0 {
        problems.push(format!("{failures} failed requests"));
    }
    if n_fallbacks > 0 {
        problems.push(format!("{n_fallbacks} fallbacks"));
    }
    if answered.is_empty() {
        problems.push("no query answered".to_owned());
    } else if gain < args.min_gain {
        problems.push(format!("gain {gain:+.4} below {:+.4}", args.min_gain));
    }
    if !problems.is_empty() {
        eprintln!("replay FAILED: {}", problems.join(", "));
        return Ok(ExitCode::FAILURE);
    }
    println!("replay OK");
    Ok(ExitCode::SUCCESS)
}

/// If the model files are at hand, scores the same hits locally with the version that answered
/// each query and reports how far the sidecar's scores are from it. A large difference means
/// the sidecar resolved some feature differently from training (or serves another model).
fn compare_with_local_model(
    args: &ReplayArgs,
    world: &World,
    answered: &[(&Query, Vec<f64>)],
    versions: &[Option<String>],
) -> Result<()> {
    let mut by_version: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, v) in versions.iter().enumerate() {
        if let Some(v) = v {
            by_version.entry(v.as_str()).or_default().push(i);
        }
    }
    for (version, indices) in by_version {
        let path = args
            .models_dir
            .join(MODEL_NAME)
            .join(version)
            .join("model.txt");
        if !path.is_file() {
            continue;
        }
        let path_str = path.to_str().context("model path is not UTF-8")?;
        let booster = Booster::from_file(path_str).context("loading the local model")?;
        let local = predict(&booster, world, indices.iter().map(|&i| answered[i].0))?;
        let mut max_diff = 0.0f64;
        let mut reordered = 0usize;
        for (&i, local) in indices.iter().zip(&local) {
            let remote = &answered[i].1;
            for (r, l) in remote.iter().zip(local) {
                max_diff = max_diff.max((r - l).abs());
            }
            if order_by_scores(remote) != order_by_scores(local) {
                reordered += 1;
            }
        }
        println!(
            "vs local {} ({} queries): max |score diff| {max_diff:.3e}, {reordered} queries ordered differently",
            path.display(),
            indices.len()
        );
    }
    Ok(())
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_matches_the_contract() {
        let world = World::generate(42);
        let query = world
            .held_out_queries()
            .find(|q| q.features.user_budget.is_none())
            .expect("some user without a budget");
        let json = serde_json::to_value(request_for(query, 1000)).expect("serialise");
        assert_eq!(json["model"], "marketplace");
        assert_eq!(json["timeout_ms"], 1000);
        assert_eq!(json["hits"].as_array().map(Vec::len), Some(100));
        assert!(json["hits"][0]["id"]
            .as_str()
            .is_some_and(|s| s.starts_with('i')));
        let features = &json["query"]["features"];
        assert!(features["intent_category"].is_number());
        // Unknown values are left out, so the sidecar sees them as missing.
        assert!(features.get("user_budget").is_none());
    }
}

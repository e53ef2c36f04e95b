//! The demo through a real search engine: `rescore-demo index` puts the marketplace's catalogue
//! into an Elasticsearch or OpenSearch index, and `rescore-demo replay --engine` sends the
//! held-out queries as real searches, once with the engine's own first pass only and once with
//! the `sidecar` rescorer of es-plugin-bridge, and compares NDCG@10 against the world's relevance.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use crate::catalog::CATEGORIES;
use crate::metrics::{dcg_at, percentile};
use crate::train::MODEL_NAME;
use crate::world::{item_id, user_id, Query, QueryKind, World};

/// Default index name.
pub const INDEX: &str = "marketplace";
/// Primary shards of the demo index: more than one, so that rescoring is shard-local as in any
/// real cluster (each shard rescores its own top `window_size` hits).
pub const SHARDS: u32 = 2;
/// Documents per bulk request.
const BULK_DOCS: usize = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavor {
    Elasticsearch,
    Opensearch,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Flavor::Elasticsearch => "Elasticsearch",
            Flavor::Opensearch => "OpenSearch",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct IndexArgs {
    /// Base URL of the search engine.
    #[arg(long, default_value = "http://127.0.0.1:9200")]
    engine: String,
    /// Which engine is expected there; checked against `GET /` (detected when left out).
    #[arg(long, value_enum)]
    flavor: Option<Flavor>,
    /// Index to create.
    #[arg(long, default_value = INDEX)]
    index: String,
    /// Seed of the synthetic world (the one the model was built with).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Delete the index first if it exists (otherwise an existing index is an error).
    #[arg(long)]
    replace: bool,
    /// Seconds to wait for the engine to answer `GET /` before giving up.
    #[arg(long, default_value_t = 0)]
    wait_secs: u64,
    /// Index this many copies of the catalogue (documents i0 .. i<copies x 10,000 - 1>, copy k of
    /// item n is document n + k x 10,000): a bigger index for the engine benchmark. Only the
    /// first copy's ids are in demo/items.jsonl.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    copies: u64,
}

/// The index settings and mapping: what a search engineer would write for this catalogue.
pub fn index_body() -> Value {
    json!({
        "settings": {
            "index": {
                "number_of_shards": SHARDS,
                "number_of_replicas": 0,
                // Loaded in bulk, then refreshed once; set back to 1s afterwards.
                "refresh_interval": "-1"
            }
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                // The rescorer's id_field: the item-store key, read from doc values.
                "item_id": {"type": "keyword"},
                // The only full-text field: BM25 with the standard analyzer.
                "title": {"type": "text", "analyzer": "standard"},
                // Facets and filters.
                "category": {"type": "keyword"},
                "brand": {"type": "keyword"},
                // The same as the model's numeric ids (for the rescorer's `fields`).
                "category_id": {"type": "short"},
                "brand_id": {"type": "short"},
                // float, not scaled_float: scaled_float lives in the mapper-extras module, which
                // the engines' minimal integ-test distributions leave out.
                "price": {"type": "float"},
                "seller_rating": {"type": "float"},
                // 0 for parts, 1 fair, 2 good, 3 very good, 4 new with tags.
                "condition": {"type": "byte"},
                "age_days": {"type": "short"},
                // Views.
                "popularity": {"type": "integer"}
            }
        }
    })
}

/// Document `n`: item `n` of the world, or for a catalogue of several copies (`--copies`),
/// a copy of item `n % items` under its own id `i<n>`.
pub fn document(world: &World, n: usize) -> Value {
    let item = &world.items[n % world.items.len()];
    let f = &item.features;
    json!({
        "item_id": item_id(n),
        "title": item.title.join(" "),
        "category": CATEGORIES[f.category as usize].name,
        "brand": world.brands[f.brand as usize],
        "category_id": f.category,
        "brand_id": f.brand,
        "price": f.price,
        "seller_rating": f.seller_rating,
        "condition": f.condition,
        "age_days": f.age_days,
        "popularity": f.popularity,
    })
}

/// A small JSON-over-HTTP client for the engine's REST API.
pub(crate) struct Engine {
    base: String,
    agent: ureq::Agent,
}

impl Engine {
    pub(crate) fn new(base: &str, timeout: Duration) -> Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        ensure!(
            base.starts_with("http://") || base.starts_with("https://"),
            "--engine must be an http:// or https:// URL, got {base:?}"
        );
        let agent = ureq::AgentBuilder::new().timeout(timeout).build();
        Ok(Engine { base, agent })
    }

    /// Sends one request; a non-2xx status is an error carrying the engine's answer.
    pub(crate) fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        self.call_raw(
            method,
            path,
            body.map(|b| ("application/json", b.to_string())),
        )
    }

    fn call_raw(&self, method: &str, path: &str, body: Option<(&str, String)>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let request = self.agent.request(method, &url);
        let result = match body {
            Some((content_type, body)) => {
                request.set("content-type", content_type).send_string(&body)
            }
            None => request.call(),
        };
        match result {
            Ok(response) => response
                .into_json()
                .with_context(|| format!("{method} {url}: the answer is not JSON")),
            Err(ureq::Error::Status(code, response)) => {
                let text = response.into_string().unwrap_or_default();
                Err(anyhow::Error::new(HttpStatus {
                    code,
                    message: format!("{method} {url}: HTTP {code}: {}", truncate(&text, 600)),
                }))
            }
            Err(e) => Err(anyhow::Error::new(e).context(format!("{method} {url}"))),
        }
    }

    /// Which engine and version answers: `GET /`, or the local node's info where `GET /` is not
    /// served (Elasticsearch's minimal integ-test distribution has no `rest-root` module).
    fn identify(&self, wait: Duration) -> Result<(Flavor, String)> {
        let deadline = Instant::now() + wait;
        let root = loop {
            match self.call("GET", "/", None) {
                Ok(v) => break v,
                Err(e) if status_of(&e).is_some() => {
                    let nodes = self.call("GET", "/_nodes/_local", None)?;
                    let node = nodes["nodes"]
                        .as_object()
                        .and_then(|n| n.values().next())
                        .with_context(|| format!("GET {}/_nodes/_local: no node", self.base))?;
                    // Elasticsearch reports its build flavor and transport version, OpenSearch
                    // neither.
                    let distribution = if node.get("build_flavor").is_some()
                        || node.get("transport_version").is_some()
                    {
                        "elasticsearch"
                    } else {
                        "opensearch"
                    };
                    break json!({"version": {"number": node["version"],
                                             "distribution": distribution}});
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(e.context(format!("no search engine answers at {}", self.base)))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        };
        let version = root["version"]["number"]
            .as_str()
            .with_context(|| format!("GET {}/ has no version.number: {root}", self.base))?
            .to_owned();
        let flavor = if root["version"]["distribution"] == "opensearch" {
            Flavor::Opensearch
        } else {
            Flavor::Elasticsearch
        };
        Ok((flavor, version))
    }

    pub(crate) fn check_flavor(&self, expected: Option<Flavor>, wait: Duration) -> Result<String> {
        let (flavor, version) = self.identify(wait)?;
        if let Some(expected) = expected {
            ensure!(
                expected == flavor,
                "--flavor {} given, but {} {version} answers at {}",
                expected.name().to_lowercase(),
                flavor.name(),
                self.base
            );
        }
        Ok(format!("{} {version}", flavor.name()))
    }
}

/// A non-2xx answer of the engine: the status and the engine's own message.
#[derive(Debug)]
struct HttpStatus {
    code: u16,
    message: String,
}

impl std::fmt::Display for HttpStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HttpStatus {}

/// The HTTP status of an engine error, if the engine answered.
fn status_of(e: &anyhow::Error) -> Option<u16> {
    e.downcast_ref::<HttpStatus>().map(|s| s.code)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

pub fn run_index(args: &IndexArgs) -> Result<ExitCode> {
    let engine = Engine::new(&args.engine, Duration::from_secs(120))?;
    let engine_name = engine.check_flavor(args.flavor, Duration::from_secs(args.wait_secs))?;
    let world = World::generate(args.seed);
    let index = &args.index;
    ensure!(
        !index.is_empty() && !index.contains(['/', '?', '#', ' ']),
        "--index {index:?} is not a valid index name"
    );

    if args.replace {
        match engine.call("DELETE", &format!("/{index}"), None) {
            Ok(_) => println!("deleted the existing index {index}"),
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(e),
        }
    }
    engine
        .call("PUT", &format!("/{index}"), Some(&index_body()))
        .map_err(|e| {
            if e.to_string().contains("resource_already_exists_exception") {
                e.context(format!(
                    "index {index} already exists at {}: pass --replace to delete and re-create it",
                    args.engine
                ))
            } else {
                e.context(format!("creating index {index}"))
            }
        })?;

    let start = Instant::now();
    let n_docs = world.items.len() * args.copies as usize;
    for first in (0..n_docs).step_by(BULK_DOCS) {
        let mut body = String::new();
        for i in first..(first + BULK_DOCS).min(n_docs) {
            body.push_str(&json!({"index": {"_index": index, "_id": item_id(i)}}).to_string());
            body.push('\n');
            body.push_str(&document(&world, i).to_string());
            body.push('\n');
        }
        let answer = engine.call_raw("POST", "/_bulk", Some(("application/x-ndjson", body)))?;
        if answer["errors"] != Value::Bool(false) {
            let first_error = answer["items"]
                .as_array()
                .and_then(|items| items.iter().find(|i| i["index"]["error"].is_object()))
                .map_or_else(|| answer.clone(), |i| i["index"]["error"].clone());
            bail!(
                "bulk indexing into {index} failed: {}",
                truncate(&first_error.to_string(), 600)
            );
        }
    }
    engine.call(
        "PUT",
        &format!("/{index}/_settings"),
        Some(&json!({"index": {"refresh_interval": "1s"}})),
    )?;
    engine.call("POST", &format!("/{index}/_refresh"), None)?;
    let count = engine.call("GET", &format!("/{index}/_count"), None)?["count"]
        .as_u64()
        .context("_count answer without a count")?;
    ensure!(
        count == n_docs as u64,
        "index {index} holds {count} documents after loading {n_docs}"
    );
    println!(
        "indexed {count} documents (seed {}) into {index} on {engine_name} at {}: {SHARDS} shards, {:.1} s",
        args.seed,
        args.engine,
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// What `replay --engine` needs besides the shared replay options.
pub struct EngineReplay<'a> {
    pub engine: &'a str,
    pub flavor: Option<Flavor>,
    pub index: &'a str,
    pub seed: u64,
    pub queries: usize,
    pub min_gain: f64,
    pub timeout_ms: u64,
    pub window: u32,
    pub warmup: usize,
}

/// The first pass: BM25 over titles, plus the category-browse fallback of the world's search
/// service (items of the classifier's category with score 0, below every text match), so that
/// queries whose words match few titles still get candidates.
pub fn first_pass(query: &Query) -> Value {
    json!({
        "bool": {
            "should": [
                {"match": {"title": query.text}},
                {"constant_score": {
                    "filter": {"term": {"category":
                        CATEGORIES[query.features.intent_category as usize].name}},
                    "boost": 0.0
                }}
            ]
        }
    })
}

/// The `sidecar` rescore clause for `query`: everything the model needs beyond the items.
pub fn rescore_clause(query: &Query, seed: u64, window: u32, timeout_ms: u64) -> Value {
    let features: serde_json::Map<String, Value> = query
        .features
        .to_map()
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, json!(v))))
        .collect();
    json!({
        "window_size": window,
        "sidecar": {
            "model": MODEL_NAME,
            "id_field": "item_id",
            "query": {
                "text": query.text,
                "user_id": user_id(query.user),
                "features": features
            },
            "request_id": format!("demo-{seed}-q{}", query.id),
            "timeout_ms": timeout_ms
        }
    })
}

/// The search body; `rescore` adds the sidecar clause.
pub fn search_body(query: &Query, seed: u64, rescore: Option<(u32, u64)>, size: usize) -> Value {
    let mut body = json!({
        "size": size,
        "_source": false,
        "track_total_hits": false,
        "query": first_pass(query),
    });
    if let Some((window, timeout_ms)) = rescore {
        body["rescore"] = rescore_clause(query, seed, window, timeout_ms);
    }
    body
}

/// One answered search: item indices in rank order and the times.
pub(crate) struct Answer {
    pub(crate) items: Vec<usize>,
    pub(crate) client_ms: f64,
    pub(crate) took_ms: f64,
}

pub(crate) fn search(engine: &Engine, index: &str, body: &Value, n_items: usize) -> Result<Answer> {
    let start = Instant::now();
    let answer = engine.call("POST", &format!("/{index}/_search"), Some(body))?;
    let client_ms = start.elapsed().as_secs_f64() * 1e3;
    let failed = answer["_shards"]["failed"].as_u64().unwrap_or(u64::MAX);
    ensure!(
        failed == 0,
        "{failed} shard(s) failed: {}",
        truncate(&answer["_shards"].to_string(), 600)
    );
    ensure!(
        answer["timed_out"] == Value::Bool(false),
        "search timed out"
    );
    let took_ms = answer["took"].as_f64().context("answer without took")?;
    let items = answer["hits"]["hits"]
        .as_array()
        .context("answer without hits.hits")?
        .iter()
        .map(|h| {
            let id = h["_id"].as_str().unwrap_or_default();
            id.strip_prefix('i')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n < n_items)
                .with_context(|| format!("hit with an unknown _id {id:?}"))
        })
        .collect::<Result<Vec<usize>>>()?;
    Ok(Answer {
        items,
        client_ms,
        took_ms,
    })
}

/// The plugin's counters (`GET /_sidecar/stats`): calls, rescored and fallbacks by reason.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    pub(crate) calls: u64,
    pub(crate) rescored: u64,
    pub(crate) fallbacks: BTreeMap<String, u64>,
    pub(crate) call_micros_total: u64,
    pub(crate) sidecar_took_micros_total: u64,
}

pub(crate) fn stats(engine: &Engine) -> Result<Stats> {
    let v = engine.call("GET", "/_sidecar/stats", None).context(
        "reading the plugin's counters (is the rescore-sidecar plugin installed on this node?)",
    )?;
    let number = |k: &str| {
        v[k].as_u64()
            .with_context(|| format!("stats without {k}: {v}"))
    };
    let fallbacks = v["fallbacks"]
        .as_object()
        .with_context(|| format!("stats without fallbacks: {v}"))?
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
        .collect();
    Ok(Stats {
        calls: number("calls")?,
        rescored: number("rescored")?,
        fallbacks,
        // Not in every plugin build: 0 when absent.
        call_micros_total: v["call_micros_total"].as_u64().unwrap_or(0),
        sidecar_took_micros_total: v["sidecar_took_micros_total"].as_u64().unwrap_or(0),
    })
}

/// NDCG@10 of a ranked list of items against the whole catalogue's grades.
fn ndcg10(grades: &[u8], ideal: f64, ranked: &[usize]) -> f64 {
    dcg_at(ranked.iter().map(|&i| grades[i]), 10) / ideal
}

#[derive(Default)]
struct Side {
    ndcg: Vec<(QueryKind, f64)>,
    client_ms: Vec<f64>,
    took_ms: Vec<f64>,
}

impl Side {
    fn mean_ndcg(&self, kind: Option<QueryKind>) -> (f64, usize) {
        let v: Vec<f64> = self
            .ndcg
            .iter()
            .filter(|(k, _)| kind.is_none_or(|kind| *k == kind))
            .map(|(_, n)| *n)
            .collect();
        let mean = if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        };
        (mean, v.len())
    }

    fn latency(&mut self) -> String {
        self.client_ms.sort_by(f64::total_cmp);
        self.took_ms.sort_by(f64::total_cmp);
        format!(
            "{:>7.2} {:>7.2}   {:>5.0} {:>5.0}",
            percentile(&self.client_ms, 50.0),
            percentile(&self.client_ms, 99.0),
            percentile(&self.took_ms, 50.0),
            percentile(&self.took_ms, 99.0)
        )
    }
}

pub fn run_replay(args: &EngineReplay) -> Result<ExitCode> {
    ensure!(
        (1..=10_000).contains(&args.timeout_ms),
        "--timeout-ms must be 1..10000 for the rescorer, got {}",
        args.timeout_ms
    );
    ensure!(
        args.window >= 10,
        "--window must be at least 10 (the page size)"
    );
    let engine = Engine::new(args.engine, Duration::from_millis(args.timeout_ms + 30_000))?;
    let engine_name = engine.check_flavor(args.flavor, Duration::ZERO)?;
    let world = World::generate(args.seed);
    let count = engine
        .call("GET", &format!("/{}/_count", args.index), None)
        .with_context(|| format!("index {} (run `rescore-demo index` first)", args.index))?
        ["count"]
        .as_u64()
        .unwrap_or(0);
    ensure!(
        count == world.items.len() as u64,
        "index {} holds {count} documents, the world of seed {} has {}: re-run `rescore-demo index --replace`",
        args.index,
        args.seed,
        world.items.len()
    );
    let queries: Vec<&Query> = world.held_out_queries().take(args.queries).collect();
    println!(
        "replaying {} held-out queries (seed {}) as searches on {engine_name} at {}, index {}",
        queries.len(),
        args.seed,
        args.engine,
        args.index
    );
    println!(
        "first pass: match on title + category browse at score 0, size 10; rescore: sidecar, window {} per shard, timeout_ms {}",
        args.window, args.timeout_ms
    );

    let rescore = Some((args.window, args.timeout_ms));
    // Warm-up (JIT, caches, connections): not measured.
    for q in queries.iter().cycle().take(args.warmup) {
        for r in [None, rescore] {
            search(
                &engine,
                args.index,
                &search_body(q, args.seed, r, 10),
                world.items.len(),
            )
            .with_context(|| format!("warm-up search for query {}", q.id))?;
        }
    }
    let before = stats(&engine)?;

    let (mut base, mut reranked) = (Side::default(), Side::default());
    let (mut failures, mut excluded) = (0usize, 0usize);
    for q in &queries {
        let grades = world.catalogue_grades(q);
        let mut ideal = grades.clone();
        ideal.sort_unstable_by(|a, b| b.cmp(a));
        let ideal = dcg_at(ideal, 10);
        let mut results = Vec::with_capacity(2);
        for r in [None, rescore] {
            match search(
                &engine,
                args.index,
                &search_body(q, args.seed, r, 10),
                world.items.len(),
            ) {
                Ok(a) => results.push(a),
                Err(e) => {
                    failures += 1;
                    eprintln!(
                        "query {} ({}search): {e:#}",
                        q.id,
                        if r.is_some() { "rescored " } else { "" }
                    );
                }
            }
        }
        let [b, r] = match <[Answer; 2]>::try_from(results) {
            Ok(pair) => pair,
            Err(_) => continue,
        };
        for (side, a) in [(&mut base, &b), (&mut reranked, &r)] {
            side.client_ms.push(a.client_ms);
            side.took_ms.push(a.took_ms);
        }
        if ideal == 0.0 {
            excluded += 1;
            continue;
        }
        base.ndcg.push((q.kind, ndcg10(&grades, ideal, &b.items)));
        reranked
            .ndcg
            .push((q.kind, ndcg10(&grades, ideal, &r.items)));
    }
    let after = stats(&engine)?;
    let fallbacks: BTreeMap<&str, u64> = after
        .fallbacks
        .iter()
        .map(|(k, n)| {
            (
                k.as_str(),
                n - before.fallbacks.get(k).copied().unwrap_or(0),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let n_fallbacks: u64 = fallbacks.values().sum();

    let (b, n) = base.mean_ndcg(None);
    let (r, _) = reranked.mean_ndcg(None);
    let gain = r - b;
    println!();
    println!("                         NDCG@10   client ms p50     p99   took ms p50   p99");
    println!("BM25 (engine)             {b:.4}   {}", base.latency());
    println!("BM25 + sidecar rescore    {r:.4}   {}", reranked.latency());
    println!(
        "gain                     {gain:+.4}   (required {:+.4})",
        args.min_gain
    );
    for kind in QueryKind::ALL {
        let (kb, kn) = base.mean_ndcg(Some(kind));
        let (kr, _) = reranked.mean_ndcg(Some(kind));
        println!(
            "  {:<9} {kn:>4} queries  {kb:.4} -> {kr:.4}  ({:+.4})",
            kind.as_str(),
            kr - kb
        );
    }
    println!(
        "searches                 : {} ({} queries x 2), {failures} failed; {excluded} queries without any relevant item excluded from NDCG",
        2 * queries.len(),
        queries.len()
    );
    println!(
        "plugin (/_sidecar/stats) : calls +{}, rescored +{}, fallbacks +{n_fallbacks} {fallbacks:?}",
        after.calls - before.calls,
        after.rescored - before.rescored
    );
    println!(
        "NDCG@10: gain 2^grade - 1, ideal = the 10 best items of the whole catalogue for the query"
    );

    let mut problems = Vec::new();
    if failures > 0 {
        problems.push(format!("{failures} failed searches"));
    }
    if n_fallbacks > 0 {
        problems.push(format!("{n_fallbacks} fallbacks"));
    }
    if n == 0 {
        problems.push("no query answered".to_owned());
    } else if gain.is_nan() || gain < args.min_gain {
        problems.push(format!("gain {gain:+.4} below {:+.4}", args.min_gain));
    }
    if !problems.is_empty() {
        eprintln!("engine replay FAILED: {}", problems.join(", "));
        return Ok(ExitCode::FAILURE);
    }
    println!("engine replay OK");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_fit_the_strict_mapping() {
        let world = World::generate(42);
        let mapping = index_body();
        let props = mapping["mappings"]["properties"]
            .as_object()
            .expect("properties");
        for i in [0, 1, world.items.len() - 1] {
            let doc = document(&world, i);
            let doc = doc.as_object().expect("object");
            let mut fields: Vec<&String> = doc.keys().collect();
            let mut mapped: Vec<&String> = props.keys().collect();
            fields.sort();
            mapped.sort();
            assert_eq!(fields, mapped, "item {i}");
            assert_eq!(doc["item_id"], item_id(i));
            let title = doc["title"].as_str().expect("title");
            assert!(!title.trim().is_empty(), "item {i} has no title text");
        }
    }

    #[test]
    fn rescore_clause_carries_the_query_features() {
        let world = World::generate(42);
        let q = world
            .held_out_queries()
            .find(|q| q.features.user_budget.is_some() && q.features.user_brand.is_some())
            .expect("a query with a known budget and brand");
        let body = search_body(q, 42, Some((100, 500)), 10);
        let s = &body["rescore"]["sidecar"];
        assert_eq!(body["rescore"]["window_size"], 100);
        assert_eq!(s["model"], "marketplace");
        assert_eq!(s["id_field"], "item_id");
        assert_eq!(s["query"]["text"], q.text.as_str());
        assert_eq!(s["query"]["user_id"], user_id(q.user));
        let f = &s["query"]["features"];
        assert_eq!(
            f["intent_category"],
            json!(f64::from(q.features.intent_category))
        );
        assert!(f["user_budget"].is_number() && f["user_brand"].is_number());
        assert_eq!(s["request_id"], format!("demo-42-q{}", q.id));
        assert_eq!(s["timeout_ms"], 500);
        // The baseline is the same search without the clause.
        let plain = search_body(q, 42, None, 10);
        assert!(plain.get("rescore").is_none());
        assert_eq!(plain["query"], body["query"]);
        assert_eq!(
            plain["query"]["bool"]["should"][1]["constant_score"]["filter"]["term"]["category"],
            CATEGORIES[q.features.intent_category as usize].name
        );
    }

    #[test]
    fn unknown_user_values_are_left_out_of_the_clause() {
        let world = World::generate(42);
        let q = world
            .held_out_queries()
            .find(|q| q.features.user_budget.is_none())
            .expect("a user without a budget");
        let clause = rescore_clause(q, 42, 100, 500);
        assert!(clause["sidecar"]["query"]["features"]
            .get("user_budget")
            .is_none());
    }

    #[test]
    fn bad_engine_url_is_a_clear_error() {
        let err = Engine::new("localhost:9200", Duration::from_secs(1))
            .err()
            .expect("rejected");
        assert!(err.to_string().contains("http://"), "{err}");
    }
}

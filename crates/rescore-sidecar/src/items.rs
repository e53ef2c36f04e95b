//! Item stores for serving (embedded from `--items`, or Redis) and the `items` subcommands
//! (docs/feature-store.md).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use rescore_features::{
    embedded, metric_names, parse_updates, CachedItems, DataDir, IndexShards, ItemStoreConfig,
    OpKind, RedisStore, ServingClaim, ShardFilter, StoreError, StoreKind, Update,
};

use crate::config::{CommonFlags, Config, ItemsCommand, Target};

/// Updates per Redis round trip.
const REDIS_BATCH: usize = 500;

/// The Redis store of `[item_store.redis]` (connections are made lazily, on the tokio runtime
/// this runs on).
pub fn redis_store(config: &ItemStoreConfig) -> anyhow::Result<RedisStore> {
    RedisStore::new(&config.redis).map_err(|e| anyhow::anyhow!("item_store.redis: {e}"))
}

pub fn redis_items(config: &ItemStoreConfig) -> anyhow::Result<CachedItems> {
    let store = redis_store(config)?;
    tracing::info!(url = %redact(&config.redis.url), pool = config.redis.pool_size,
        timeout_ms = config.redis.timeout_ms, "item store: redis");
    Ok(CachedItems::redis(
        store,
        Duration::from_millis(config.redis.timeout_ms),
        &config.cache,
    ))
}

/// This process's claim on its data directory: held until it exits (see `DataDir::serve`).
static SERVING: std::sync::OnceLock<ServingClaim> = std::sync::OnceLock::new();

/// The embedded store of `snapshot`, with `redis` in front of it when layered.
pub fn snapshot_items(
    snapshot: &Path,
    data_dir: &Path,
    config: &ItemStoreConfig,
    redis: Option<RedisStore>,
) -> anyhow::Result<CachedItems> {
    let generation = embedded_generation(snapshot, data_dir)?;
    Ok(match redis {
        Some(store) => {
            tracing::info!(url = %redact(&config.redis.url), pool = config.redis.pool_size,
                redis_budget_ms = config.layered.redis_budget_ms,
                retry_after_ms = config.layered.retry_after_ms,
                "item store: layered (redis in front of the snapshot)");
            CachedItems::layered(generation, store, &config.layered, &config.cache)
        }
        None => CachedItems::embedded(generation, &config.cache),
    })
}

/// Builds the embedded store from the snapshot (or reuses the live generation built from
/// this very file) and opens it. Refuses (an error naming the directory and what it serves)
/// when another running server serves the data directory with another catalogue.
fn embedded_generation(
    snapshot: &Path,
    data_dir: &Path,
) -> anyhow::Result<rescore_features::Generation> {
    let context = |e: StoreError| match e {
        e @ StoreError::Catalogue { .. } => anyhow::anyhow!("{e}"),
        e => anyhow::anyhow!("--items {}: {e}", snapshot.display()),
    };
    let dir = DataDir::open(data_dir).map_err(context)?;
    let (generation, report, claim) = dir.serve(snapshot).map_err(context)?;
    let _ = SERVING.set(claim);
    match report {
        Some(r) => tracing::info!(items = r.items, lines = r.lines, generation = r.generation,
            seconds = r.seconds, bytes = r.bytes, path = %r.path.display(), "item store built"),
        None => tracing::info!(items = generation.len(), generation = generation.number(),
            path = %generation.path().display(), "item store reused"),
    }
    tracing::info!(items = generation.len(), path = %snapshot.display(),
        shards = %shards_of(&generation), "item store loaded");
    Ok(generation)
}

/// The shards a generation holds the items of, for logs: `all`, or `shards 1,4 of 6/768`.
fn shards_of(generation: &rescore_features::Generation) -> String {
    generation
        .shard_filter()
        .map_or_else(|| "all".to_string(), ToString::to_string)
}

/// Whether a server serving `catalogue` (its `--items`) takes `generation`: yes for what
/// `items import|put|delete|apply` published (an explicit refresh of every server on the
/// directory) and for a newer build of the same snapshot file; no for a generation another
/// server built from a different `--items`.
fn belongs(generation: &rescore_features::Generation, catalogue: &str) -> bool {
    generation.built_by() != embedded::BUILT_BY_SERVE
        || embedded::snapshot_path(generation.source()) == catalogue
}

/// Polls `CURRENT` in the data directory and swaps to a newer generation when one is
/// published. A generation that cannot be opened, or that belongs to another catalogue, is
/// logged and counted (once per generation); the live one stays.
pub fn watch_generations(
    items: Arc<CachedItems>,
    data_dir: PathBuf,
    snapshot: &Path,
    config: &ItemStoreConfig,
) {
    let interval = config.embedded.reload_interval_ms;
    if interval == 0 {
        return;
    }
    let catalogue = std::fs::canonicalize(snapshot)
        .unwrap_or_else(|_| snapshot.to_path_buf())
        .display()
        .to_string();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(interval));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let refused = Arc::new(std::sync::Mutex::new(None::<u64>));
        loop {
            ticker.tick().await;
            let items = items.clone();
            let data_dir = data_dir.clone();
            let catalogue = catalogue.clone();
            let refused = refused.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let Ok(dir) = DataDir::open(&data_dir) else { return };
                let Ok(Some((number, path))) = dir.current() else { return };
                let mut refused = refused.lock().unwrap_or_else(|e| e.into_inner());
                if items.generation() == Some(number) || *refused == Some(number) {
                    return;
                }
                match rescore_features::Generation::open(&path, number, 0) {
                    Ok(generation) if belongs(&generation, &catalogue) => {
                        let count = generation.len();
                        let shards = shards_of(&generation);
                        items.swap(generation);
                        metrics::counter!(metric_names::ITEM_STORE_SWAPS, "result" => "success").increment(1);
                        tracing::info!(generation = number, items = count, path = %path.display(), %shards, "item store generation swapped");
                    }
                    Ok(generation) => {
                        *refused = Some(number);
                        metrics::counter!(metric_names::ITEM_STORE_SWAPS, "result" => "foreign").increment(1);
                        tracing::error!(generation = number, data_dir = %data_dir.display(),
                            built_from = embedded::snapshot_path(generation.source()), serving = %catalogue,
                            "a server started with another --items published a generation into this data directory; not swapping to it (one data directory serves one catalogue: give that server its own --data-dir)");
                    }
                    Err(error) => {
                        *refused = Some(number);
                        metrics::counter!(metric_names::ITEM_STORE_SWAPS, "result" => "failure").increment(1);
                        tracing::error!(%error, "newer item store generation cannot be opened; keeping the live one");
                    }
                }
            })
            .await;
        }
    });
}

/// `rescore-sidecar items ...`: exit 0 on success, 2 on a configuration error, 1 otherwise.
pub fn run(common: &CommonFlags, command: ItemsCommand) -> ExitCode {
    // Needs no configuration: a manifest and two files.
    if let ItemsCommand::Suspicion(args) = &command {
        return match crate::suspicion::run(args) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rescore-sidecar items suspicion: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::resolve_for_tool(common) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rescore-sidecar: configuration error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run_command(&config, command) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rescore-sidecar items: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_command(config: &Config, command: ItemsCommand) -> anyhow::Result<serde_json::Value> {
    match command {
        ItemsCommand::Import {
            snapshot,
            index_shards,
            keep_shards,
        } => {
            let shards = match (index_shards, keep_shards) {
                (Some(index), Some(keep)) => Some(shard_filter(&index, &keep)?),
                _ => None,
            };
            let dir = DataDir::open(&config.data_dir)?;
            let r = dir
                .import_shards(&snapshot, shards.as_ref())
                .map_err(|e| anyhow::anyhow!("{}: {e}", snapshot.display()))?;
            let mut out = serde_json::json!({
                "target": "embedded", "generation": r.generation, "path": r.path,
                "items": r.items, "lines": r.lines, "bytes": r.bytes, "seconds": r.seconds,
            });
            if let Some(shards) = &shards {
                out["shards"] = serde_json::json!(shards);
                out["skipped"] = r.skipped.into();
            }
            Ok(out)
        }
        ItemsCommand::Info => info(config),
        ItemsCommand::Put(args) => updates(config, &args.input, args.target, OpKind::Put),
        ItemsCommand::Delete(args) => updates(config, &args.input, args.target, OpKind::Delete),
        ItemsCommand::Suspicion(args) => crate::suspicion::run(&args),
    }
}

/// The shard filter of `--index-shards N/R --keep-shards 3,17,42`, or an error naming the flag.
fn shard_filter(index: &str, keep: &str) -> anyhow::Result<ShardFilter> {
    let index = IndexShards::parse(index).map_err(|e| anyhow::anyhow!("--index-shards {e}"))?;
    ShardFilter::parse(index, keep).map_err(|e| anyhow::anyhow!("--keep-shards {keep}: {e}"))
}

/// `items info`: the live generation of the data directory (what a server on it serves).
fn info(config: &Config) -> anyhow::Result<serde_json::Value> {
    let dir = DataDir::open(&config.data_dir)?;
    let Some(generation) = dir.open_current(0)? else {
        anyhow::bail!(
            "data directory {}: no generation yet (`items import` or a server's --items builds one)",
            config.data_dir.display()
        );
    };
    Ok(serde_json::json!({
        "data_dir": config.data_dir, "generation": generation.number(),
        "path": generation.path(), "items": generation.len(),
        "entries": generation.entry_count(), "columns": generation.columns().names(),
        "built_by": generation.built_by(),
        "snapshot": embedded::snapshot_path(generation.source()),
        "shards": generation.shard_filter(),
    }))
}

fn open_input(input: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    if input == Path::new("-") {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let file =
        std::fs::File::open(input).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
}

fn updates(
    config: &Config,
    input: &Path,
    target: Option<Target>,
    op: OpKind,
) -> anyhow::Result<serde_json::Value> {
    let target = target.unwrap_or(match config.item_store.backend {
        StoreKind::Embedded => Target::Embedded,
        // Layered: updates go to the fresh layer; the snapshot is rebuilt by `items import`.
        StoreKind::Redis | StoreKind::Layered => Target::Redis,
    });
    if target == Target::Redis || target == Target::Both {
        config
            .item_store
            .redis
            .validate()
            .map_err(anyhow::Error::msg)?;
    }
    // `both` reads the input once into memory; a single target streams it.
    let lines: Option<Vec<Update>> = if target == Target::Both {
        Some(
            parse_updates(open_input(input)?, Some(op))
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?,
        )
    } else {
        None
    };
    let mut out = serde_json::Map::new();
    if matches!(target, Target::Embedded | Target::Both) {
        let dir = DataDir::open(&config.data_dir)?;
        let map_err = |e: rescore_features::UpdateError| StoreError::Line {
            line: 0,
            problem: format!("{}: {e}", input.display()),
        };
        let report = match &lines {
            Some(lines) => dir.apply_updates(lines.iter().cloned().map(Ok)),
            None => dir.apply_updates(
                parse_updates(open_input(input)?, Some(op)).map(|r| r.map_err(map_err)),
            ),
        }
        .map_err(|e| anyhow::anyhow!("embedded store {}: {e}", config.data_dir.display()))?;
        out.insert(
            "embedded".into(),
            serde_json::json!({"generation": report.generation, "lines": report.lines,
                "applied": report.lines - report.stale, "stale": report.stale, "items": report.items,
                "seconds": report.seconds}),
        );
    }
    if matches!(target, Target::Redis | Target::Both) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (lines_n, applied) = runtime.block_on(async {
            let store = RedisStore::new(&config.item_store.redis)?;
            let mut batch = Vec::with_capacity(REDIS_BATCH);
            let (mut n, mut applied) = (0u64, 0u64);
            let mut iter: Box<dyn Iterator<Item = anyhow::Result<Update>>> = match &lines {
                Some(lines) => Box::new(lines.iter().cloned().map(Ok)),
                None => Box::new(
                    parse_updates(open_input(input)?, Some(op))
                        .map(|r| r.map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))),
                ),
            };
            let mut exhausted = false;
            while !exhausted {
                match iter.next() {
                    Some(update) => {
                        batch.push(update?);
                        if batch.len() < REDIS_BATCH {
                            continue;
                        }
                    }
                    None => exhausted = true,
                }
                if batch.is_empty() {
                    continue;
                }
                let results = store
                    .apply(&batch)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e} (after {n} lines were written)"))?;
                n += batch.len() as u64;
                applied += results.iter().filter(|a| **a).count() as u64;
                batch.clear();
            }
            Ok::<_, anyhow::Error>((n, applied))
        })?;
        out.insert(
            "redis".into(),
            serde_json::json!({"lines": lines_n, "applied": applied, "stale": lines_n - applied}),
        );
    }
    Ok(serde_json::Value::Object(out))
}

/// The URL without a password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_string(),
    }
}

//! The in-process item cache in front of Redis, the embedded store's live generation, and the
//! per-request view of either.
//!
//! - Embedded store: not cached here. A request pins the live generation (so a swap never
//!   mixes two generations in one request) and reads its hits' rows in place from the mapped
//!   file (docs/adr/0008-mapped-item-snapshot.md).
//! - Bounded by bytes (a weigher per entry), entries expire after `ttl_secs`; unknown ids are
//!   cached too, for `unknown_ttl_secs`, so a hot unknown id neither hits the store on every
//!   request nor stays "unknown" for long after it is added.
//! - Redis: the ids a request's hits lack are fetched in one `MGET` on a spawned task bounded by
//!   `item_store.redis.timeout_ms`; ids already being fetched for another request are waited
//!   for instead of fetched again (one fetch per key under concurrent misses). A request stops
//!   waiting at its own budget; ids not answered by then are missing for that request
//!   (counted) and are not cached, so the next request asks again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use serde::Deserialize;

use crate::embedded::Generation;
use crate::metric_names as m;
use crate::record::{Columns, ItemRecord, ItemRef};
use crate::redis_store::RedisStore;

/// `[item_store.cache]` in the config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Upper bound of the cache's size: ids, feature values and per-entry overhead.
    pub max_bytes: u64,
    /// Freshness: an entry is re-read from the store after this long.
    pub ttl_secs: u64,
    /// How long "this id is unknown" is remembered.
    pub unknown_ttl_secs: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: 64 << 20,
            ttl_secs: 60,
            unknown_ttl_secs: 10,
        }
    }
}

impl CacheConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_bytes < 1 << 20 {
            return Err("item_store.cache.max_bytes must be at least 1048576 (1 MiB)".into());
        }
        if self.ttl_secs == 0 || self.unknown_ttl_secs == 0 {
            return Err("item_store.cache.ttl_secs and unknown_ttl_secs must be at least 1".into());
        }
        Ok(())
    }
}

/// The hasher of the item cache and of the per-request id tables: foldhash with a random seed
/// per table (per process). Keys are hit ids that the search engine's bridge sends (document
/// ids of the index), not free text from end users; SipHash was about a tenth of a hot
/// request's time. docs/dependencies.md has the reasoning.
pub(crate) type IdHasher = foldhash::fast::RandomState;

/// Bytes charged per entry on top of the id and the values (moka's entry, the `Arc`, the
/// boxed key): an estimate, so that tiny records are not free.
const ENTRY_OVERHEAD: usize = 112;

#[derive(Clone)]
struct Cached {
    record: Option<Arc<ItemRecord>>,
}

struct Expiry {
    ttl: Duration,
    unknown_ttl: Duration,
}

impl Expiry {
    fn of(&self, value: &Cached) -> Option<Duration> {
        Some(if value.record.is_some() {
            self.ttl
        } else {
            self.unknown_ttl
        })
    }
}

impl moka::Expiry<Box<str>, Cached> for Expiry {
    fn expire_after_create(&self, _k: &Box<str>, v: &Cached, _at: Instant) -> Option<Duration> {
        self.of(v)
    }
    fn expire_after_update(
        &self,
        _k: &Box<str>,
        v: &Cached,
        _at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        self.of(v)
    }
}

enum Backend {
    Embedded(ArcSwap<Generation>),
    Redis {
        store: RedisStore,
        timeout: Duration,
    },
}

/// Why an id was served without the store's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unanswered {
    Timeout,
    Error,
}

impl Unanswered {
    fn as_str(self) -> &'static str {
        match self {
            Unanswered::Timeout => "timeout",
            Unanswered::Error => "error",
        }
    }
}

type Fetched = HashMap<Box<str>, Option<Arc<ItemRecord>>, IdHasher>;
type SharedFetch = Shared<BoxFuture<'static, Option<Arc<Result<Fetched, Unanswered>>>>>;

pub struct CachedItems {
    backend: Backend,
    cache: moka::sync::Cache<Box<str>, Cached, IdHasher>,
    inflight: Mutex<HashMap<Box<str>, SharedFetch, IdHasher>>,
    hits: metrics::Counter,
    misses: metrics::Counter,
    last_warning: AtomicU64,
    started: Instant,
}

impl std::fmt::Debug for CachedItems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedItems")
            .field("store", &self.store_label())
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl CachedItems {
    pub fn embedded(generation: Generation, config: &CacheConfig) -> Self {
        metrics::gauge!(m::ITEM_STORE_ITEMS).set(generation.len() as f64);
        metrics::gauge!(m::ITEM_STORE_GENERATION).set(generation.number() as f64);
        Self::new(Backend::Embedded(ArcSwap::from_pointee(generation)), config)
    }

    /// Needs a tokio runtime (connections are made lazily on it).
    pub fn redis(store: RedisStore, timeout: Duration, config: &CacheConfig) -> Self {
        Self::new(Backend::Redis { store, timeout }, config)
    }

    fn new(backend: Backend, config: &CacheConfig) -> Self {
        let evicted_size = metrics::counter!(m::ITEM_CACHE_EVICTIONS, "cause" => "size");
        let expired = metrics::counter!(m::ITEM_CACHE_EVICTIONS, "cause" => "expired");
        let cache = moka::sync::Cache::<Box<str>, Cached>::builder()
            .max_capacity(config.max_bytes)
            .weigher(|k, v| {
                let bytes = k.len() + v.record.as_ref().map_or(0, |r| r.heap_bytes());
                u32::try_from(bytes + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(Expiry {
                ttl: Duration::from_secs(config.ttl_secs),
                unknown_ttl: Duration::from_secs(config.unknown_ttl_secs),
            })
            .eviction_listener(move |_k, _v, cause| match cause {
                moka::notification::RemovalCause::Size => evicted_size.increment(1),
                moka::notification::RemovalCause::Expired => expired.increment(1),
                _ => {}
            })
            .build_with_hasher(IdHasher::default());
        CachedItems {
            backend,
            cache,
            inflight: Mutex::new(HashMap::default()),
            hits: metrics::counter!(m::ITEM_CACHE_HITS),
            misses: metrics::counter!(m::ITEM_CACHE_MISSES),
            last_warning: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    pub fn store_label(&self) -> &'static str {
        match self.backend {
            Backend::Embedded(_) => "embedded",
            Backend::Redis { .. } => "redis",
        }
    }

    /// Live items in the embedded store (`None` for Redis, which does not know its size).
    pub fn item_count(&self) -> Option<u64> {
        match &self.backend {
            Backend::Embedded(g) => Some(g.load().len()),
            Backend::Redis { .. } => None,
        }
    }

    /// The live embedded generation's number.
    pub fn generation(&self) -> Option<u64> {
        match &self.backend {
            Backend::Embedded(g) => Some(g.load().number()),
            Backend::Redis { .. } => None,
        }
    }

    /// Publishes a new embedded generation: requests that start from now on read it; those
    /// in flight finish on the one they pinned. Cached entries of older generations are
    /// dropped.
    pub fn swap(&self, generation: Generation) -> bool {
        let Backend::Embedded(live) = &self.backend else {
            return false;
        };
        metrics::gauge!(m::ITEM_STORE_ITEMS).set(generation.len() as f64);
        metrics::gauge!(m::ITEM_STORE_GENERATION).set(generation.number() as f64);
        live.store(Arc::new(generation));
        self.cache.invalidate_all();
        true
    }

    /// Releases the live embedded generation's mapped pages (benchmarks of cold reads; see
    /// `Generation::release_pages`).
    pub fn release_pages(&self) -> std::io::Result<()> {
        match &self.backend {
            Backend::Embedded(live) => live.load().release_pages(),
            Backend::Redis { .. } => Ok(()),
        }
    }

    /// Forgets one id (an update passed through this process).
    pub fn invalidate(&self, id: &str) {
        self.cache.invalidate(id);
    }

    /// Forgets every cached id.
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
        self.cache.run_pending_tasks();
    }

    /// Entries and weighted bytes, after pending maintenance.
    pub fn cache_usage(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        (self.cache.entry_count(), self.cache.weighted_size())
    }

    /// Prepares the item lookups of one request. For Redis this is the one round trip for
    /// every id the cache lacks, bounded by the store budget and by `deadline`; for the
    /// embedded store it only pins the live generation (rows are read during assembly, until
    /// `deadline`).
    pub async fn for_request<'a>(
        self: &Arc<Self>,
        ids: impl IntoIterator<Item = &'a str>,
        deadline: Instant,
    ) -> RequestItems {
        let view = match &self.backend {
            Backend::Embedded(live) => View::Embedded {
                generation: live.load_full(),
                deadline,
                enforce_deadline: true.into(),
            },
            Backend::Redis { store, timeout } => {
                let found = self.fetch_remote(*timeout, ids, deadline).await;
                View::Remote {
                    found,
                    columns: store.columns().clone(),
                }
            }
        };
        RequestItems {
            items: self.clone(),
            view,
        }
    }

    async fn fetch_remote<'a>(
        self: &Arc<Self>,
        timeout: Duration,
        ids: impl IntoIterator<Item = &'a str>,
        deadline: Instant,
    ) -> Fetched {
        let mut found: Fetched = HashMap::default();
        let mut missing: Vec<&str> = Vec::new();
        let mut seen: HashSet<&str, IdHasher> = HashSet::default();
        for id in ids {
            if !seen.insert(id) {
                continue;
            }
            if let Some(c) = self.cache.get(id) {
                self.hits.increment(1);
                found.insert(Box::from(id), c.record);
            } else {
                missing.push(id);
            }
        }
        if missing.is_empty() {
            return found;
        }
        let mut waits: Vec<(SharedFetch, Vec<&str>)> = Vec::new();
        let mut mine: Vec<Box<str>> = Vec::new();
        {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            for id in &missing {
                // A fetch that finished since the first look has filled the cache.
                if let Some(c) = self.cache.get(*id) {
                    self.hits.increment(1);
                    found.insert(Box::from(*id), c.record);
                } else if let Some(fetch) = inflight.get(*id) {
                    self.hits.increment(1);
                    match waits.iter_mut().find(|(f, _)| f.ptr_eq(fetch)) {
                        Some((_, ids)) => ids.push(id),
                        None => waits.push((fetch.clone(), vec![id])),
                    }
                } else {
                    mine.push(Box::from(*id));
                }
            }
            if !mine.is_empty() {
                self.misses.increment(mine.len() as u64);
                let fetch = self.spawn_fetch(mine.clone(), timeout);
                for id in &mine {
                    inflight.insert(id.clone(), fetch.clone());
                }
                waits.push((fetch, mine.iter().map(|b| &**b).collect()));
            }
        }
        let store_deadline = deadline.min(Instant::now() + timeout);
        for (fetch, ids) in waits {
            let outcome =
                tokio::time::timeout_at(tokio::time::Instant::from_std(store_deadline), fetch)
                    .await;
            let reason = match outcome {
                Ok(Some(result)) => match &*result {
                    Ok(map) => {
                        for id in ids {
                            if let Some(record) = map.get(id) {
                                found.insert(Box::from(id), record.clone());
                            }
                        }
                        continue;
                    }
                    Err(reason) => *reason,
                },
                Ok(None) => Unanswered::Error,
                Err(_) => Unanswered::Timeout,
            };
            metrics::counter!(m::ITEM_STORE_FALLBACKS, "reason" => reason.as_str())
                .increment(ids.len() as u64);
        }
        found
    }

    /// One `MGET` on its own task, so that it completes (and fills the cache for later
    /// requests) even when the request that started it stops waiting.
    fn spawn_fetch(self: &Arc<Self>, ids: Vec<Box<str>>, timeout: Duration) -> SharedFetch {
        let this = self.clone();
        let task = tokio::spawn(async move {
            let Backend::Redis { store, .. } = &this.backend else {
                return Arc::new(Err(Unanswered::Error));
            };
            let started = Instant::now();
            let result = tokio::time::timeout(timeout, store.mget(&ids)).await;
            metrics::histogram!(m::ITEM_STORE_DURATION, "store" => "redis")
                .record(started.elapsed().as_secs_f64());
            let outcome = match result {
                Ok(Ok(records)) => {
                    metrics::counter!(m::ITEM_STORE_REQUESTS, "store" => "redis", "result" => "ok")
                        .increment(1);
                    let mut map = HashMap::with_capacity_and_hasher(ids.len(), IdHasher::default());
                    for (id, record) in ids.iter().zip(records) {
                        let record = record.map(Arc::new);
                        this.cache.insert(
                            id.clone(),
                            Cached {
                                record: record.clone(),
                            },
                        );
                        map.insert(id.clone(), record);
                    }
                    Ok(map)
                }
                Ok(Err(error)) => {
                    metrics::counter!(m::ITEM_STORE_REQUESTS, "store" => "redis", "result" => "error")
                        .increment(1);
                    this.warn_sometimes(|| tracing::warn!(%error, ids = ids.len(), "redis item fetch failed; features missing for these hits"));
                    Err(Unanswered::Error)
                }
                Err(_) => {
                    metrics::counter!(m::ITEM_STORE_REQUESTS, "store" => "redis", "result" => "timeout")
                        .increment(1);
                    this.warn_sometimes(|| {
                        tracing::warn!(
                            timeout_ms = timeout.as_millis() as u64,
                            ids = ids.len(),
                            "redis item fetch timed out; features missing for these hits"
                        )
                    });
                    Err(Unanswered::Timeout)
                }
            };
            // After the cache insert, so a request never sees neither.
            let mut inflight = this.inflight.lock().unwrap_or_else(|e| e.into_inner());
            for id in &ids {
                inflight.remove(id);
            }
            Arc::new(outcome)
        });
        async move { task.await.ok() }.boxed().shared()
    }

    /// At most one warning per 10 s: a store that is down must not flood the log.
    fn warn_sometimes(&self, log: impl FnOnce()) {
        let now = self.started.elapsed().as_secs();
        let last = self.last_warning.load(Ordering::Relaxed);
        if (last == 0 || now >= last + 10)
            && self
                .last_warning
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log();
        }
    }
}

enum View {
    Embedded {
        generation: Arc<Generation>,
        deadline: Instant,
        /// Off once the request is over (shadow scoring reads the items afterwards).
        enforce_deadline: std::sync::atomic::AtomicBool,
    },
    Remote {
        found: Fetched,
        columns: Arc<Columns>,
    },
}

/// The items of one request: resolved per hit during assembly (on the blocking pool).
pub struct RequestItems {
    items: Arc<CachedItems>,
    view: View,
}

impl std::fmt::Debug for RequestItems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestItems")
    }
}

impl RequestItems {
    pub fn columns(&self) -> &Columns {
        match &self.view {
            View::Embedded { generation, .. } => generation.columns(),
            View::Remote { columns, .. } => columns,
        }
    }

    /// Lets later reads of the embedded store run past the request's deadline (for work done
    /// after the request was answered, such as shadow scoring).
    pub fn lift_deadline(&self) {
        if let View::Embedded {
            enforce_deadline, ..
        } = &self.view
        {
            enforce_deadline.store(false, Ordering::Relaxed);
        }
    }

    /// The item's values; `None` when unknown, deleted, or not answered in time.
    pub fn get(&self, id: &str) -> Option<ItemRef<'_>> {
        self.get_many(std::iter::once(id)).pop().flatten()
    }

    /// The items of `ids`, in order: the same answers as [`RequestItems::get`] per id, borrowed
    /// for the request. Embedded: read in place from the pinned generation's mapped file, in
    /// file order, with no allocation per item and no lock (the item cache is not used: a
    /// mapped row is cheaper to find than a cache entry); ids not read by the request's
    /// deadline are missing (counted as a `timeout` fallback). Redis: what the request's
    /// round trip answered.
    pub fn get_many<'a>(
        &self,
        ids: impl ExactSizeIterator<Item = &'a str>,
    ) -> Vec<Option<ItemRef<'_>>> {
        match &self.view {
            View::Remote { found, .. } => ids
                .map(|id| {
                    found
                        .get(id)
                        .and_then(|r| r.as_deref())
                        .map(ItemRef::record)
                })
                .collect(),
            View::Embedded {
                generation,
                deadline,
                enforce_deadline,
            } => {
                let started = Instant::now();
                let deadline = enforce_deadline
                    .load(Ordering::Relaxed)
                    .then_some(*deadline);
                let (rows, unread) = generation.rows(ids, deadline);
                metrics::histogram!(m::ITEM_STORE_DURATION, "store" => "embedded")
                    .record(started.elapsed().as_secs_f64());
                if unread > 0 {
                    metrics::counter!(m::ITEM_STORE_FALLBACKS, "reason" => "timeout")
                        .increment(unread as u64);
                    self.items.warn_sometimes(|| {
                        tracing::warn!(
                            ids = unread,
                            "embedded item reads passed the request's deadline; features missing for these hits"
                        )
                    });
                }
                let serial = generation.serial();
                rows.into_iter()
                    .map(|r| r.map(|(row, values)| ItemRef::row(values, serial, row)))
                    .collect()
            }
        }
    }
}

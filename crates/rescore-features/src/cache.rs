//! The in-process item cache in front of either store, and the per-request view of it.
//!
//! - Bounded by bytes (a weigher per entry), entries expire after `ttl_secs`; unknown ids are
//!   cached too, for `unknown_ttl_secs`, so a hot unknown id neither hits the store on every
//!   request nor stays "unknown" for long after it is added.
//! - Embedded store: entries carry the generation they were read from; a request pins the live
//!   generation, so a swap never mixes two generations in one request and old entries are
//!   simply misses afterwards. One read per key under concurrent misses (`moka` entry API).
//! - Redis: the ids a request's hits lack are fetched in one `MGET` on a spawned task bounded by
//!   `item_store.redis.timeout_ms`; ids already being fetched for another request are waited
//!   for instead of fetched again (one fetch per key under concurrent misses). A request stops
//!   waiting at its own budget; ids not answered by then are missing for that request
//!   (counted) and are not cached, so the next request asks again.
//! - Layered (Redis in front of the embedded snapshot, [`crate::layered`]): the same fetch,
//!   decoded into the pinned generation's columns and cached under its number; what Redis
//!   lacks, or cannot answer in its budget, is read from the snapshot.
//! - A store failure is never an unknown item: ids the store could not read (Redis error or
//!   timeout, embedded read error) are counted per request ([`RequestItems::unread`]), so
//!   serving can return the baseline (`fallback: "feature_store"`), and are not cached.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use serde::Deserialize;

use crate::embedded::Generation;
use crate::layered::Breaker;
use crate::metric_names as m;
use crate::record::{Columns, ItemRecord};
use crate::redis_store::{Read, RedisStore, Stored};

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
pub(crate) struct Cached {
    /// Embedded generation the record was read from (layered: whose columns it was decoded
    /// into); 0 for Redis alone.
    pub(crate) generation: u64,
    pub(crate) record: Option<Arc<ItemRecord>>,
    /// Kept only for `unknown_ttl_secs`: a layered snapshot answer given while Redis did
    /// not answer.
    pub(crate) short: bool,
    /// The store failed to read it (embedded read error): seen only by lookups that joined
    /// the failed read, then expired at once, so the next request reads again.
    pub(crate) failed: bool,
}

struct Expiry {
    ttl: Duration,
    unknown_ttl: Duration,
}

impl Expiry {
    fn of(&self, value: &Cached) -> Option<Duration> {
        Some(if value.failed {
            Duration::ZERO
        } else if value.record.is_some() && !value.short {
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

pub(crate) enum Backend {
    Embedded(ArcSwap<Generation>),
    Redis {
        store: RedisStore,
        timeout: Duration,
    },
    /// Redis in front of the embedded snapshot.
    Layered {
        live: ArcSwap<Generation>,
        store: RedisStore,
        budget: Duration,
        breaker: Breaker,
    },
}

/// Why an id was not answered by Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unanswered {
    Timeout,
    Error,
}

impl Unanswered {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Unanswered::Timeout => "timeout",
            Unanswered::Error => "error",
        }
    }
}

/// One id's answer from the cache or Redis.
#[derive(Clone)]
pub(crate) enum Answer {
    /// The record, or `None`: unknown (Redis alone), deleted, or cached as unknown.
    Found(Option<Arc<ItemRecord>>),
    /// Layered: Redis has no key for it; the snapshot answers.
    Absent,
}

pub(crate) type Fetched = HashMap<Box<str>, Answer, IdHasher>;
type SharedFetch = Shared<BoxFuture<'static, Option<Arc<Result<Fetched, Unanswered>>>>>;

pub struct CachedItems {
    pub(crate) backend: Backend,
    pub(crate) cache: moka::sync::Cache<Box<str>, Cached, IdHasher>,
    /// Fetches in flight, with the cache tag (generation) their records are decoded for.
    inflight: Mutex<HashMap<Box<str>, (SharedFetch, u64), IdHasher>>,
    pub(crate) hits: metrics::Counter,
    pub(crate) misses: metrics::Counter,
    last_warning: AtomicU64,
    pub(crate) started: Instant,
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

    pub(crate) fn new(backend: Backend, config: &CacheConfig) -> Self {
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
            Backend::Layered { .. } => "layered",
        }
    }

    fn live(&self) -> Option<&ArcSwap<Generation>> {
        match &self.backend {
            Backend::Embedded(live) | Backend::Layered { live, .. } => Some(live),
            Backend::Redis { .. } => None,
        }
    }

    /// Live items in the embedded store (`None` for Redis, which does not know its size).
    pub fn item_count(&self) -> Option<u64> {
        self.live().map(|g| g.load().len())
    }

    /// The live embedded generation's number.
    pub fn generation(&self) -> Option<u64> {
        self.live().map(|g| g.load().number())
    }

    /// Publishes a new embedded generation: requests that start from now on read it; those
    /// in flight finish on the one they pinned. Cached entries of older generations are
    /// dropped.
    pub fn swap(&self, generation: Generation) -> bool {
        let Some(live) = self.live() else {
            return false;
        };
        metrics::gauge!(m::ITEM_STORE_ITEMS).set(generation.len() as f64);
        metrics::gauge!(m::ITEM_STORE_GENERATION).set(generation.number() as f64);
        live.store(Arc::new(generation));
        self.cache.invalidate_all();
        true
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
    /// embedded store it only pins the live generation (lookups are local, done during
    /// assembly, and never cut short).
    pub async fn for_request<'a>(
        self: &Arc<Self>,
        ids: impl IntoIterator<Item = &'a str>,
        deadline: Instant,
    ) -> RequestItems {
        let mut unread = 0;
        let view = match &self.backend {
            Backend::Embedded(live) => View::Embedded(live.load_full()),
            Backend::Redis { store, timeout } => {
                let ids: Vec<&str> = ids.into_iter().collect();
                let (found, unanswered, failed) = self
                    .fetch_remote(*timeout, ids.iter().copied(), deadline, None)
                    .await;
                for (reason, n) in unanswered {
                    metrics::counter!(m::ITEM_STORE_FALLBACKS, "reason" => reason.as_str())
                        .increment(n);
                }
                if !failed.is_empty() {
                    unread = ids.iter().filter(|id| failed.contains(**id)).count();
                }
                View::Remote {
                    found,
                    columns: store.columns().clone(),
                }
            }
            Backend::Layered {
                live,
                budget,
                breaker,
                ..
            } => {
                let generation = live.load_full();
                let found = self
                    .fetch_layered(&generation, *budget, breaker, ids, deadline)
                    .await;
                View::Layered { generation, found }
            }
        };
        RequestItems {
            items: self.clone(),
            view,
            unread: AtomicUsize::new(unread),
        }
    }

    /// The ids from the cache, else from one Redis fetch (or one already in flight for the
    /// same cache tag). `pinned` is the layered view's generation: records are decoded into
    /// its columns and cached under its number, and ids Redis lacks come back `Absent`.
    /// Returns the answers, per reason how many ids were not answered, and those ids.
    pub(crate) async fn fetch_remote<'a>(
        self: &Arc<Self>,
        timeout: Duration,
        ids: impl IntoIterator<Item = &'a str>,
        deadline: Instant,
        pinned: Option<&Arc<Generation>>,
    ) -> (Fetched, Vec<(Unanswered, u64)>, HashSet<Box<str>, IdHasher>) {
        let tag = pinned.map_or(0, |g| g.number());
        let mut found: Fetched = HashMap::default();
        let mut failed: HashSet<Box<str>, IdHasher> = HashSet::default();
        let mut missing: Vec<&str> = Vec::new();
        let mut seen: HashSet<&str, IdHasher> = HashSet::default();
        for id in ids {
            if !seen.insert(id) {
                continue;
            }
            match self.cache.get(id) {
                Some(c) if c.generation == tag => {
                    self.hits.increment(1);
                    found.insert(Box::from(id), Answer::Found(c.record));
                }
                _ => missing.push(id),
            }
        }
        let mut unanswered = Vec::new();
        if missing.is_empty() {
            return (found, unanswered, failed);
        }
        let mut waits: Vec<(SharedFetch, Vec<&str>)> = Vec::new();
        let mut mine: Vec<Box<str>> = Vec::new();
        {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            for id in &missing {
                // A fetch that finished since the first look has filled the cache.
                let cached = self.cache.get(*id).filter(|c| c.generation == tag);
                if let Some(c) = cached {
                    self.hits.increment(1);
                    found.insert(Box::from(*id), Answer::Found(c.record));
                } else if let Some((fetch, _)) = inflight.get(*id).filter(|(_, t)| *t == tag) {
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
                let fetch = self.spawn_fetch(mine.clone(), timeout, pinned.cloned());
                for id in &mine {
                    inflight.insert(id.clone(), (fetch.clone(), tag));
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
                        // Ids missing from a successful fetch: their cluster node failed.
                        let mut failed = 0;
                        for id in ids {
                            match map.get(id) {
                                Some(answer) => {
                                    found.insert(Box::from(id), answer.clone());
                                }
                                None => failed += 1,
                            }
                        }
                        if failed > 0 {
                            unanswered.push((Unanswered::Error, failed));
                        }
                        continue;
                    }
                    Err(reason) => *reason,
                },
                Ok(None) => Unanswered::Error,
                Err(_) => Unanswered::Timeout,
            };
            unanswered.push((reason, ids.len() as u64));
            failed.extend(ids.into_iter().map(Box::from));
        }
        (found, unanswered, failed)
    }

    /// One `MGET` on its own task, so that it completes (and fills the cache for later
    /// requests) even when the request that started it stops waiting.
    fn spawn_fetch(
        self: &Arc<Self>,
        ids: Vec<Box<str>>,
        timeout: Duration,
        pinned: Option<Arc<Generation>>,
    ) -> SharedFetch {
        let this = self.clone();
        let task = tokio::spawn(async move {
            let (store, breaker) = match &this.backend {
                Backend::Redis { store, .. } => (store, None),
                Backend::Layered { store, breaker, .. } => (store, Some(breaker)),
                Backend::Embedded(_) => return Arc::new(Err(Unanswered::Error)),
            };
            let (columns, tag) = match &pinned {
                Some(g) => (g.columns(), g.number()),
                None => (&**store.columns(), 0),
            };
            let consequence = if pinned.is_some() {
                "answered from the snapshot"
            } else {
                "features missing for these hits"
            };
            let started = Instant::now();
            let result = tokio::time::timeout(timeout, store.mget_stored(&ids, columns)).await;
            metrics::histogram!(m::ITEM_STORE_DURATION, "store" => "redis")
                .record(started.elapsed().as_secs_f64());
            let outcome = match result {
                Ok(Ok(records)) => {
                    metrics::counter!(m::ITEM_STORE_REQUESTS, "store" => "redis", "result" => "ok")
                        .increment(1);
                    let mut map = HashMap::with_capacity_and_hasher(ids.len(), IdHasher::default());
                    let mut from_redis = 0u64;
                    for (id, stored) in ids.iter().zip(records) {
                        let record = match stored {
                            Read::Value(Stored::Live(record)) => Some(Arc::new(record)),
                            Read::Value(Stored::Deleted) => None,
                            // Layered: the snapshot answers (and its read is cached then).
                            Read::Absent if pinned.is_some() => {
                                map.insert(id.clone(), Answer::Absent);
                                continue;
                            }
                            Read::Absent => None,
                            // A cluster node that failed: unanswered, not cached.
                            Read::Failed => continue,
                        };
                        from_redis += 1;
                        this.cache.insert(
                            id.clone(),
                            Cached {
                                generation: tag,
                                record: record.clone(),
                                short: false,
                                failed: false,
                            },
                        );
                        map.insert(id.clone(), Answer::Found(record));
                    }
                    if pinned.is_some() {
                        metrics::counter!(m::ITEM_STORE_LAYER_READS, "layer" => "redis")
                            .increment(from_redis);
                    }
                    Ok(map)
                }
                Ok(Err(error)) => {
                    metrics::counter!(m::ITEM_STORE_REQUESTS, "store" => "redis", "result" => "error")
                        .increment(1);
                    if let Some(b) = breaker {
                        b.failed(this.started);
                    }
                    this.warn_sometimes(|| tracing::warn!(%error, ids = ids.len(), "redis item fetch failed; {consequence}"));
                    Err(Unanswered::Error)
                }
                Err(_) => {
                    metrics::counter!(m::ITEM_STORE_REQUESTS, "store" => "redis", "result" => "timeout")
                        .increment(1);
                    if let Some(b) = breaker {
                        b.failed(this.started);
                    }
                    this.warn_sometimes(|| {
                        tracing::warn!(
                            timeout_ms = timeout.as_millis() as u64,
                            ids = ids.len(),
                            "redis item fetch timed out; {consequence}"
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
    pub(crate) fn warn_sometimes(&self, log: impl FnOnce()) {
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

pub(crate) enum View {
    Embedded(Arc<Generation>),
    Remote {
        found: Fetched,
        columns: Arc<Columns>,
    },
    /// Redis' answers (and cached ones) for the pinned generation; the rest from it.
    Layered {
        generation: Arc<Generation>,
        found: Fetched,
    },
}

/// The items of one request: resolved per hit during assembly (on the blocking pool).
pub struct RequestItems {
    pub(crate) items: Arc<CachedItems>,
    pub(crate) view: View,
    /// Hits whose item the store failed to read (not unknown ids).
    pub(crate) unread: AtomicUsize,
}

impl std::fmt::Debug for RequestItems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestItems")
    }
}

impl RequestItems {
    pub fn columns(&self) -> &Columns {
        match &self.view {
            View::Embedded(g) | View::Layered { generation: g, .. } => g.columns(),
            View::Remote { columns, .. } => columns,
        }
    }

    /// Hits of this request whose item the store failed to read so far: Redis errors and
    /// timeouts (known once the request is prepared), embedded read errors (known after
    /// assembly). Unknown and deleted ids do not count.
    pub fn unread(&self) -> usize {
        self.unread.load(Ordering::Relaxed)
    }

    /// The item's record; `None` when unknown, deleted, or not answered in time.
    pub fn get(&self, id: &str) -> Option<Arc<ItemRecord>> {
        match &self.view {
            View::Remote { found, .. } => remote_answer(found, id),
            View::Embedded(generation) => self.embedded_get(generation, id),
            View::Layered { generation, found } => self.layered_get(generation, found, id),
        }
    }

    /// The records of `ids`, in order: the same answers as [`RequestItems::get`] per id. For
    /// the embedded store the ids the cache lacks are read from the store in key order (the
    /// B-tree's pages are then visited once, in order), each through the cache's entry API as
    /// in `get` (one read per key under concurrent misses).
    pub fn get_many<'a>(
        &self,
        ids: impl ExactSizeIterator<Item = &'a str>,
    ) -> Vec<Option<Arc<ItemRecord>>> {
        let generation = match &self.view {
            View::Remote { found, .. } => {
                return ids.map(|id| remote_answer(found, id)).collect();
            }
            View::Layered { generation, found } => {
                return self.layered_get_many(generation, found, ids);
            }
            View::Embedded(generation) => generation,
        };
        let number = generation.number();
        let mut out = Vec::with_capacity(ids.len());
        let mut misses: Vec<(&str, usize)> = Vec::new();
        for (i, id) in ids.enumerate() {
            match self.items.cache.get(id) {
                Some(c) if c.generation == number && !c.failed => out.push(c.record),
                _ => {
                    out.push(None);
                    misses.push((id, i));
                }
            }
        }
        self.items.hits.increment((out.len() - misses.len()) as u64);
        misses.sort_unstable();
        let mut previous: Option<&str> = None;
        let mut previous_failed = false;
        for (k, &(id, i)) in misses.iter().enumerate() {
            out[i] = if previous == Some(id) {
                // The same id twice in one request: the second look is a cache hit (or the
                // same failure, counted for this hit too).
                self.items.hits.increment(1);
                if previous_failed {
                    self.unread.fetch_add(1, Ordering::Relaxed);
                }
                out[misses[k - 1].1].clone()
            } else {
                let unread = self.unread();
                let record = self.embedded_load(generation, id);
                previous_failed = self.unread() > unread;
                record
            };
            previous = Some(id);
        }
        out
    }

    pub(crate) fn embedded_get(
        &self,
        generation: &Generation,
        id: &str,
    ) -> Option<Arc<ItemRecord>> {
        if let Some(c) = self.items.cache.get(id) {
            if c.generation == generation.number() && !c.failed {
                self.items.hits.increment(1);
                return c.record;
            }
        }
        self.embedded_load(generation, id)
    }

    /// The entry of `id` for `generation`: read from the store unless another thread has
    /// just put it in the cache.
    fn embedded_load(&self, generation: &Generation, id: &str) -> Option<Arc<ItemRecord>> {
        let cache = &self.items.cache;
        let number = generation.number();
        let entry = cache.entry(Box::from(id)).or_insert_with_if(
            || {
                let started = Instant::now();
                let (record, failed) = match generation.get(id) {
                    Ok(r) => (r.map(Arc::new), false),
                    Err(error) => {
                        metrics::counter!(m::ITEM_STORE_REQUESTS, "store" => "embedded", "result" => "error")
                            .increment(1);
                        self.items.warn_sometimes(|| tracing::error!(%error, "embedded item store read failed; features missing for this hit"));
                        (None, true)
                    }
                };
                metrics::histogram!(m::ITEM_STORE_DURATION, "store" => "embedded")
                    .record(started.elapsed().as_secs_f64());
                Cached {
                    generation: number,
                    record,
                    short: false,
                    failed,
                }
            },
            |c| c.generation != number || c.failed,
        );
        if entry.is_fresh() {
            self.items.misses.increment(1);
        } else {
            self.items.hits.increment(1);
        }
        let cached = entry.into_value();
        if cached.failed {
            // Not an unknown item: counted for this request and never served from the cache.
            cache.invalidate(id);
            self.unread.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::ITEM_STORE_FALLBACKS, "reason" => "error").increment(1);
        }
        cached.record
    }
}

fn remote_answer(found: &Fetched, id: &str) -> Option<Arc<ItemRecord>> {
    match found.get(id) {
        Some(Answer::Found(record)) => record.clone(),
        Some(Answer::Absent) | None => None,
    }
}

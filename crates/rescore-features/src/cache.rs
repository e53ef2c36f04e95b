//! The in-process item cache in front of either store, and the per-request view of it.
//!
//! - Bounded by bytes (a weigher per entry), entries expire after `ttl_secs`; unknown ids are
//!   cached too, for `unknown_ttl_secs`, so a hot unknown id neither hits the store on every
//!   request nor stays "unknown" for long after it is added.
//! - Embedded store: not cached here. A request pins the live generation (so a swap never
//!   mixes two generations in one request) and reads its hits' rows in place from the mapped
//!   file until its deadline (docs/adr/0008-mapped-item-snapshot.md).
//! - Redis: the ids a request's hits lack are fetched in one `MGET` on a spawned task bounded by
//!   `item_store.redis.timeout_ms`; ids already being fetched for another request are waited
//!   for instead of fetched again (one fetch per key under concurrent misses). A request stops
//!   waiting at its own budget; ids not answered by then are missing for that request
//!   (counted) and are not cached, so the next request asks again.
//! - Layered (Redis in front of the embedded snapshot, [`crate::layered`]): the same fetch,
//!   decoded into the pinned generation's columns and cached under its number; what Redis
//!   lacks, or cannot answer in its budget, is read in place from the snapshot.
//! - A store failure is never an unknown item: ids the store could not read (Redis error or
//!   timeout; embedded rows not read by the request's deadline) are counted per request
//!   ([`RequestItems::unread`]), so serving can return the baseline
//!   (`fallback: "feature_store"`), and are not cached.

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
use crate::record::{Columns, ItemRecord, ItemRef};
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
    /// Layered: `Absent` remembers that Redis has no key for the id, so the snapshot answers
    /// (read in place each time) without a Redis round trip.
    pub(crate) answer: Answer,
}

struct Expiry {
    ttl: Duration,
    unknown_ttl: Duration,
}

impl Expiry {
    fn of(&self, value: &Cached) -> Option<Duration> {
        Some(match value.answer {
            Answer::Found(Some(_)) | Answer::Absent => self.ttl,
            Answer::Found(None) => self.unknown_ttl,
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
                let record = match &v.answer {
                    Answer::Found(Some(r)) => r.heap_bytes(),
                    Answer::Found(None) | Answer::Absent => 0,
                };
                let bytes = k.len() + record;
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

    /// Releases the live embedded generation's mapped pages (benchmarks of cold reads; see
    /// `Generation::release_pages`).
    pub fn release_pages(&self) -> std::io::Result<()> {
        match self.live() {
            Some(live) => live.load().release_pages(),
            None => Ok(()),
        }
    }

    /// Turns the live embedded generation's cold-request prefetch off or on (benchmarks; see
    /// `Generation::set_cold_prefetch`).
    pub fn set_cold_prefetch(&self, on: bool) {
        if let Some(live) = self.live() {
            live.load().set_cold_prefetch(on);
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
        let mut unread = 0;
        let view = match &self.backend {
            Backend::Embedded(live) => View::Embedded {
                generation: live.load_full(),
                deadline: Deadline::new(deadline),
            },
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
                View::Layered {
                    generation,
                    found,
                    deadline: Deadline::new(deadline),
                }
            }
        };
        RequestItems {
            items: self.clone(),
            view,
            unread: AtomicUsize::new(unread),
            coverage_counted: std::sync::atomic::AtomicBool::new(false),
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
                    found.insert(Box::from(id), c.answer);
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
                    found.insert(Box::from(*id), c.answer);
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
                        let mut lost = 0;
                        for id in ids {
                            match map.get(id) {
                                Some(answer) => {
                                    found.insert(Box::from(id), answer.clone());
                                }
                                None => {
                                    lost += 1;
                                    failed.insert(Box::from(id));
                                }
                            }
                        }
                        if lost > 0 {
                            unanswered.push((Unanswered::Error, lost));
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
                            // Layered: the snapshot answers.
                            Read::Absent if pinned.is_some() => {
                                this.cache.insert(
                                    id.clone(),
                                    Cached {
                                        generation: tag,
                                        answer: Answer::Absent,
                                    },
                                );
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
                                answer: Answer::Found(record.clone()),
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

/// The request's deadline for reads from the mapped snapshot; lifted once the request is
/// over (shadow scoring reads the items afterwards).
pub(crate) struct Deadline {
    at: Instant,
    enforced: std::sync::atomic::AtomicBool,
}

impl Deadline {
    fn new(at: Instant) -> Self {
        Deadline {
            at,
            enforced: true.into(),
        }
    }

    fn get(&self) -> Option<Instant> {
        self.enforced.load(Ordering::Relaxed).then_some(self.at)
    }
}

pub(crate) enum View {
    Embedded {
        generation: Arc<Generation>,
        deadline: Deadline,
    },
    Remote {
        found: Fetched,
        columns: Arc<Columns>,
    },
    /// Redis' answers (and cached ones) for the pinned generation; the rest from it.
    Layered {
        generation: Arc<Generation>,
        found: Fetched,
        deadline: Deadline,
    },
}

/// The items of one request: resolved per hit during assembly (on the blocking pool).
pub struct RequestItems {
    pub(crate) items: Arc<CachedItems>,
    pub(crate) view: View,
    /// Hits whose item the store failed to read (not unknown ids).
    pub(crate) unread: AtomicUsize,
    /// Whether the hits a shard-filtered snapshot does not cover were counted: by the first
    /// snapshot read, which covers every hit; later reads of some of them (monitoring's
    /// sample, shadows) must not count them again.
    pub(crate) coverage_counted: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for RequestItems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestItems")
    }
}

impl RequestItems {
    pub fn columns(&self) -> &Columns {
        match &self.view {
            View::Embedded { generation, .. } | View::Layered { generation, .. } => {
                generation.columns()
            }
            View::Remote { columns, .. } => columns,
        }
    }

    /// Hits of this request whose item the store failed to read so far: Redis errors and
    /// timeouts (known once the request is prepared), embedded rows not read by the deadline
    /// (known after assembly). Unknown and deleted ids do not count.
    pub fn unread(&self) -> usize {
        self.unread.load(Ordering::Relaxed)
    }

    /// Lets later reads of the embedded store run past the request's deadline (for work done
    /// after the request was answered, such as shadow scoring).
    pub fn lift_deadline(&self) {
        if let View::Embedded { deadline, .. } | View::Layered { deadline, .. } = &self.view {
            deadline.enforced.store(false, Ordering::Relaxed);
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
    /// deadline are missing (counted as a `timeout` fallback and as unread). Redis: what the
    /// request's round trip answered. Layered: Redis' answers, the rest from the snapshot.
    pub fn get_many<'a>(
        &self,
        ids: impl ExactSizeIterator<Item = &'a str>,
    ) -> Vec<Option<ItemRef<'_>>> {
        match &self.view {
            View::Remote { found, .. } => ids.map(|id| remote_answer(found, id)).collect(),
            View::Embedded {
                generation,
                deadline,
            } => self.snapshot_rows(generation, ids, deadline),
            View::Layered {
                generation,
                found,
                deadline,
            } => {
                let mut out = Vec::with_capacity(ids.len());
                let mut rest: Vec<(usize, &str)> = Vec::new();
                for (i, id) in ids.enumerate() {
                    match found.get(id) {
                        Some(Answer::Found(record)) => {
                            out.push(record.as_deref().map(ItemRef::record))
                        }
                        Some(Answer::Absent) | None => {
                            out.push(None);
                            rest.push((i, id));
                        }
                    }
                }
                if !rest.is_empty() {
                    metrics::counter!(m::ITEM_STORE_LAYER_READS, "layer" => "snapshot")
                        .increment(rest.len() as u64);
                    let rows =
                        self.snapshot_rows(generation, rest.iter().map(|&(_, id)| id), deadline);
                    for ((i, _), row) in rest.into_iter().zip(rows) {
                        out[i] = row;
                    }
                }
                out
            }
        }
    }

    /// The rows of `ids` read in place from `generation` until the deadline. In a
    /// shard-filtered generation, an id it lacks whose shard it does not keep is counted as
    /// unread (`not_covered`): its shard moved to this node after the import, and scoring it
    /// as an unknown item would rank it silently wrong (ADR 0009).
    fn snapshot_rows<'s, 'a>(
        &'s self,
        generation: &'s Generation,
        ids: impl ExactSizeIterator<Item = &'a str>,
        deadline: &Deadline,
    ) -> Vec<Option<ItemRef<'s>>> {
        let started = Instant::now();
        let (rows, unread) = match generation.shard_filter() {
            None => generation.rows(ids, deadline.get()),
            Some(filter) => {
                let ids: Vec<&str> = ids.collect();
                let (rows, unread) = generation.rows(ids.iter().copied(), deadline.get());
                // After a read cut short by the deadline the request falls back anyway.
                if unread == 0 && !self.coverage_counted.swap(true, Ordering::Relaxed) {
                    let not_covered = ids
                        .iter()
                        .zip(&rows)
                        .filter(|(id, row)| row.is_none() && !filter.keeps(id))
                        .count();
                    if not_covered > 0 {
                        self.unread.fetch_add(not_covered, Ordering::Relaxed);
                        metrics::counter!(m::ITEM_STORE_FALLBACKS, "reason" => "not_covered")
                            .increment(not_covered as u64);
                    }
                }
                (rows, unread)
            }
        };
        metrics::histogram!(m::ITEM_STORE_DURATION, "store" => "embedded")
            .record(started.elapsed().as_secs_f64());
        if unread > 0 {
            self.unread.fetch_add(unread, Ordering::Relaxed);
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

fn remote_answer<'f>(found: &'f Fetched, id: &str) -> Option<ItemRef<'f>> {
    match found.get(id) {
        Some(Answer::Found(record)) => record.as_deref().map(ItemRef::record),
        Some(Answer::Absent) | None => None,
    }
}

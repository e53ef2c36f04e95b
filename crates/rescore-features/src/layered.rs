//! The layered item store: Redis (fresh items, written by the ETL) in front of the embedded
//! snapshot (the whole catalogue). docs/feature-store.md#layered describes the contract:
//!
//! - Redis is the newer layer: when it has a key for an id (a value or a tombstone), that is
//!   the answer; the snapshot answers the ids Redis lacks.
//! - The Redis call has a budget of its own (`item_store.layered.redis_budget_ms`); ids it does
//!   not answer in time, or at all, are answered from the snapshot (counted as degraded, never
//!   a missing feature), and cached for `unknown_ttl_secs` only, so that fresh values return
//!   soon after Redis does.
//! - After a failed or late call Redis is not asked for `retry_after_ms`: a stopped or paused
//!   Redis costs one budget, not one per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::Deserialize;

use crate::cache::{Backend, CacheConfig, CachedItems, Fetched, IdHasher};
use crate::embedded::Generation;
use crate::metric_names as m;
use crate::redis_store::RedisStore;

/// `[item_store.layered]` in the config file (docs/configuration.md).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LayeredConfig {
    /// Budget of the one Redis round trip per request; what is not answered by then comes
    /// from the snapshot. Also cut short by the request's own budget.
    pub redis_budget_ms: u64,
    /// After a failed or late Redis call, the snapshot alone answers for this long (0 = ask
    /// Redis on every request).
    pub retry_after_ms: u64,
}

impl Default for LayeredConfig {
    fn default() -> Self {
        LayeredConfig {
            redis_budget_ms: 10,
            retry_after_ms: 1000,
        }
    }
}

impl LayeredConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=1000).contains(&self.redis_budget_ms) {
            return Err("item_store.layered.redis_budget_ms must be in 1..=1000".into());
        }
        if self.retry_after_ms > 600_000 {
            return Err("item_store.layered.retry_after_ms must be at most 600000".into());
        }
        Ok(())
    }
}

/// Skips Redis for a while after it failed: milliseconds since the cache was made until which
/// the snapshot alone answers.
pub(crate) struct Breaker {
    retry_after: Duration,
    skip_until_ms: AtomicU64,
}

impl Breaker {
    pub(crate) fn failed(&self, started: Instant) {
        if self.retry_after.is_zero() {
            return;
        }
        let until = (started.elapsed() + self.retry_after).as_millis() as u64;
        self.skip_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    fn open(&self, started: Instant) -> bool {
        (started.elapsed().as_millis() as u64) < self.skip_until_ms.load(Ordering::Relaxed)
    }
}

impl CachedItems {
    /// Redis in front of `generation` (and of the generations swapped in after it). Needs a
    /// tokio runtime (connections are made lazily on it).
    pub fn layered(
        generation: Generation,
        store: RedisStore,
        layered: &LayeredConfig,
        config: &CacheConfig,
    ) -> Self {
        metrics::gauge!(m::ITEM_STORE_ITEMS).set(generation.len() as f64);
        metrics::gauge!(m::ITEM_STORE_GENERATION).set(generation.number() as f64);
        Self::new(
            Backend::Layered {
                live: ArcSwap::from_pointee(generation),
                store,
                budget: Duration::from_millis(layered.redis_budget_ms),
                breaker: Breaker {
                    retry_after: Duration::from_millis(layered.retry_after_ms),
                    skip_until_ms: AtomicU64::new(0),
                },
            },
            config,
        )
    }

    /// Cached answers for `generation`, then Redis for the rest (unless it failed moments
    /// ago). Ids left out of the result are read from the snapshot as degraded.
    pub(crate) async fn fetch_layered<'a>(
        self: &Arc<Self>,
        generation: &Arc<Generation>,
        budget: Duration,
        breaker: &Breaker,
        ids: impl IntoIterator<Item = &'a str>,
        deadline: Instant,
    ) -> Fetched {
        if !breaker.open(self.started) {
            let (found, unanswered, _) = self
                .fetch_remote(budget, ids, deadline, Some(generation))
                .await;
            for (reason, n) in unanswered {
                metrics::counter!(m::ITEM_STORE_LAYER_DEGRADED, "reason" => reason.as_str())
                    .increment(n);
            }
            return found;
        }
        let tag = generation.number();
        let mut found = Fetched::default();
        let mut skipped = 0u64;
        let mut seen = std::collections::HashSet::<&str, IdHasher>::default();
        for id in ids {
            if !seen.insert(id) {
                continue;
            }
            match self.cache.get(id) {
                Some(c) if c.generation == tag => {
                    self.hits.increment(1);
                    found.insert(Box::from(id), c.answer);
                }
                _ => skipped += 1,
            }
        }
        self.misses.increment(skipped);
        metrics::counter!(m::ITEM_STORE_LAYER_DEGRADED, "reason" => "skipped").increment(skipped);
        found
    }
}

//! Everything between a request and a feature matrix: which value each model feature takes
//! ([`FeatureSpec`], declared in a version's `manifest.toml`), where item features come from
//! (the embedded store of [`embedded`] or Redis, behind the [`CachedItems`] cache) and the
//! assembly of row-major rows. docs/feature-store.md describes the whole.

mod assemble;
mod cache;
pub mod embedded;
mod layered;
mod parquet_pages;
mod parquet_snapshot;
mod record;
pub mod redis_store;
pub mod routing_shard;
mod snapshot;
mod spec;
pub mod suspicion;
pub mod update;

pub use assemble::{Assembled, SlotSource};
pub use cache::{CacheConfig, CachedItems, RequestItems};
pub use embedded::{
    BuildReport, DataDir, Entry, Generation, ServingClaim, SnapshotFormat, StoreError,
};
pub use layered::LayeredConfig;
pub use record::{AttachedValue, Columns, ItemOrigin, ItemRecord, ItemRef, MAX_COLUMNS};
pub use redis_store::{RedisConfig, RedisStore, RedisStoreError, ValueFormat};
pub use routing_shard::{IndexShards, ShardFilter};
pub use spec::{seller_controlled_keys, FeatureDecl, FeatureSpec, SourceKind, SpecError};
pub use update::{parse_updates, OpKind, Update, UpdateError, UpdateOp};

use serde::Deserialize;

/// Which store answers item lookups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// The embedded store in the data directory (from `--items`, or what `items import`
    /// published there).
    #[default]
    Embedded,
    /// The Redis online store of `[item_store.redis]`.
    Redis,
    /// Redis in front of the embedded snapshot: Redis answers the items it has, the snapshot
    /// the rest, and everything while Redis is down or slow (`[item_store.layered]`).
    Layered,
}

/// `[item_store.embedded]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedConfig {
    /// Deprecated and ignored: the redb store's page cache (the store is memory-mapped now,
    /// ADR 0008). Still accepted so that existing config files load.
    pub read_cache_bytes: usize,
    /// How often the server looks for a newer generation in the data directory (published by
    /// `items import|put|delete`); 0 = never.
    pub reload_interval_ms: u64,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            read_cache_bytes: 16 << 20,
            reload_interval_ms: 5000,
        }
    }
}

/// `[item_store]` in the config file (docs/configuration.md).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ItemStoreConfig {
    pub backend: StoreKind,
    pub cache: CacheConfig,
    pub embedded: EmbeddedConfig,
    pub redis: RedisConfig,
    pub layered: LayeredConfig,
}

impl ItemStoreConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.cache.validate()?;
        if self.embedded.read_cache_bytes < 1 << 20 {
            return Err(
                "item_store.embedded.read_cache_bytes must be at least 1048576 (1 MiB)".into(),
            );
        }
        if matches!(self.backend, StoreKind::Redis | StoreKind::Layered) {
            self.redis.validate()?;
        }
        self.layered.validate()?;
        Ok(())
    }
}

/// Metric names owned by this crate (catalogue in docs/metrics.md).
pub mod metric_names {
    pub const ITEM_CACHE_HITS: &str = "rescore_item_cache_hits_total";
    pub const ITEM_CACHE_MISSES: &str = "rescore_item_cache_misses_total";
    pub const ITEM_CACHE_EVICTIONS: &str = "rescore_item_cache_evictions_total";
    pub const ITEM_STORE_ITEMS: &str = "rescore_item_store_items";
    pub const ITEM_STORE_GENERATION: &str = "rescore_item_store_generation";
    pub const ITEM_STORE_SWAPS: &str = "rescore_item_store_swaps_total";
    pub const ITEM_STORE_DURATION: &str = "rescore_item_store_duration_seconds";
    pub const ITEM_STORE_REQUESTS: &str = "rescore_item_store_requests_total";
    pub const ITEM_STORE_FALLBACKS: &str = "rescore_item_store_fallbacks_total";
    pub const ITEM_STORE_LAYER_READS: &str = "rescore_item_store_layer_reads_total";
    pub const ITEM_STORE_LAYER_DEGRADED: &str = "rescore_item_store_layer_degraded_total";
}

/// Registers help texts for this crate's metrics, and the series with known labels at 0.
pub fn describe_metrics() {
    use metric_names::*;
    metrics::describe_counter!(
        ITEM_CACHE_HITS,
        "Item lookups answered by the in-process cache (unknown ids and lookups that joined another request's fetch included)."
    );
    metrics::describe_counter!(
        ITEM_CACHE_MISSES,
        "Item lookups that went to the item store."
    );
    metrics::describe_counter!(
        ITEM_CACHE_EVICTIONS,
        "Item cache entries removed by cause: size (byte bound) or expired (TTL)."
    );
    metrics::describe_gauge!(ITEM_STORE_ITEMS, "Live items in the embedded item store.");
    metrics::describe_gauge!(
        ITEM_STORE_GENERATION,
        "Generation number of the embedded store being served."
    );
    metrics::describe_counter!(
        ITEM_STORE_SWAPS,
        "Newer embedded store generations seen while serving, by result: success (swapped), failure (cannot be opened), foreign (another server's catalogue; not swapped)."
    );
    metrics::describe_histogram!(
        ITEM_STORE_DURATION,
        metrics::Unit::Seconds,
        "One item store read: an embedded lookup, or a Redis MGET round trip."
    );
    metrics::describe_counter!(
        ITEM_STORE_REQUESTS,
        "Item store reads by store and result (ok, timeout, error)."
    );
    metrics::describe_counter!(
        ITEM_STORE_FALLBACKS,
        "Item lookups served without store data (features missing/default) because the store timed out or failed, by reason."
    );
    metrics::describe_counter!(
        ITEM_STORE_LAYER_READS,
        "Layered store: item lookups per answering layer: redis (a value or tombstone fetched on an item cache miss) or snapshot (every read of the snapshot: Redis has no key, remembered for the cache TTL, or did not answer)."
    );
    metrics::describe_counter!(
        ITEM_STORE_LAYER_DEGRADED,
        "Layered store: item lookups answered by the snapshot because Redis did not answer, by reason (timeout, error, skipped)."
    );
    metrics::counter!(ITEM_CACHE_HITS).absolute(0);
    metrics::counter!(ITEM_CACHE_MISSES).absolute(0);
    for cause in ["size", "expired"] {
        metrics::counter!(ITEM_CACHE_EVICTIONS, "cause" => cause).absolute(0);
    }
    for reason in ["timeout", "error", "not_covered"] {
        metrics::counter!(ITEM_STORE_FALLBACKS, "reason" => reason).absolute(0);
    }
    for layer in ["redis", "snapshot"] {
        metrics::counter!(ITEM_STORE_LAYER_READS, "layer" => layer).absolute(0);
    }
    for reason in ["timeout", "error", "skipped"] {
        metrics::counter!(ITEM_STORE_LAYER_DEGRADED, "reason" => reason).absolute(0);
    }
    for result in ["success", "failure", "foreign"] {
        metrics::counter!(ITEM_STORE_SWAPS, "result" => result).absolute(0);
    }
    metrics::gauge!(ITEM_STORE_ITEMS).set(0.0);
}

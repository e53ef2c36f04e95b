//! Everything between a request and a feature matrix: which value each model feature takes
//! ([`FeatureSpec`], declared in a version's `manifest.toml`), where item features come from
//! ([`ItemStore`], cached by [`CachedItems`]) and the assembly of row-major rows.

mod items;
mod spec;

pub use items::{CachedItems, Columns, EmbeddedStore, ItemRecord, ItemStore, ItemStoreError};
pub use spec::{FeatureDecl, FeatureSpec, SourceKind, SpecError};

/// Metric names owned by this crate (catalogue in docs/metrics.md).
pub mod metric_names {
    pub const ITEM_CACHE_HITS: &str = "rescore_item_cache_hits_total";
    pub const ITEM_CACHE_MISSES: &str = "rescore_item_cache_misses_total";
    pub const ITEM_STORE_ITEMS: &str = "rescore_item_store_items";
}

/// Registers help texts for this crate's metrics.
pub fn describe_metrics() {
    use metric_names::*;
    metrics::describe_counter!(
        ITEM_CACHE_HITS,
        "Item lookups answered by the in-process cache (unknown ids included)."
    );
    metrics::describe_counter!(
        ITEM_CACHE_MISSES,
        "Item lookups that went to the item store."
    );
    metrics::describe_gauge!(ITEM_STORE_ITEMS, "Items in the loaded item store.");
    // Exposed from start-up, also when no item store is configured.
    metrics::counter!(ITEM_CACHE_HITS).absolute(0);
    metrics::counter!(ITEM_CACHE_MISSES).absolute(0);
    metrics::gauge!(ITEM_STORE_ITEMS).set(0.0);
}

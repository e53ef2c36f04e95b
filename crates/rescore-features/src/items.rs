//! Item features by item id: a store (the embedded snapshot here; Redis and a disk-backed
//! store later) behind a bounded in-process `moka` cache.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::sync::Arc;

use serde::Deserialize;

use crate::metric_names;

/// One item's features, sorted by name for binary search.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRecord {
    features: Box<[(Box<str>, f64)]>,
}

impl ItemRecord {
    pub fn new(features: BTreeMap<String, f64>) -> Self {
        ItemRecord {
            features: features
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.features
            .binary_search_by(|(k, _)| k.as_ref().cmp(name))
            .ok()
            .map(|i| self.features[i].1)
    }
}

pub trait ItemStore: Send + Sync {
    /// `None` when the store does not know the item.
    fn get(&self, id: &str) -> Option<Arc<ItemRecord>>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ItemStoreError {
    #[error("cannot read the item snapshot: {0}")]
    Io(#[from] std::io::Error),
    #[error("item snapshot line {line}: {problem}")]
    Line { line: usize, problem: String },
}

/// The snapshot in memory: loaded once from JSON Lines, immutable afterwards.
#[derive(Debug, Default)]
pub struct EmbeddedStore {
    items: HashMap<Box<str>, Arc<ItemRecord>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotLine {
    id: String,
    #[serde(default)]
    features: BTreeMap<String, Option<f64>>,
}

impl EmbeddedStore {
    /// Reads `{"id": "...", "features": {"name": number|null, ...}}` per line. Blank lines are
    /// skipped; a later line for the same id replaces the earlier one. Any invalid line fails
    /// the whole load (a half-understood snapshot would serve wrong features silently).
    pub fn from_jsonl(reader: impl BufRead) -> Result<Self, ItemStoreError> {
        let mut items = HashMap::new();
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: SnapshotLine =
                serde_json::from_str(&line).map_err(|e| ItemStoreError::Line {
                    line: i + 1,
                    problem: e.to_string(),
                })?;
            let features = parsed
                .features
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
            items.insert(
                parsed.id.into_boxed_str(),
                Arc::new(ItemRecord::new(features)),
            );
        }
        Ok(EmbeddedStore { items })
    }
}

impl ItemStore for EmbeddedStore {
    fn get(&self, id: &str) -> Option<Arc<ItemRecord>> {
        self.items.get(id).cloned()
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

/// A store behind a bounded cache. Unknown ids are cached too (as `None`), so a hot unknown
/// id does not hit the store on every request.
pub struct CachedItems {
    store: Arc<dyn ItemStore>,
    cache: moka::sync::Cache<Box<str>, Option<Arc<ItemRecord>>>,
    hits: metrics::Counter,
    misses: metrics::Counter,
}

impl CachedItems {
    pub fn new(store: Arc<dyn ItemStore>, capacity: u64) -> Self {
        metrics::gauge!(metric_names::ITEM_STORE_ITEMS).set(store.len() as f64);
        CachedItems {
            store,
            cache: moka::sync::Cache::new(capacity),
            hits: metrics::counter!(metric_names::ITEM_CACHE_HITS),
            misses: metrics::counter!(metric_names::ITEM_CACHE_MISSES),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<ItemRecord>> {
        if let Some(found) = self.cache.get(id) {
            self.hits.increment(1);
            return found;
        }
        // `entry().or_insert_with` lets one caller fetch per key under concurrent misses.
        let entry = self
            .cache
            .entry(Box::from(id))
            .or_insert_with(|| self.store.get(id));
        if entry.is_fresh() {
            self.misses.increment(1);
        } else {
            self.hits.increment(1);
        }
        entry.into_value()
    }

    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_lines_are_parsed_and_bad_lines_named() {
        let store = EmbeddedStore::from_jsonl(
            "{\"id\":\"x\",\"features\":{\"b\":2.5,\"a\":-1,\"n\":null}}\n\n{\"id\":\"y\"}\n"
                .as_bytes(),
        )
        .expect("valid");
        let x = store.get("x").expect("x present");
        assert_eq!(
            (x.get("a"), x.get("b"), x.get("n")),
            (Some(-1.0), Some(2.5), None)
        );
        assert!(store.get("y").is_some() && store.get("z").is_none());

        for (text, line) in [
            (
                "{\"id\":\"x\"}\n{\"id\":\"y\",\"features\":{\"a\":\"1\"}}\n",
                2,
            ),
            ("not json\n", 1),
            ("{\"id\":1}\n", 1),
            ("{\"id\":\"x\",\"feature\":{}}\n", 1),
        ] {
            match EmbeddedStore::from_jsonl(text.as_bytes()) {
                Err(ItemStoreError::Line { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn cache_answers_repeated_and_unknown_ids() {
        let store = EmbeddedStore::from_jsonl("{\"id\":\"x\",\"features\":{\"a\":1}}\n".as_bytes())
            .expect("valid");
        let cached = CachedItems::new(Arc::new(store), 10);
        for _ in 0..3 {
            assert_eq!(cached.get("x").and_then(|r| r.get("a")), Some(1.0));
            assert!(cached.get("nope").is_none());
        }
        cached.cache.run_pending_tasks();
        assert_eq!(cached.cache.entry_count(), 2);
    }
}

//! Item features by item id: a store (the embedded snapshot here; Redis and a disk-backed
//! store later) behind a bounded in-process `moka` cache.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::sync::Arc;

use serde::Deserialize;

use crate::metric_names;

/// The feature names a store knows, each with a column number. Requests resolve a model
/// feature to its column once, then read every hit's item by index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns {
    index: HashMap<Box<str>, u32>,
}

impl Columns {
    pub fn column(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn intern(&mut self, name: &str) -> u32 {
        let next = self.index.len() as u32;
        *self.index.entry(Box::from(name)).or_insert(next)
    }
}

/// One item's features by column; NaN where the item has no value.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRecord {
    values: Box<[f64]>,
}

impl ItemRecord {
    pub fn value(&self, column: u32) -> Option<f64> {
        self.values
            .get(column as usize)
            .copied()
            .filter(|v| !v.is_nan())
    }
}

pub trait ItemStore: Send + Sync {
    /// `None` when the store does not know the item.
    fn get(&self, id: &str) -> Option<Arc<ItemRecord>>;
    fn columns(&self) -> &Columns;
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
    columns: Columns,
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
        let mut columns = Columns::default();
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
            let mut values = Vec::new();
            for (name, value) in parsed.features {
                let Some(value) = value else { continue };
                let column = columns.intern(&name) as usize;
                if values.len() <= column {
                    values.resize(column + 1, f64::NAN);
                }
                values[column] = value;
            }
            items.insert(
                parsed.id.into_boxed_str(),
                Arc::new(ItemRecord {
                    values: values.into_boxed_slice(),
                }),
            );
        }
        Ok(EmbeddedStore { items, columns })
    }
}

impl ItemStore for EmbeddedStore {
    fn get(&self, id: &str) -> Option<Arc<ItemRecord>> {
        self.items.get(id).cloned()
    }

    fn columns(&self) -> &Columns {
        &self.columns
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

    pub fn columns(&self) -> &Columns {
        self.store.columns()
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
        let col = |name: &str| store.columns().column(name);
        let get = |name: &str| col(name).and_then(|c| x.value(c));
        assert_eq!(
            (get("a"), get("b"), get("n")),
            (Some(-1.0), Some(2.5), None)
        );
        assert_eq!(col("n"), None, "null values do not create columns");
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
            let a = cached.columns().column("a").expect("column a");
            assert_eq!(cached.get("x").and_then(|r| r.value(a)), Some(1.0));
            assert!(cached.get("nope").is_none());
        }
        cached.cache.run_pending_tasks();
        assert_eq!(cached.cache.entry_count(), 2);
    }
}

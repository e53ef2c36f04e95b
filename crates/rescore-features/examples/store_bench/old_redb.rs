//! The layout of ADR 0006 (issue 5), kept here only to be measured beside the mapped one on the
//! same data: one redb table `id -> version u64 LE, kind byte, f64 LE values`, read the way
//! serving read it — a moka cache (foldhash) in front, misses sorted and read one by one
//! through the cache's entry API, one decoded record (`Arc`) allocated per miss.

use std::path::Path;
use std::sync::Arc;

use redb::{ReadableDatabase, TableDefinition};
use rescore_features::Generation;

const ITEMS: TableDefinition<&str, &[u8]> = TableDefinition::new("items");

/// Writes every live item of `generation` into a redb file at `path` (as issue 5's builder
/// did: write transactions of 100,000 items without fsync, the last one durable).
pub fn build(generation: &Generation, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let _ = std::fs::remove_file(path);
    let db = redb::Builder::new()
        .set_cache_size(256 << 20)
        .create(path)?;
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::None)?;
    let mut in_txn = 0;
    let mut value = Vec::new();
    for (id, entry) in generation.entries() {
        let Some(values) = entry.values else { continue };
        value.clear();
        value.extend_from_slice(&entry.version.to_le_bytes());
        value.push(0);
        for v in values {
            value.extend_from_slice(&v.to_le_bytes());
        }
        txn.open_table(ITEMS)?.insert(id, value.as_slice())?;
        in_txn += 1;
        if in_txn == 100_000 {
            txn.commit()?;
            txn = db.begin_write()?;
            txn.set_durability(redb::Durability::None)?;
            in_txn = 0;
        }
    }
    txn.set_durability(redb::Durability::Immediate)?;
    txn.commit()?;
    Ok(())
}

type Record = Option<Arc<Box<[f64]>>>;

pub struct OldStore {
    table: redb::ReadOnlyTable<&'static str, &'static [u8]>,
    cache: moka::sync::Cache<Box<str>, Record, foldhash::fast::RandomState>,
    _db: redb::ReadOnlyDatabase,
}

impl OldStore {
    /// `read_cache` is redb's page cache (16 MiB in serving), `cache_bytes` the item cache's
    /// bound (64 MiB), weighed as serving did (id + values + 112 bytes).
    pub fn open(
        path: &Path,
        read_cache: usize,
        cache_bytes: u64,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let db = redb::Builder::new()
            .set_cache_size(read_cache)
            .open_read_only(path)?;
        let table = db.begin_read()?.open_table(ITEMS)?;
        let cache = moka::sync::Cache::<Box<str>, Record>::builder()
            .max_capacity(cache_bytes)
            .weigher(|k, v| (k.len() + v.as_ref().map_or(0, |r| r.len() * 8) + 112) as u32)
            .build_with_hasher(foldhash::fast::RandomState::default());
        Ok(OldStore {
            table,
            cache,
            _db: db,
        })
    }

    /// The records of `ids`, as serving's `get_many` did; also returns the cache hits.
    pub fn get_many(&self, ids: &[String]) -> (Vec<Record>, usize) {
        let mut out = Vec::with_capacity(ids.len());
        let mut misses: Vec<(&str, usize)> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match self.cache.get(id.as_str()) {
                Some(r) => out.push(r),
                None => {
                    out.push(None);
                    misses.push((id, i));
                }
            }
        }
        let hits = ids.len() - misses.len();
        misses.sort_unstable();
        for (id, i) in misses {
            let entry = self.cache.entry(Box::from(id)).or_insert_with(|| {
                let guard = self.table.get(id).ok().flatten()?;
                let bytes = guard.value();
                (bytes.get(8) == Some(&0)).then(|| {
                    let values: Vec<f64> = bytes[9..]
                        .chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                        .collect();
                    Arc::new(values.into_boxed_slice())
                })
            });
            out[i] = entry.into_value();
        }
        (out, hits)
    }

    pub fn clear(&self) {
        self.cache.invalidate_all();
        self.cache.run_pending_tasks();
    }
}

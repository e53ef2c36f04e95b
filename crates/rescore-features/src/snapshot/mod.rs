//! One generation of the embedded item store: an immutable file of fixed-width f64 rows with a
//! hash index ([`format`]), memory-mapped ([`mapped`]) and read in place. docs/adr/0008.
//!
//! Lookups allocate nothing: a row is a `&[f64]` into the mapping, valid while the
//! [`Generation`] lives (a request pins it through an `Arc`). Pages come from the OS page
//! cache, so the store adds no anonymous memory whatever the item count.

pub(crate) mod format;
mod mapped;
mod prefetch;
pub(crate) mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::embedded::StoreError;
use crate::record::{Columns, ItemRecord};
use crate::routing_shard::ShardFilter;
use format::{Header, DELETED};
use mapped::Mapped;

/// One published generation, open read-only.
pub struct Generation {
    number: u64,
    /// Unique per opened generation in this process (see `ItemOrigin::Row`).
    serial: u64,
    path: PathBuf,
    map: Mapped,
    header: Header,
    columns: Columns,
    items: u64,
    source: String,
    built_by: String,
    shards: Option<ShardFilter>,
    /// Cold requests read their pages in rounds ([`prefetch`]); off only to measure it.
    cold_prefetch: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("number", &self.number)
            .field("path", &self.path)
            .field("items", &self.items)
            .finish()
    }
}

#[derive(Deserialize)]
struct MetaJson {
    format: String,
    columns: Vec<String>,
    items: u64,
    source: String,
    #[serde(default)]
    built_by: String,
    /// Written by shard-filtered imports only (ADR 0009).
    #[serde(default)]
    shards: Option<ShardFilter>,
}

/// Time for a request's first 32 lookups beyond which its pages are taken to be on disk
/// (page cache hits take about 15 µs for 32 ids, disk faults milliseconds).
const COLD_FIRST_IDS: std::time::Duration = std::time::Duration::from_millis(1);

/// A live row found by [`Generation::rows`]: its entry number and values.
pub type Row<'g> = (u32, &'g [f64]);

/// An entry of a generation: its version and, unless deleted, its values by column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry<'g> {
    pub version: u64,
    pub values: Option<&'g [f64]>,
}

impl Generation {
    /// Opens a generation file. `_cache_bytes` is ignored (the redb store's read cache; kept
    /// so callers need not change).
    pub fn open(path: &Path, number: u64, _cache_bytes: usize) -> Result<Self, StoreError> {
        let bad = |problem: String| StoreError::Db {
            path: path.display().to_string(),
            problem,
        };
        let file = File::open(path).map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?
            .len();
        if len < format::HEADER_BYTES as u64 {
            return Err(bad(format!(
                "{len} bytes: not a `{}` item store file",
                format::FORMAT
            )));
        }
        let map = Mapped::map(&file).map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let header = Header::decode(map.bytes(), len).map_err(|problem| {
            if path.extension().is_some_and(|e| e == "redb") {
                bad(
                    "a redb store of an older release: rebuilt from `--items` or `items import`"
                        .into(),
                )
            } else {
                bad(problem)
            }
        })?;
        let meta_bytes = map
            .bytes()
            .get(header.meta as usize..(header.meta + header.meta_len) as usize)
            .ok_or_else(|| bad("meta section out of the file".into()))?;
        let meta: MetaJson =
            serde_json::from_slice(meta_bytes).map_err(|e| bad(format!("meta: {e}")))?;
        if meta.format != format::FORMAT || meta.columns.len() as u64 != header.columns {
            return Err(bad(format!(
                "format `{}` with {} columns, expected `{}` with {}",
                meta.format,
                meta.columns.len(),
                format::FORMAT,
                header.columns
            )));
        }
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ok(Generation {
            number,
            serial: SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            path: path.to_path_buf(),
            header,
            columns: Columns::from_names(meta.columns.iter().map(String::as_str)),
            items: meta.items,
            source: meta.source,
            built_by: meta.built_by,
            shards: meta.shards,
            map,
            cold_prefetch: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// The entry index of `id`, whose hash is `hash` (a few page reads, no allocation).
    fn find(&self, id: &str, hash: u64) -> Option<usize> {
        let (lo, hashes) = self.hash_run(hash)?;
        let start = hashes.partition_point(|&x| x < hash);
        (start..hashes.len())
            .take_while(|&i| hashes[i] == hash)
            .map(|i| lo + i)
            .find(|&e| self.id(e) == Some(id.as_bytes()))
    }

    /// The first entry of `hash`'s directory bucket and the bucket's hashes (sorted).
    fn hash_run(&self, hash: u64) -> Option<(usize, &[u64])> {
        let h = &self.header;
        let b = format::bucket(hash, h.dir_bits as u32);
        let range = self.map.u32s(h.dir as usize + b * 4, 2)?;
        let (lo, hi) = (range[0] as usize, range[1] as usize);
        let hashes = self
            .map
            .u64s(h.hashes as usize + lo * 8, hi.checked_sub(lo)?)?;
        Some((lo, hashes))
    }

    /// Where entry `i`'s id starts and ends in the id bytes.
    fn id_span(&self, i: usize) -> Option<(u64, u64)> {
        let h = &self.header;
        let end = *self.map.u64s(h.id_ends as usize + i * 8, 1)?.first()?;
        let start = match i {
            0 => 0,
            _ => *self
                .map
                .u64s(h.id_ends as usize + (i - 1) * 8, 1)?
                .first()?,
        };
        Some((start, end))
    }

    fn id(&self, i: usize) -> Option<&[u8]> {
        let (start, end) = self.id_span(i)?;
        self.map
            .bytes()
            .get((self.header.ids + start) as usize..(self.header.ids + end) as usize)
    }

    fn entry_at(&self, i: usize) -> Option<Entry<'_>> {
        let h = &self.header;
        let words = h.row_words() as usize;
        let row = self.map.f64s(h.rows as usize + i * words * 8, words)?;
        let word = row[0].to_bits();
        Some(Entry {
            version: word & !DELETED,
            values: (word & DELETED == 0).then(|| &row[1..]),
        })
    }

    /// The entry of `id` (live or tombstone), `None` when the generation never saw it.
    pub fn entry(&self, id: &str) -> Option<Entry<'_>> {
        self.entry_at(self.find(id, format::hash(id))?)
    }

    /// The values of `id` by column, borrowed from the mapping; `None` when unknown or deleted.
    pub fn row(&self, id: &str) -> Option<&[f64]> {
        self.entry(id)?.values
    }

    /// The rows of `ids` (same order; `None` when unknown or deleted), each with its entry
    /// number. The ids are visited in hash order, which is the file's order, so a request's
    /// pages are read in one sweep. Reading stops at `deadline` (checked every few ids: a
    /// read from disk cannot be cut short): the ids not read by then are `None` and their
    /// count is returned.
    pub fn rows<'g, 'i>(
        &'g self,
        ids: impl ExactSizeIterator<Item = &'i str>,
        deadline: Option<std::time::Instant>,
    ) -> (Vec<Option<Row<'g>>>, usize) {
        let mut order: Vec<(u64, u32, &str)> = ids
            .enumerate()
            .map(|(i, id)| (format::hash(id), i as u32, id))
            .collect();
        let mut out = vec![None; order.len()];
        order.sort_unstable_by_key(|&(hash, i, _)| (hash, i));
        let started = std::time::Instant::now();
        for (k, &(hash, i, id)) in order.iter().enumerate() {
            if k % 32 == 31 && deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return (out, order.len() - k);
            }
            // The first ids were read from disk (page faults, not cache hits): have the
            // kernel read the rest's pages together rather than one fault at a time.
            if k == 32
                && order.len() > 64
                && started.elapsed() >= COLD_FIRST_IDS
                && self
                    .cold_prefetch
                    .load(std::sync::atomic::Ordering::Relaxed)
            {
                let rest: Vec<u64> = order[k..].iter().map(|&(hash, _, _)| hash).collect();
                self.prefetch(&rest, deadline);
            }
            out[i as usize] = self.find(id, hash).and_then(|e| {
                self.entry_at(e)
                    .and_then(|entry| entry.values)
                    .map(|v| (e as u32, v))
            });
        }
        (out, 0)
    }

    /// Turns the cold-request prefetch of [`Generation::rows`] off or on (on by default): for
    /// benchmarks that compare the two in one run.
    pub fn set_cold_prefetch(&self, on: bool) {
        self.cold_prefetch
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The item as an owned record (tools and tests; serving reads rows in place).
    pub fn get(&self, id: &str) -> Result<Option<ItemRecord>, StoreError> {
        Ok(self.row(id).map(|v| ItemRecord::from_values(v.to_vec())))
    }

    /// Every entry (tombstones included) in file order: id, version, values.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Entry<'_>)> + '_ {
        (0..self.header.entries as usize).filter_map(move |i| {
            let id = std::str::from_utf8(self.id(i)?).ok()?;
            Some((id, self.entry_at(i)?))
        })
    }

    /// Releases this process's mapped pages of the file (see `Mapped::release_pages`): with
    /// `posix_fadvise(DONTNEED)` on the file afterwards, the next reads come from the disk.
    /// For benchmarks of cold reads.
    pub fn release_pages(&self) -> std::io::Result<()> {
        self.map.release_pages()
    }

    pub fn number(&self) -> u64 {
        self.number
    }
    /// Unique per opened generation in this process.
    pub fn serial(&self) -> u64 {
        self.serial
    }
    pub fn columns(&self) -> &Columns {
        &self.columns
    }
    /// Live (not deleted) items.
    pub fn len(&self) -> u64 {
        self.items
    }
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }
    /// Entries, tombstones included.
    pub fn entry_count(&self) -> u64 {
        self.header.entries
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// What the generation was built from (snapshot fingerprint, `+updates` after ETL).
    pub fn source(&self) -> &str {
        &self.source
    }
    /// Who built it: `serve` (a server's `--items` at start), `import`, or `updates`.
    pub fn built_by(&self) -> &str {
        &self.built_by
    }
    /// The index layout and shards a shard-filtered import kept; `None` when the generation
    /// holds the whole catalogue.
    pub fn shard_filter(&self) -> Option<&ShardFilter> {
        self.shards.as_ref()
    }
}

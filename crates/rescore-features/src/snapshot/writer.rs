//! Writes one generation file ([`super::format`]) from entries in any order.
//!
//! Entries go to a scratch file beside the output as they come (only each entry's hash and
//! scratch offset stay in memory: 16 bytes per entry), then are sorted by hash, deduplicated
//! (a later entry with the same id replaces an earlier one) and written section by section in
//! one sequential pass each. Memory is bounded by the entry count, not by the values; the
//! scratch file is removed when the writer finishes or is dropped.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::format::{self, Header, DELETED};
use super::mapped::Mapped;
use crate::embedded::StoreError;
use crate::record::Columns;
use crate::routing_shard::ShardFilter;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What goes into the meta section besides the columns.
pub(crate) struct Meta<'a> {
    pub source: &'a str,
    pub built_by: &'a str,
    /// The shards a shard-filtered import kept (ADR 0009); `None` for a whole catalogue.
    pub shards: Option<&'a ShardFilter>,
}

pub(crate) struct Writer {
    path: PathBuf,
    scratch_path: PathBuf,
    scratch: BufWriter<File>,
    scratch_len: u64,
    /// (hash, offset of the entry in the scratch file), in arrival order.
    entries: Vec<(u64, u64)>,
}

/// One scratch record: version word u64, id length u32, value count u32, the id padded to 8
/// bytes, the values.
const RECORD_HEAD: usize = 16;

impl Writer {
    pub(crate) fn create(path: &Path) -> Result<Self, StoreError> {
        let scratch_path = path.with_extension("scratch");
        let file = File::create(&scratch_path).map_err(io(&scratch_path))?;
        Ok(Writer {
            path: path.to_path_buf(),
            scratch: BufWriter::with_capacity(1 << 20, file),
            scratch_path,
            scratch_len: 0,
            entries: Vec::new(),
        })
    }

    /// One entry: `values` by column (fewer than the final column count: the rest are absent);
    /// `None` for a tombstone.
    pub(crate) fn push(
        &mut self,
        id: &str,
        version: u64,
        values: Option<&[f64]>,
    ) -> Result<(), StoreError> {
        let word = match values {
            Some(_) => version & !DELETED,
            None => version | DELETED,
        };
        let values = values.unwrap_or(&[]);
        let id_len = u32::try_from(id.len()).map_err(|_| StoreError::Db {
            path: self.path.display().to_string(),
            problem: "an item id longer than 4 GiB".into(),
        })?;
        let offset = self.scratch_len;
        let w = &mut self.scratch;
        let p = &self.scratch_path;
        w.write_all(&word.to_le_bytes()).map_err(io(p))?;
        w.write_all(&id_len.to_le_bytes()).map_err(io(p))?;
        w.write_all(&(values.len() as u32).to_le_bytes())
            .map_err(io(p))?;
        w.write_all(id.as_bytes()).map_err(io(p))?;
        let padded = format::pad8(id.len() as u64);
        w.write_all(&[0u8; 8][..(padded - id.len() as u64) as usize])
            .map_err(io(p))?;
        for v in values {
            w.write_all(&v.to_le_bytes()).map_err(io(p))?;
        }
        self.scratch_len += RECORD_HEAD as u64 + padded + values.len() as u64 * 8;
        self.entries.push((format::hash(id), offset));
        Ok(())
    }

    /// Sorts, deduplicates and writes the file; returns (live items, entries written).
    pub(crate) fn finish(
        mut self,
        columns: &Columns,
        meta: Meta<'_>,
    ) -> Result<(u64, u64), StoreError> {
        let result = self.write_out(columns, meta);
        let _ = std::fs::remove_file(&self.scratch_path);
        result
    }

    fn write_out(&mut self, columns: &Columns, meta: Meta<'_>) -> Result<(u64, u64), StoreError> {
        self.scratch.flush().map_err(io(&self.scratch_path))?;
        let scratch = match self.scratch_len {
            0 => None,
            _ => {
                let file = File::open(&self.scratch_path).map_err(io(&self.scratch_path))?;
                Some(Mapped::map(&file).map_err(io(&self.scratch_path))?)
            }
        };
        let corrupt = || StoreError::Db {
            path: self.scratch_path.display().to_string(),
            problem: "scratch file changed while building".into(),
        };
        let record = |offset: u64| -> Result<(u64, &[u8], &[f64]), StoreError> {
            let map = scratch.as_ref().ok_or_else(corrupt)?;
            let at = offset as usize;
            let head = map.bytes().get(at..at + RECORD_HEAD).ok_or_else(corrupt)?;
            let word = u64::from_le_bytes(head[..8].try_into().map_err(|_| corrupt())?);
            let id_len =
                u32::from_le_bytes(head[8..12].try_into().map_err(|_| corrupt())?) as usize;
            let n = u32::from_le_bytes(head[12..16].try_into().map_err(|_| corrupt())?) as usize;
            let id = map
                .bytes()
                .get(at + RECORD_HEAD..at + RECORD_HEAD + id_len)
                .ok_or_else(corrupt)?;
            let values_at = at + RECORD_HEAD + format::pad8(id_len as u64) as usize;
            let values = map.f64s(values_at, n).ok_or_else(corrupt)?;
            Ok((word, id, values))
        };

        // Sort by hash, arrival order within a hash; keep the last entry of each id.
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_unstable();
        let mut kept = 0;
        let mut start = 0;
        while start < entries.len() {
            let mut end = start + 1;
            while end < entries.len() && entries[end].0 == entries[start].0 {
                end += 1;
            }
            for i in start..end {
                let id = record(entries[i].1)?.1;
                let replaced = (i + 1..end).any(|j| record(entries[j].1).is_ok_and(|r| r.1 == id));
                if !replaced {
                    entries[kept] = entries[i];
                    kept += 1;
                }
            }
            start = end;
        }
        entries.truncate(kept);
        entries.shrink_to_fit();

        let mut id_bytes = 0u64;
        let mut live = 0u64;
        for &(_, offset) in &entries {
            let (word, id, _) = record(offset)?;
            id_bytes += id.len() as u64;
            live += u64::from(word & DELETED == 0);
        }
        let names = columns.names();
        let mut meta_json = serde_json::json!({
            "format": format::FORMAT,
            "columns": names,
            "items": live,
            "source": meta.source,
            "built_by": meta.built_by,
        });
        if let Some(shards) = meta.shards {
            meta_json["shards"] = serde_json::json!(shards);
        }
        let meta_json = meta_json.to_string();
        let n = entries.len() as u64;
        let header = Header::layout(n, names.len() as u64, meta_json.len() as u64, id_bytes);

        let path = &self.path;
        let file = File::create(path).map_err(io(path))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut put = |bytes: &[u8]| out.write_all(bytes).map_err(io(path));
        put(&header.encode())?;
        put(meta_json.as_bytes())?;
        put(&[0u8; 8][..(format::pad8(meta_json.len() as u64) - meta_json.len() as u64) as usize])?;
        let dir_bits = header.dir_bits as u32;
        let buckets = 1usize << dir_bits;
        let mut next = 0usize;
        for b in 0..=buckets {
            while next < entries.len() && format::bucket(entries[next].0, dir_bits) < b {
                next += 1;
            }
            put(&(next as u32).to_le_bytes())?;
        }
        let dir_len = (buckets as u64 + 1) * 4;
        put(&[0u8; 8][..(format::pad8(dir_len) - dir_len) as usize])?;
        for &(hash, _) in &entries {
            put(&hash.to_le_bytes())?;
        }
        let width = names.len();
        for &(_, offset) in &entries {
            let (word, _, values) = record(offset)?;
            put(&word.to_le_bytes())?;
            for c in 0..width {
                put(&values.get(c).copied().unwrap_or(f64::NAN).to_le_bytes())?;
            }
        }
        let mut end = 0u64;
        for &(_, offset) in &entries {
            end += record(offset)?.1.len() as u64;
            put(&end.to_le_bytes())?;
        }
        for &(_, offset) in &entries {
            put(record(offset)?.1)?;
        }
        let file = out.into_inner().map_err(|e| io(path)(e.into_error()))?;
        file.sync_all().map_err(io(path))?;
        Ok((live, n))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.scratch_path);
    }
}

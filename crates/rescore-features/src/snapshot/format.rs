//! The generation file's layout (`rescore-items-2`, docs/adr/0008-mapped-item-snapshot.md).
//!
//! ```text
//! header    128 bytes: magic, then u64 LE fields (see `Header`)
//! meta      JSON {columns, items, source, built_by}, padded to 8 bytes
//! directory (2^dir_bits + 1) u32: first entry of each bucket (top dir_bits bits of the hash)
//! hashes    entries x u64: XXH3-64 of each id, ascending
//! rows      entries x (1 + columns) x 8 bytes: version word, then the values as f64 (NaN = absent)
//! id ends   entries x u64: end of each id in the id bytes (start = previous end)
//! ids       the ids' UTF-8 bytes, in entry order
//! ```
//! Entries are ordered by hash (ties by id), rows and ids in the same order, so a lookup is a
//! directory read, a short scan of hashes, an id comparison and the row: a few page reads of
//! an immutable file and no allocation. The version word holds the version (below 2^53) and,
//! in its top bit, whether the entry is a tombstone (a deleted item keeps its version so that an
//! older put cannot revive it).

/// The file's first 8 bytes.
pub(crate) const MAGIC: &[u8; 8] = b"RSITEMS2";
/// Format name, in errors and docs.
pub(crate) const FORMAT: &str = "rescore-items-2";
pub(crate) const HEADER_BYTES: usize = 128;
pub(crate) const DELETED: u64 = 1 << 63;

/// The hash of an id: stable across processes, releases and machines (part of the format).
pub(crate) fn hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

/// Directory size for `entries`: about two entries per bucket.
pub(crate) fn dir_bits(entries: u64) -> u32 {
    (64 - (entries / 2).max(1).leading_zeros() - 1).min(30)
}

pub(crate) fn bucket(hash: u64, dir_bits: u32) -> usize {
    if dir_bits == 0 {
        0
    } else {
        (hash >> (64 - dir_bits)) as usize
    }
}

pub(crate) fn pad8(n: u64) -> u64 {
    n.div_ceil(8) * 8
}

/// Where each section starts; all offsets in bytes from the file's start, multiples of 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub entries: u64,
    pub columns: u64,
    pub dir_bits: u64,
    pub meta: u64,
    pub meta_len: u64,
    pub dir: u64,
    pub hashes: u64,
    pub rows: u64,
    pub id_ends: u64,
    pub ids: u64,
    pub file_len: u64,
}

impl Header {
    /// The layout of a file with `entries` entries, `columns` columns, a meta JSON of
    /// `meta_len` bytes and `id_bytes` bytes of ids.
    pub(crate) fn layout(entries: u64, columns: u64, meta_len: u64, id_bytes: u64) -> Self {
        let dir_bits = u64::from(dir_bits(entries));
        let meta = HEADER_BYTES as u64;
        let dir = meta + pad8(meta_len);
        let hashes = dir + pad8(((1u64 << dir_bits) + 1) * 4);
        let rows = hashes + entries * 8;
        let id_ends = rows + entries * (1 + columns) * 8;
        let ids = id_ends + entries * 8;
        Header {
            entries,
            columns,
            dir_bits,
            meta,
            meta_len,
            dir,
            hashes,
            rows,
            id_ends,
            ids,
            file_len: ids + id_bytes,
        }
    }

    pub(crate) fn row_words(&self) -> u64 {
        1 + self.columns
    }

    pub(crate) fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        out[..8].copy_from_slice(MAGIC);
        for (i, v) in self.fields().iter().enumerate() {
            out[8 + i * 8..16 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    fn fields(&self) -> [u64; 11] {
        [
            self.entries,
            self.columns,
            self.dir_bits,
            self.meta,
            self.meta_len,
            self.dir,
            self.hashes,
            self.rows,
            self.id_ends,
            self.ids,
            self.file_len,
        ]
    }

    /// Reads and checks a header against the file's length: every section must lie inside
    /// the file where the layout puts it.
    pub(crate) fn decode(bytes: &[u8], file_len: u64) -> Result<Self, String> {
        if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
            return Err(format!("not a `{FORMAT}` item store file (bad magic)"));
        }
        let field = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[8 + i * 8..16 + i * 8]);
            u64::from_le_bytes(b)
        };
        let (entries, columns, meta_len) = (field(0), field(1), field(4));
        if entries >= u64::from(u32::MAX) || columns > crate::record::MAX_COLUMNS as u64 {
            return Err(format!(
                "header: {entries} entries x {columns} columns is out of range"
            ));
        }
        let id_bytes = field(10)
            .checked_sub(field(9))
            .ok_or("header: bad id section")?;
        let expected = Header::layout(entries, columns, meta_len, id_bytes);
        let got = Header {
            entries,
            columns,
            dir_bits: field(2),
            meta: field(3),
            meta_len,
            dir: field(5),
            hashes: field(6),
            rows: field(7),
            id_ends: field(8),
            ids: field(9),
            file_len: field(10),
        };
        if got != expected || got.file_len != file_len {
            return Err(format!(
                "header does not match the file (truncated or not written by this release): file {file_len} bytes, header says {}",
                got.file_len
            ));
        }
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_reject_other_lengths() {
        let h = Header::layout(1000, 30, 77, 9000);
        assert_eq!(Header::decode(&h.encode(), h.file_len), Ok(h));
        assert!(Header::decode(&h.encode(), h.file_len - 1).is_err());
        assert!(Header::decode(b"RSITEMS1", 8).is_err());
        assert_eq!(h.rows % 8, 0);
        assert_eq!((dir_bits(0), dir_bits(4), dir_bits(10_000_000)), (0, 1, 22));
        assert_eq!(bucket(u64::MAX, 22), (1 << 22) - 1);
        // The hash is part of the file format: it must never change.
        assert_eq!(hash("item0"), xxhash_rust::xxh3::xxh3_64(b"item0"));
    }
}

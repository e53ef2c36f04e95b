//! The crate's only `unsafe`: a generation file mapped read-only into memory.
//!
//! Invariant that makes the mapping sound: **a file is never written once it is mapped.** The
//! store's files are written under a temporary name by one builder (which maps its own scratch
//! file only after it has written and flushed it, and never writes it again), renamed into
//! place and never opened for writing afterwards; old generations are removed by unlink, which
//! leaves an existing mapping intact. Nothing else in the data directory writes them. (Someone
//! editing a published file by hand could change the bytes under a reader: values then read
//! wrong, but every offset is bounds-checked on use, so a corrupted file cannot make a read
//! go outside the mapping.)
#![allow(unsafe_code)]

use std::fs::File;

// The file format is little-endian and rows are read in place as f64.
const _: () = assert!(
    cfg!(target_endian = "little"),
    "the item store needs a little-endian target"
);

/// A read-only mapping of a whole file.
pub(crate) struct Mapped {
    map: memmap2::Mmap,
}

impl Mapped {
    /// Maps `file` read-only. Reads are random (one row per id), so read-ahead is turned off.
    pub(crate) fn map(file: &File) -> std::io::Result<Self> {
        // SAFETY: see the module's invariant: the file is immutable while mapped.
        let map = unsafe { memmap2::MmapOptions::new().map(file)? };
        // Advice only; a kernel that ignores it reads ahead as usual.
        let _ = map.advise(memmap2::Advice::Random);
        Ok(Mapped { map })
    }

    /// Drops this process's page-table entries of the mapping: the next access faults the page
    /// in again, from the page cache or the disk. With `posix_fadvise(DONTNEED)` on the file
    /// afterwards the pages leave the page cache too (measuring cold reads).
    pub(crate) fn release_pages(&self) -> std::io::Result<()> {
        // SAFETY: on a shared, read-only mapping of a file MADV_DONTNEED only discards page-table
        // entries; the next access reads the same (immutable) bytes from the file again, so no
        // reference into the mapping ever sees other contents.
        unsafe {
            self.map
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        }
    }

    /// Starts reading the pages of `[offset, offset + len)` into the page cache without
    /// waiting (`MADV_WILLNEED`). Advice only: errors are ignored.
    pub(crate) fn will_need(&self, offset: usize, len: usize) {
        let len = len.min(self.map.len().saturating_sub(offset));
        if len > 0 {
            let _ = self
                .map
                .advise_range(memmap2::Advice::WillNeed, offset, len);
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// `len` f64s at byte `offset`; `None` when out of the file or not 8-byte aligned.
    pub(crate) fn f64s(&self, offset: usize, len: usize) -> Option<&[f64]> {
        let bytes = self
            .map
            .get(offset..offset.checked_add(len.checked_mul(8)?)?)?;
        if bytes.as_ptr().align_offset(std::mem::align_of::<f64>()) != 0 {
            return None;
        }
        // SAFETY: in bounds (checked above), aligned (checked above), every bit pattern is a
        // valid f64, the bytes are little-endian like the target (asserted above), and the
        // slice borrows `self`, so it cannot outlive the mapping.
        Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f64>(), len) })
    }

    /// `len` u64s at byte `offset`, as [`Mapped::f64s`].
    pub(crate) fn u64s(&self, offset: usize, len: usize) -> Option<&[u64]> {
        let bytes = self
            .map
            .get(offset..offset.checked_add(len.checked_mul(8)?)?)?;
        if bytes.as_ptr().align_offset(std::mem::align_of::<u64>()) != 0 {
            return None;
        }
        // SAFETY: as in `f64s`: in bounds, aligned, any bits are a valid u64, little-endian.
        Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<u64>(), len) })
    }

    /// `len` u32s at byte `offset`, as [`Mapped::f64s`].
    pub(crate) fn u32s(&self, offset: usize, len: usize) -> Option<&[u32]> {
        let bytes = self
            .map
            .get(offset..offset.checked_add(len.checked_mul(4)?)?)?;
        if bytes.as_ptr().align_offset(std::mem::align_of::<u32>()) != 0 {
            return None;
        }
        // SAFETY: as in `f64s`: in bounds, aligned, any bits are a valid u32, little-endian.
        Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<u32>(), len) })
    }
}

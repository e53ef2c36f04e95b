//! A loaded version's bins of embedded-store rows (ADR 0003 part 3, ADR 0008). Rows of the
//! mapped store are not records with an attached slot, so their bins live in a bounded
//! direct-mapped table per model version, keyed by (opened generation, row): filled on first
//! use, overwritten by whichever row maps to the same slot next. Its memory is fixed
//! ([`ROW_BINS_BYTES`] per version, touched as it fills) whatever the catalogue's size, and a
//! request copies a row's bins out under a short per-stripe lock (never one lock across the
//! batch) into a buffer it reuses: no allocation per item.

use std::sync::Mutex;

use crate::record_bins::BinKey;

/// Bytes of bins a model version keeps for embedded rows (tags included).
pub(crate) const ROW_BINS_BYTES: usize = 16 << 20;
/// Independent locks: concurrent requests rarely wait on each other.
const STRIPES: usize = 64;

/// No row: (serial 0 is never given to a generation).
const EMPTY: (u64, u32) = (0, 0);

struct Stripe {
    tags: Vec<(u64, u32)>,
    bytes: Vec<u8>,
}

pub(crate) struct RowBins {
    key: BinKey,
    /// Bytes of one row's bins.
    width: usize,
    per_stripe: usize,
    stripes: Box<[Mutex<Option<Stripe>>]>,
}

impl std::fmt::Debug for RowBins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowBins")
            .field("width", &self.width)
            .field("slots", &(STRIPES * self.per_stripe))
            .finish()
    }
}

impl RowBins {
    pub(crate) fn new(key: BinKey, width: usize) -> Self {
        let entry = width + std::mem::size_of::<(u64, u32)>();
        let per_stripe = (ROW_BINS_BYTES / STRIPES / entry.max(1)).max(1);
        RowBins {
            key,
            width,
            per_stripe,
            stripes: (0..STRIPES).map(|_| Mutex::new(None)).collect(),
        }
    }

    pub(crate) fn key(&self) -> &BinKey {
        &self.key
    }

    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// Puts the bins of `(serial, row)` into `out` (`width` bytes): the kept ones, or `make`'s
    /// (which fills `out`), then kept.
    pub(crate) fn get_into(
        &self,
        serial: u64,
        row: u32,
        out: &mut Vec<u8>,
        make: impl FnOnce(&mut Vec<u8>),
    ) {
        let slot = slot_of(serial, row, STRIPES * self.per_stripe);
        let (stripe, index) = (slot % STRIPES, slot / STRIPES);
        let at = index * self.width..(index + 1) * self.width;
        {
            // A poisoned lock only means a panic elsewhere while it was held: tags and bytes
            // are written together below, so a slot is either whole or tagged EMPTY.
            let guard = self.stripes[stripe]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(s) = guard.as_ref() {
                if s.tags[index] == (serial, row) {
                    out.clear();
                    out.extend_from_slice(&s.bytes[at]);
                    return;
                }
            }
        }
        out.clear();
        make(out);
        if out.len() != self.width {
            return; // not this table's shape: never keep it
        }
        let mut guard = self.stripes[stripe]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let s = guard.get_or_insert_with(|| Stripe {
            tags: vec![EMPTY; self.per_stripe],
            bytes: vec![0; self.per_stripe * self.width],
        });
        s.tags[index] = EMPTY;
        s.bytes[at].copy_from_slice(out);
        s.tags[index] = (serial, row);
    }
}

fn slot_of(serial: u64, row: u32, slots: usize) -> usize {
    // Rows of one generation are spread by a multiplicative hash (consecutive rows are not
    // consecutive slots, so no run of hot rows shares a stripe).
    let x = (serial.rotate_left(32) ^ u64::from(row)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((x >> 32) as usize) % slots
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn bins_are_kept_per_row_and_replaced_in_a_bounded_table() {
        let table = RowBins::new(BinKey::new(1, Arc::from(vec![0u32])), 3);
        let made = std::cell::Cell::new(0);
        let mut out = Vec::new();
        let make = |row: u32| {
            let made = &made;
            move |o: &mut Vec<u8>| {
                made.set(made.get() + 1);
                o.extend_from_slice(&[row as u8, 1, 2]);
            }
        };
        table.get_into(5, 7, &mut out, make(7));
        assert_eq!(out, [7, 1, 2]);
        table.get_into(5, 7, &mut out, make(7));
        assert_eq!((out.as_slice(), made.get()), (&[7u8, 1, 2][..], 1), "kept");
        // Another generation's row 7 is another entry.
        table.get_into(6, 7, &mut out, make(9));
        assert_eq!((out[0], made.get()), (9, 2));
        // Many more rows than slots: every answer is still the row's own bins.
        let slots = STRIPES * table.per_stripe;
        for row in 0..(slots as u32 * 2) {
            table.get_into(5, row, &mut out, |o: &mut Vec<u8>| {
                o.extend_from_slice(&[(row % 251) as u8, 1, 2])
            });
            assert_eq!(out[0], (row % 251) as u8);
        }
        // Memory is fixed by the table's size.
        let kept: usize = table
            .stripes
            .iter()
            .map(|s| {
                s.lock()
                    .expect("lock")
                    .as_ref()
                    .map_or(0, |s| s.bytes.len())
            })
            .sum();
        assert!(kept <= ROW_BINS_BYTES, "{kept}");
        // A maker of the wrong shape is answered but never kept.
        table.get_into(9, 1, &mut out, |o: &mut Vec<u8>| o.push(1));
        table.get_into(9, 1, &mut out, |o: &mut Vec<u8>| {
            o.extend_from_slice(&[4, 4, 4])
        });
        assert_eq!(out, [4, 4, 4]);
    }
}

//! A loaded version's bins of an item, kept with the item's cached record (ADR 0003, part 3).
//! The record holds them in its attached slot (`ItemRecord::attached`); what they are, what
//! identifies them and how many a record keeps is decided here, by the layer that knows model
//! versions.

use std::sync::{Arc, Mutex};

use rescore_features::ItemRecord;

/// What a record's bins were made for, compared by value (never by a hash): the loaded
/// version's bin layout (an id that is never reused) and the item column that each model
/// feature reads ([`NOT_ITEM`] for features not read from the item), since a store's columns
/// can grow.
#[derive(Debug, Clone)]
pub(crate) struct BinKey {
    layout: u64,
    columns: Arc<[u32]>,
}

/// The column of a feature that is not read from the item.
pub(crate) const NOT_ITEM: u32 = u32::MAX;

impl BinKey {
    pub(crate) fn new(layout: u64, columns: Arc<[u32]>) -> Self {
        BinKey { layout, columns }
    }
}

impl PartialEq for BinKey {
    fn eq(&self, other: &Self) -> bool {
        // A layout interns its column lists, so equal lists are usually one allocation.
        self.layout == other.layout
            && (Arc::ptr_eq(&self.columns, &other.columns) || self.columns == other.columns)
    }
}

/// Versions whose bins a record keeps; the oldest is dropped beyond that (a record read by
/// more versions than this recomputes, which stays correct).
const MAX_VERSIONS: usize = 4;

#[derive(Default)]
struct RecordBins(Mutex<Vec<(BinKey, Arc<[u8]>)>>);

/// The bins of `record` for `key`: made once by `make` from the record's values, then shared
/// by every request that reads the record with that key.
pub(crate) fn record_bins(
    record: &ItemRecord,
    key: &BinKey,
    make: impl FnOnce(&[f64]) -> Arc<[u8]>,
) -> Arc<[u8]> {
    let attached = record
        .attached()
        .get_or_init(|| Box::new(RecordBins::default()));
    let Some(bins) = attached.downcast_ref::<RecordBins>() else {
        // Something else is attached (nothing else attaches today): no caching.
        return make(record.values());
    };
    // A poisoned lock only means a panic elsewhere while it was held: the list is valid.
    let found = {
        let list = bins.0.lock().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .find(|(k, _)| k == key)
            .map(|(_, bytes)| bytes.clone())
    };
    if let Some(bytes) = found {
        return bytes;
    }
    // Made outside the lock; two requests racing on a new record both make it once.
    let bytes = make(record.values());
    let mut list = bins.0.lock().unwrap_or_else(|e| e.into_inner());
    if !list.iter().any(|(k, _)| k == key) {
        if list.len() >= MAX_VERSIONS {
            list.remove(0);
        }
        list.push((key.clone(), bytes.clone()));
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_made_once_per_key_and_bounded() {
        let record = ItemRecord::from_values(vec![1.0, 2.0]);
        let made = std::cell::Cell::new(0);
        let make = |values: &[f64]| {
            made.set(made.get() + 1);
            Arc::<[u8]>::from(vec![values.len() as u8])
        };
        let key = |layout: u64, columns: &[u32]| BinKey::new(layout, columns.into());
        assert_eq!(&*record_bins(&record, &key(7, &[0, 1]), make), &[2]);
        // An equal key in another allocation finds the same bins.
        assert_eq!(&*record_bins(&record, &key(7, &[0, 1]), make), &[2]);
        assert_eq!(made.get(), 1, "the second read reuses the bins");
        // Keys that differ in the layout or in one column are other bins.
        record_bins(&record, &key(8, &[0, 1]), make);
        record_bins(&record, &key(7, &[0, NOT_ITEM]), make);
        assert_eq!(made.get(), 3);
        for layout in 100..100 + MAX_VERSIONS as u64 {
            record_bins(&record, &key(layout, &[0, 1]), make);
        }
        assert_eq!(made.get(), 3 + MAX_VERSIONS);
        record_bins(&record, &key(7, &[0, 1]), make);
        assert_eq!(made.get(), 4 + MAX_VERSIONS, "the oldest key was dropped");
        assert!(
            record.clone().attached().get().is_none(),
            "a copy starts without bins"
        );
    }
}

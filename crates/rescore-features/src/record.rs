//! One item's features, by column, and the mapping of feature names to columns.

use std::collections::HashMap;
use std::sync::RwLock;

/// Upper bound on distinct item feature names a store accepts (a runaway pipeline that puts a
/// new name into every record must not grow the name table without bound).
pub const MAX_COLUMNS: usize = 65_536;

/// The feature names a store knows, each with a column number. Append-only: a name keeps its
/// column for the life of the store, so records decoded at different times agree.
#[derive(Debug, Default)]
pub struct Columns {
    index: RwLock<HashMap<Box<str>, u32>>,
}

impl Columns {
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let columns = Columns::default();
        for name in names {
            columns.intern(name);
        }
        columns
    }

    pub fn column(&self, name: &str) -> Option<u32> {
        self.read().get(name).copied()
    }

    /// The column of `name`, adding it if new; `None` once [`MAX_COLUMNS`] names exist.
    pub fn intern(&self, name: &str) -> Option<u32> {
        if let Some(c) = self.column(name) {
            return Some(c);
        }
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        let next = index.len();
        if let Some(c) = index.get(name) {
            return Some(*c);
        }
        if next >= MAX_COLUMNS {
            return None;
        }
        index.insert(Box::from(name), next as u32);
        Some(next as u32)
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Names in column order.
    pub fn names(&self) -> Vec<String> {
        let index = self.read();
        let mut names = vec![String::new(); index.len()];
        for (name, c) in index.iter() {
            names[*c as usize] = name.to_string();
        }
        names
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Box<str>, u32>> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// One item's features by column; NaN where the item has no value. Values are the exact f64s
/// of the snapshot or update (JSON numbers parse exactly with `float_roundtrip`; they are
/// stored as their 8 IEEE-754 bytes, never narrowed).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRecord {
    values: Box<[f64]>,
    attached: Attached,
}

/// What a consumer derives from a record's values and keeps with the record (serving keeps a
/// model version's bins of the item there; the type and its rules are the consumer's, the
/// store never reads it). Kept in the record, it lives exactly as long as the cached record
/// and can never outlive a change of its values: an update or a new snapshot makes a new
/// record.
pub type AttachedValue = Box<dyn std::any::Any + Send + Sync>;

#[derive(Default)]
struct Attached(std::sync::OnceLock<AttachedValue>);

impl Clone for Attached {
    /// A copy of a record starts with nothing attached (what is attached is a cache).
    fn clone(&self) -> Self {
        Attached::default()
    }
}

impl PartialEq for Attached {
    /// Records are equal by their values; what is attached derives from them.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Attached")
    }
}

impl ItemRecord {
    /// Builds a record from `(name, value)` pairs, interning names. Names beyond
    /// [`MAX_COLUMNS`] are dropped (the caller logs).
    pub fn from_pairs<'a>(
        columns: &Columns,
        pairs: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> (Self, usize) {
        let mut values = Vec::new();
        let mut dropped = 0;
        for (name, value) in pairs {
            let Some(column) = columns.intern(name) else {
                dropped += 1;
                continue;
            };
            let column = column as usize;
            if values.len() <= column {
                values.resize(column + 1, f64::NAN);
            }
            values[column] = value;
        }
        (
            ItemRecord {
                values: values.into_boxed_slice(),
                attached: Attached::default(),
            },
            dropped,
        )
    }

    pub fn from_values(values: Vec<f64>) -> Self {
        ItemRecord {
            values: values.into_boxed_slice(),
            attached: Attached::default(),
        }
    }

    /// The record's slot for one attached value (see [`AttachedValue`]), empty until a
    /// consumer fills it.
    pub fn attached(&self) -> &std::sync::OnceLock<AttachedValue> {
        &self.attached.0
    }

    pub fn value(&self, column: u32) -> Option<f64> {
        self.values
            .get(column as usize)
            .copied()
            .filter(|v| !v.is_nan())
    }

    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Approximate heap bytes, for the cache's byte bound.
    pub fn heap_bytes(&self) -> usize {
        self.values.len() * 8
    }
}

/// One item's values as a request sees them, borrowed for the request: a row of the embedded
/// store's mapped file (no copy, no allocation) or a record fetched from Redis.
#[derive(Debug, Clone, Copy)]
pub struct ItemRef<'a> {
    values: &'a [f64],
    origin: ItemOrigin<'a>,
}

/// Where an [`ItemRef`]'s values live: what consumers key data derived from them by.
#[derive(Debug, Clone, Copy)]
pub enum ItemOrigin<'a> {
    /// Entry `row` of the embedded generation opened as `serial` (unique per opened
    /// generation in this process, never reused): the values never change for that pair.
    Row { serial: u64, row: u32 },
    /// A record (from Redis), with its attached slot.
    Record(&'a ItemRecord),
}

impl<'a> ItemRef<'a> {
    pub fn row(values: &'a [f64], serial: u64, row: u32) -> Self {
        ItemRef {
            values,
            origin: ItemOrigin::Row { serial, row },
        }
    }

    pub fn record(record: &'a ItemRecord) -> Self {
        ItemRef {
            values: record.values(),
            origin: ItemOrigin::Record(record),
        }
    }

    pub fn values(&self) -> &'a [f64] {
        self.values
    }

    pub fn value(&self, column: u32) -> Option<f64> {
        self.values
            .get(column as usize)
            .copied()
            .filter(|v| !v.is_nan())
    }

    pub fn origin(&self) -> ItemOrigin<'a> {
        self.origin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attached_values_stay_with_the_record_and_not_with_copies() {
        let record = ItemRecord::from_values(vec![1.0, 2.0]);
        assert!(record.attached().set(Box::new(7u32)).is_ok());
        let attached = record
            .attached()
            .get()
            .and_then(|a| a.downcast_ref::<u32>());
        assert_eq!(attached, Some(&7));
        assert_eq!(record.clone(), record, "equal by values, attached aside");
        assert!(record.clone().attached().get().is_none());
    }

    #[test]
    fn columns_are_stable_and_bounded() {
        let c = Columns::from_names(["a", "b"]);
        assert_eq!(
            (c.column("a"), c.column("b"), c.column("z")),
            (Some(0), Some(1), None)
        );
        assert_eq!(c.intern("z"), Some(2));
        assert_eq!(c.intern("a"), Some(0));
        assert_eq!(c.names(), vec!["a", "b", "z"]);
        let (r, dropped) = ItemRecord::from_pairs(&c, [("z", 0.1), ("a", -2.0)]);
        assert_eq!(dropped, 0);
        assert_eq!(
            (r.value(0), r.value(1), r.value(2), r.value(9)),
            (Some(-2.0), None, Some(0.1), None)
        );
    }
}

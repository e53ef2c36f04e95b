//! The embedded item store: immutable generations of a redb file in a data directory, built
//! from a snapshot (or from the previous generation plus updates) beside the live one and
//! published by an atomic rename of `CURRENT` (docs/adr/0004-embedded-item-store.md).
//!
//! ```text
//! DATA_DIR/LOCK             advisory lock held while a generation is built
//! DATA_DIR/CURRENT          name of the live generation file (replaced by rename)
//! DATA_DIR/gen-000007.redb  one generation, never modified once published
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use redb::{
    ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use serde::Deserialize;

use crate::record::{Columns, ItemRecord};
use crate::update::{Update, UpdateOp};

const ITEMS: TableDefinition<&str, &[u8]> = TableDefinition::new("items");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const FORMAT: &str = "rescore-items-1";
const CURRENT: &str = "CURRENT";
const LOCK: &str = "LOCK";
/// Lines per write transaction while building: bounds the builder's dirty pages.
const BUILD_BATCH: usize = 100_000;
/// redb's page cache while building (freed when the build ends).
const BUILD_CACHE_BYTES: usize = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("item snapshot line {line}: {problem}")]
    Line { line: usize, problem: String },
    /// A Parquet snapshot that cannot be read: its schema (naming the column) or a row.
    #[error("parquet item snapshot: {problem}")]
    Parquet { problem: String },
    #[error("item store file {path}: {problem}")]
    Db { path: String, problem: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn db<E: Into<redb::Error>>(path: &Path) -> impl FnOnce(E) -> StoreError + '_ {
    move |e| StoreError::Db {
        path: path.display().to_string(),
        problem: e.into().to_string(),
    }
}

/// A stored value: `version` (u64 LE), a kind byte (0 live, 1 deleted), then the values as
/// f64 LE by column. Deleted items keep their version so an older put cannot revive them.
fn encode(version: u64, values: Option<&[f64]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + values.map_or(0, |v| v.len() * 8));
    out.extend_from_slice(&version.to_le_bytes());
    match values {
        Some(values) => {
            out.push(0);
            for v in values {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        None => out.push(1),
    }
    out
}

struct Stored {
    version: u64,
    record: Option<ItemRecord>,
}

fn decode(bytes: &[u8]) -> Option<Stored> {
    let version = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    match bytes.get(8)? {
        0 => {
            let rest = &bytes[9..];
            let values = rest
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect();
            Some(Stored {
                version,
                record: Some(ItemRecord::from_values(values)),
            })
        }
        1 => Some(Stored {
            version,
            record: None,
        }),
        _ => None,
    }
}

/// One published generation, open read-only. Lookups read through redb's page cache (bounded
/// by `cache_bytes`) and the OS page cache; nothing is loaded up front.
pub struct Generation {
    number: u64,
    path: PathBuf,
    table: ReadOnlyTable<&'static str, &'static [u8]>,
    columns: Columns,
    items: u64,
    source: String,
    _db: redb::ReadOnlyDatabase,
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

impl Generation {
    pub fn open(path: &Path, number: u64, cache_bytes: usize) -> Result<Self, StoreError> {
        let database = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .open_read_only(path)
            .map_err(db(path))?;
        let txn = database.begin_read().map_err(db(path))?;
        let meta = txn.open_table(META).map_err(db(path))?;
        let get = |key: &str| -> Result<String, StoreError> {
            meta.get(key)
                .map_err(db(path))?
                .map(|v| v.value().to_string())
                .ok_or_else(|| StoreError::Db {
                    path: path.display().to_string(),
                    problem: format!("no `{key}` in its metadata: not an item store"),
                })
        };
        let format = get("format")?;
        if format != FORMAT {
            return Err(StoreError::Db {
                path: path.display().to_string(),
                problem: format!("format `{format}`, expected `{FORMAT}`"),
            });
        }
        let names: Vec<String> =
            serde_json::from_str(&get("columns")?).map_err(|e| StoreError::Db {
                path: path.display().to_string(),
                problem: format!("columns: {e}"),
            })?;
        let items = get("items")?.parse().unwrap_or(0);
        let source = get("source")?;
        let table = txn.open_table(ITEMS).map_err(db(path))?;
        Ok(Generation {
            number,
            path: path.to_path_buf(),
            table,
            columns: Columns::from_names(names.iter().map(String::as_str)),
            items,
            source,
            _db: database,
        })
    }

    /// The item, `None` when unknown or deleted.
    pub fn get(&self, id: &str) -> Result<Option<ItemRecord>, StoreError> {
        let Some(guard) = self.table.get(id).map_err(db(&self.path))? else {
            return Ok(None);
        };
        match decode(guard.value()) {
            Some(stored) => Ok(stored.record),
            None => Err(StoreError::Db {
                path: self.path.display().to_string(),
                problem: format!("undecodable record for id {id:?}"),
            }),
        }
    }

    pub fn number(&self) -> u64 {
        self.number
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
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// What the generation was built from (snapshot fingerprint, `+updates` after ETL).
    pub fn source(&self) -> &str {
        &self.source
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotLine {
    id: String,
    #[serde(default)]
    version: u64,
    #[serde(default)]
    features: BTreeMap<String, Option<f64>>,
}

/// A snapshot file's format, chosen by its extension: `.parquet` (any case) is Parquet, any
/// other name JSON Lines (docs/feature-store.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotFormat {
    JsonLines,
    Parquet,
}

impl SnapshotFormat {
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("parquet") => SnapshotFormat::Parquet,
            _ => SnapshotFormat::JsonLines,
        }
    }
}

/// What a build or an update run did.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildReport {
    pub generation: u64,
    pub path: PathBuf,
    pub items: u64,
    pub lines: u64,
    /// Updates not applied because the store holds the same or a newer version.
    pub stale: u64,
    pub seconds: f64,
    pub bytes: u64,
}

/// The data directory of the embedded store.
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// Creates the directory if needed.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path).map_err(io(path))?;
        Ok(DataDir {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Exclusive advisory lock for builds (several processes may share a data directory).
    fn lock(&self) -> Result<File, StoreError> {
        let path = self.path.join(LOCK);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(file)
    }

    /// The live generation's number and path, if any.
    pub fn current(&self) -> Result<Option<(u64, PathBuf)>, StoreError> {
        let path = self.path.join(CURRENT);
        let name = match std::fs::read_to_string(&path) {
            Ok(name) => name.trim().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let number = parse_generation(&name).ok_or_else(|| StoreError::Db {
            path: path.display().to_string(),
            problem: format!("names `{name}`, not a generation file"),
        })?;
        Ok(Some((number, self.path.join(name))))
    }

    pub fn open_current(&self, cache_bytes: usize) -> Result<Option<Generation>, StoreError> {
        match self.current()? {
            Some((number, path)) => Generation::open(&path, number, cache_bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Serves `snapshot`: reuses the live generation if it was built from this very file
    /// (same path, size and modification time), else builds a new one and publishes it.
    pub fn ensure_snapshot(
        &self,
        snapshot: &Path,
        cache_bytes: usize,
    ) -> Result<(Generation, Option<BuildReport>), StoreError> {
        let fingerprint = fingerprint(snapshot)?;
        let _lock = self.lock()?;
        if let Some((number, path)) = self.current()? {
            match Generation::open(&path, number, cache_bytes) {
                Ok(generation) if base_source(generation.source()) == fingerprint => {
                    return Ok((generation, None));
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "live generation unreadable; rebuilding from the snapshot")
                }
            }
        }
        let report = self.build_locked(snapshot, &fingerprint)?;
        let generation = Generation::open(&report.path, report.generation, cache_bytes)?;
        Ok((generation, Some(report)))
    }

    /// Builds a new generation from a snapshot and publishes it, whatever is live.
    pub fn import(&self, snapshot: &Path) -> Result<BuildReport, StoreError> {
        let fingerprint = fingerprint(snapshot)?;
        let _lock = self.lock()?;
        self.build_locked(snapshot, &fingerprint)
    }

    fn next_generation(&self) -> Result<u64, StoreError> {
        let mut highest = self.current()?.map_or(0, |(n, _)| n);
        for entry in std::fs::read_dir(&self.path).map_err(io(&self.path))? {
            let name = entry.map_err(io(&self.path))?.file_name();
            if let Some(n) = name.to_str().and_then(parse_generation) {
                highest = highest.max(n);
            }
        }
        Ok(highest + 1)
    }

    fn build_locked(&self, snapshot: &Path, fingerprint: &str) -> Result<BuildReport, StoreError> {
        self.build_generation(Instant::now(), |tmp| {
            let (items, lines) = match SnapshotFormat::of(snapshot) {
                SnapshotFormat::JsonLines => {
                    let file = File::open(snapshot).map_err(io(snapshot))?;
                    let reader = std::io::BufReader::with_capacity(1 << 20, file);
                    build_file(tmp, reader, fingerprint)?
                }
                SnapshotFormat::Parquet => {
                    crate::parquet_snapshot::build(snapshot, tmp, fingerprint)?
                }
            };
            Ok((items, lines, 0))
        })
    }

    /// Builds the next generation's file with `build` (returning items, lines and stale
    /// updates) beside the live one, removes it if the build fails, else publishes it. The
    /// caller holds the directory lock.
    fn build_generation(
        &self,
        started: Instant,
        build: impl FnOnce(&Path) -> Result<(u64, u64, u64), StoreError>,
    ) -> Result<BuildReport, StoreError> {
        let number = self.next_generation()?;
        let tmp = self
            .path
            .join(format!("{}.building", generation_name(number)));
        let _ = std::fs::remove_file(&tmp);
        let (items, lines, stale) = match build(&tmp) {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let path = self.publish(number, &tmp)?;
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Ok(BuildReport {
            generation: number,
            path,
            items,
            lines,
            stale,
            seconds: started.elapsed().as_secs_f64(),
            bytes,
        })
    }

    /// Applies versioned puts and deletes: copies the live generation, applies the updates
    /// that are newer than what it holds, and publishes the copy as the next generation.
    pub fn apply_updates(
        &self,
        updates: impl Iterator<Item = Result<Update, StoreError>>,
    ) -> Result<BuildReport, StoreError> {
        let started = Instant::now();
        let _lock = self.lock()?;
        self.build_generation(started, |tmp| {
            let base_source = match self.current()? {
                Some((_, live)) => {
                    std::fs::copy(&live, tmp).map_err(io(tmp))?;
                    let database = redb::Builder::new()
                        .set_cache_size(BUILD_CACHE_BYTES)
                        .open(tmp)
                        .map_err(db(tmp))?;
                    let txn = database.begin_read().map_err(db(tmp))?;
                    let meta = txn.open_table(META).map_err(db(tmp))?;
                    let source = meta
                        .get("source")
                        .map_err(db(tmp))?
                        .map(|v| v.value().to_string())
                        .unwrap_or_default();
                    drop(meta);
                    drop(txn);
                    Some((database, source))
                }
                None => None,
            };
            let (database, source) = match base_source {
                Some(v) => v,
                None => (
                    redb::Builder::new()
                        .set_cache_size(BUILD_CACHE_BYTES)
                        .create(tmp)
                        .map_err(db(tmp))?,
                    "empty".to_string(),
                ),
            };
            apply_to(&database, tmp, updates, &source)
        })
    }

    /// Renames the finished file into place, points `CURRENT` at it (write + rename, so a
    /// reader sees the old name or the new one, never a partial one), and removes generations
    /// older than the previous one (a server still reading one keeps its open file).
    fn publish(&self, number: u64, tmp: &Path) -> Result<PathBuf, StoreError> {
        let name = generation_name(number);
        let path = self.path.join(&name);
        std::fs::rename(tmp, &path).map_err(io(&path))?;
        let current_tmp = self.path.join(format!("{CURRENT}.tmp"));
        {
            let mut f = File::create(&current_tmp).map_err(io(&current_tmp))?;
            f.write_all(name.as_bytes()).map_err(io(&current_tmp))?;
            f.sync_all().map_err(io(&current_tmp))?;
        }
        std::fs::rename(&current_tmp, self.path.join(CURRENT)).map_err(io(&self.path))?;
        if let Ok(dir) = File::open(&self.path) {
            let _ = dir.sync_all();
        }
        for entry in std::fs::read_dir(&self.path)
            .map_err(io(&self.path))?
            .flatten()
        {
            let file_name = entry.file_name();
            let Some(n) = file_name.to_str().and_then(parse_generation) else {
                continue;
            };
            if n + 1 < number {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(path)
    }
}

fn generation_name(number: u64) -> String {
    format!("gen-{number:06}.redb")
}

fn parse_generation(name: &str) -> Option<u64> {
    name.strip_prefix("gen-")?
        .strip_suffix(".redb")?
        .parse()
        .ok()
}

/// Path, size and modification time of a snapshot: cheap, and changes whenever a pipeline
/// writes a new file (documented in docs/feature-store.md).
fn fingerprint(snapshot: &Path) -> Result<String, StoreError> {
    let meta = std::fs::metadata(snapshot).map_err(io(snapshot))?;
    let canonical = std::fs::canonicalize(snapshot).map_err(io(snapshot))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!(
        "snapshot {} size {} mtime {mtime}",
        canonical.display(),
        meta.len()
    ))
}

fn base_source(source: &str) -> &str {
    source.split(" +updates").next().unwrap_or(source)
}

/// Writes a new store file from JSON Lines.
fn build_file(
    path: &Path,
    reader: impl BufRead,
    fingerprint: &str,
) -> Result<(u64, u64), StoreError> {
    let mut builder = SnapshotBuilder::create(path)?;
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(io(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = |problem: String| StoreError::Line {
            line: i + 1,
            problem,
        };
        let parsed: SnapshotLine = serde_json::from_str(&line).map_err(|e| at(e.to_string()))?;
        builder.push(
            &parsed.id,
            parsed.version,
            parsed.features.iter().map(|(k, v)| (k.as_str(), *v)),
            at,
        )?;
    }
    builder.finish(fingerprint)
}

/// Writes a snapshot's items into a new store file, whatever the snapshot's format: JSON Lines
/// ([`build_file`]) and Parquet ([`crate::parquet_snapshot`]) feed the same rows through it,
/// so the same data gives the same file.
pub(crate) struct SnapshotBuilder<'p> {
    path: &'p Path,
    database: redb::Database,
    txn: Option<redb::WriteTransaction>,
    columns: Columns,
    items: u64,
    rows: u64,
    in_txn: usize,
    values: Vec<f64>,
}

impl<'p> SnapshotBuilder<'p> {
    pub(crate) fn create(path: &'p Path) -> Result<Self, StoreError> {
        let database = redb::Builder::new()
            .set_cache_size(BUILD_CACHE_BYTES)
            .create(path)
            .map_err(db(path))?;
        let txn = begin_bulk(&database, path)?;
        Ok(SnapshotBuilder {
            path,
            database,
            txn: Some(txn),
            columns: Columns::default(),
            items: 0,
            rows: 0,
            in_txn: 0,
            values: Vec::new(),
        })
    }

    /// One item (a later one with the same id replaces it). `features` in the order their
    /// names are first seen (JSON Lines: by name, as the parsed object is sorted); `None` is
    /// an absent feature and does not create a column. `at` places an error in the input.
    pub(crate) fn push<'n>(
        &mut self,
        id: &str,
        version: u64,
        features: impl IntoIterator<Item = (&'n str, Option<f64>)>,
        at: impl FnOnce(String) -> StoreError,
    ) -> Result<(), StoreError> {
        let path = self.path;
        self.values.clear();
        for (name, value) in features {
            let Some(value) = value else { continue };
            let Some(column) = self.columns.intern(name) else {
                return Err(at(format!(
                    "more than {} distinct feature names",
                    crate::record::MAX_COLUMNS
                )));
            };
            let column = column as usize;
            if self.values.len() <= column {
                self.values.resize(column + 1, f64::NAN);
            }
            self.values[column] = value;
        }
        let Some(txn) = self.txn.as_ref() else {
            return Err(StoreError::Db {
                path: path.display().to_string(),
                problem: "no open write transaction".into(),
            });
        };
        {
            let mut table = txn.open_table(ITEMS).map_err(db(path))?;
            let old = table
                .insert(id, encode(version, Some(&self.values)).as_slice())
                .map_err(db(path))?;
            if old.is_none() {
                self.items += 1;
            }
        }
        self.rows += 1;
        self.in_txn += 1;
        if self.in_txn >= BUILD_BATCH {
            if let Some(txn) = self.txn.take() {
                txn.commit().map_err(db(path))?;
            }
            self.txn = Some(begin_bulk(&self.database, path)?);
            self.in_txn = 0;
        }
        Ok(())
    }

    /// Writes the metadata and commits durably; returns (items, rows).
    pub(crate) fn finish(mut self, fingerprint: &str) -> Result<(u64, u64), StoreError> {
        let path = self.path;
        let mut txn = match self.txn.take() {
            Some(txn) => txn,
            None => begin_bulk(&self.database, path)?,
        };
        write_meta(&txn, path, &self.columns, self.items, fingerprint)?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| StoreError::Db {
                path: path.display().to_string(),
                problem: e.to_string(),
            })?;
        txn.commit().map_err(db(path))?;
        drop(self.database);
        Ok((self.items, self.rows))
    }
}

fn begin_bulk(
    database: &redb::Database,
    path: &Path,
) -> Result<redb::WriteTransaction, StoreError> {
    let mut txn = database.begin_write().map_err(db(path))?;
    // Intermediate commits need not reach the disk: only the final one makes the file live.
    txn.set_durability(redb::Durability::None)
        .map_err(|e| StoreError::Db {
            path: path.display().to_string(),
            problem: e.to_string(),
        })?;
    Ok(txn)
}

fn write_meta(
    txn: &redb::WriteTransaction,
    path: &Path,
    columns: &Columns,
    items: u64,
    source: &str,
) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).map_err(db(path))?;
    let names = serde_json::to_string(&columns.names()).unwrap_or_else(|_| "[]".into());
    for (k, v) in [
        ("format", FORMAT.to_string()),
        ("columns", names),
        ("items", items.to_string()),
        ("source", source.to_string()),
    ] {
        meta.insert(k, v.as_str()).map_err(db(path))?;
    }
    // Make sure the items table exists even for an empty snapshot.
    txn.open_table(ITEMS).map_err(db(path))?;
    Ok(())
}

/// Applies updates to an open (copied) store file; returns live items, lines, stale lines.
fn apply_to(
    database: &redb::Database,
    path: &Path,
    updates: impl Iterator<Item = Result<Update, StoreError>>,
    source: &str,
) -> Result<(u64, u64, u64), StoreError> {
    let (columns, mut items) = {
        let txn = database.begin_read().map_err(db(path))?;
        match txn.open_table(META) {
            Ok(meta) => {
                let names: Vec<String> = meta
                    .get("columns")
                    .map_err(db(path))?
                    .and_then(|v| serde_json::from_str(v.value()).ok())
                    .unwrap_or_default();
                let items = meta
                    .get("items")
                    .map_err(db(path))?
                    .and_then(|v| v.value().parse().ok())
                    .unwrap_or(0u64);
                (Columns::from_names(names.iter().map(String::as_str)), items)
            }
            Err(redb::TableError::TableDoesNotExist(_)) => (Columns::default(), 0),
            Err(e) => return Err(db(path)(e)),
        }
    };
    let mut lines = 0u64;
    let mut stale = 0u64;
    let mut txn = begin_bulk(database, path)?;
    let mut in_txn = 0usize;
    for update in updates {
        let update = update?;
        lines += 1;
        {
            let mut table = txn.open_table(ITEMS).map_err(db(path))?;
            let existing = table
                .get(update.id.as_str())
                .map_err(db(path))?
                .and_then(|g| decode(g.value()));
            if existing
                .as_ref()
                .is_some_and(|s| s.version >= update.version)
            {
                stale += 1;
                continue;
            }
            let was_live = existing.is_some_and(|s| s.record.is_some());
            let encoded = match &update.op {
                UpdateOp::Put(features) => {
                    let (record, dropped) = ItemRecord::from_pairs(
                        &columns,
                        features.iter().map(|(k, v)| (k.as_str(), *v)),
                    );
                    if dropped > 0 {
                        return Err(StoreError::Line {
                            line: update.line,
                            problem: format!(
                                "more than {} distinct feature names",
                                crate::record::MAX_COLUMNS
                            ),
                        });
                    }
                    if !was_live {
                        items += 1;
                    }
                    encode(update.version, Some(record.values()))
                }
                UpdateOp::Delete => {
                    if was_live {
                        items -= 1;
                    }
                    encode(update.version, None)
                }
            };
            table
                .insert(update.id.as_str(), encoded.as_slice())
                .map_err(db(path))?;
        }
        in_txn += 1;
        if in_txn >= BUILD_BATCH {
            txn.commit().map_err(db(path))?;
            txn = begin_bulk(database, path)?;
            in_txn = 0;
        }
    }
    let source = format!("{} +updates", base_source(source));
    write_meta(&txn, path, &columns, items, &source)?;
    txn.set_durability(redb::Durability::Immediate)
        .map_err(|e| StoreError::Db {
            path: path.display().to_string(),
            problem: e.to_string(),
        })?;
    txn.commit().map_err(db(path))?;
    Ok((items, lines, stale))
}

/// Reads a whole store's live item count (for reports and tests).
pub fn count_items(generation: &Generation) -> Result<u64, StoreError> {
    let n = generation.table.len().map_err(db(&generation.path))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::parse_updates;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn builds_reuses_and_rebuilds_generations() {
        let tmp = tempfile::tempdir().expect("tmp");
        let snap = write(
            tmp.path(),
            "items.jsonl",
            "{\"id\":\"x\",\"features\":{\"b\":0.1,\"a\":-1,\"n\":null}}\n\n{\"id\":\"y\"}\n{\"id\":\"x\",\"features\":{\"a\":2}}\n",
        );
        let dir = DataDir::open(&tmp.path().join("data")).expect("dir");
        let (g, report) = dir.ensure_snapshot(&snap, 1 << 20).expect("build");
        let report = report.expect("built");
        assert_eq!((report.items, report.lines, g.number()), (2, 3, 1));
        let a = g.columns().column("a").expect("a");
        assert_eq!(
            g.get("x").expect("read").and_then(|r| r.value(a)),
            Some(2.0)
        );
        assert!(g.get("y").expect("read").is_some() && g.get("z").expect("read").is_none());
        assert_eq!(g.columns().column("n"), None);
        drop(g);
        // same file: reused
        let (g, report) = dir.ensure_snapshot(&snap, 1 << 20).expect("reuse");
        assert!(report.is_none());
        assert_eq!(g.number(), 1);
        // changed file: a new generation beside the old one
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(
            tmp.path(),
            "items.jsonl",
            "{\"id\":\"z\",\"features\":{\"a\":0.30000000000000004}}\n",
        );
        let (g2, report) = dir.ensure_snapshot(&snap, 1 << 20).expect("rebuild");
        assert!(report.is_some());
        assert_eq!(g2.number(), 2);
        let a = g2.columns().column("a").expect("a");
        // exact f64, bit for bit
        assert_eq!(
            g2.get("z")
                .expect("read")
                .and_then(|r| r.value(a))
                .map(f64::to_bits),
            Some(0.30000000000000004f64.to_bits())
        );
        // the old generation is still readable by whoever holds it
        assert!(g.get("x").expect("old read").is_some());
    }

    #[test]
    fn bad_snapshot_lines_are_named_and_nothing_is_published() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = DataDir::open(&tmp.path().join("data")).expect("dir");
        for (text, line) in [
            (
                "{\"id\":\"x\"}\n{\"id\":\"y\",\"features\":{\"a\":\"1\"}}\n",
                2,
            ),
            ("not json\n", 1),
            ("{\"id\":1}\n", 1),
            ("{\"id\":\"x\",\"feature\":{}}\n", 1),
        ] {
            let snap = write(tmp.path(), "bad.jsonl", text);
            match dir.import(&snap) {
                Err(StoreError::Line { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(dir.current().expect("current").is_none());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n != LOCK)
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn updates_respect_versions_and_deletes_keep_tombstones() {
        let tmp = tempfile::tempdir().expect("tmp");
        let snap = write(
            tmp.path(),
            "items.jsonl",
            "{\"id\":\"a\",\"version\":5,\"features\":{\"p\":1}}\n{\"id\":\"b\",\"version\":5,\"features\":{\"p\":2}}\n",
        );
        let dir = DataDir::open(&tmp.path().join("data")).expect("dir");
        dir.import(&snap).expect("import");
        let updates = "\
{\"op\":\"put\",\"id\":\"a\",\"version\":4,\"features\":{\"p\":100}}
{\"op\":\"put\",\"id\":\"a\",\"version\":6,\"features\":{\"p\":10,\"q\":7}}
{\"op\":\"delete\",\"id\":\"b\",\"version\":9}
{\"op\":\"put\",\"id\":\"b\",\"version\":8,\"features\":{\"p\":20}}
{\"op\":\"put\",\"id\":\"c\",\"version\":1,\"features\":{\"q\":3}}
{\"op\":\"put\",\"id\":\"a\",\"version\":6,\"features\":{\"p\":11}}
";
        let report = dir
            .apply_updates(parse_updates(updates.as_bytes(), None).map(|r| {
                r.map_err(|e| StoreError::Line {
                    line: 0,
                    problem: e.to_string(),
                })
            }))
            .expect("apply");
        assert_eq!((report.lines, report.stale, report.items), (6, 3, 2));
        let g = dir.open_current(1 << 20).expect("open").expect("live");
        assert_eq!(g.number(), 2);
        let (p, q) = (
            g.columns().column("p").expect("p"),
            g.columns().column("q").expect("q"),
        );
        let a = g.get("a").expect("read").expect("a live");
        assert_eq!((a.value(p), a.value(q)), (Some(10.0), Some(7.0)));
        assert!(
            g.get("b").expect("read").is_none(),
            "deleted, and the older put did not revive it"
        );
        assert_eq!(
            g.get("c").expect("read").and_then(|r| r.value(q)),
            Some(3.0)
        );
        assert_eq!(g.len(), 2);
        assert!(g.source().ends_with("+updates"));
    }
}

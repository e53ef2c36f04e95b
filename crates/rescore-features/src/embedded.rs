//! The embedded item store's data directory: immutable generations of the memory-mapped item
//! file ([`crate::snapshot`]), each built from a snapshot (or from the previous generation plus
//! updates) beside the live one and published by an atomic rename of `CURRENT`
//! (docs/adr/0008-mapped-item-snapshot.md, which supersedes the redb layout of ADR 0006).
//!
//! ```text
//! DATA_DIR/LOCK              advisory lock held while a generation is built
//! DATA_DIR/SERVING           shared advisory lock of every server serving the directory
//! DATA_DIR/CURRENT           name of the live generation file (replaced by rename)
//! DATA_DIR/gen-000007.items  one generation, never modified once published
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Deserialize;

use crate::record::Columns;
use crate::routing_shard::ShardFilter;
use crate::snapshot::writer::{Meta, Writer};
pub use crate::snapshot::{Entry, Generation};
use crate::update::{Update, UpdateOp};

const CURRENT: &str = "CURRENT";
const LOCK: &str = "LOCK";
const SERVING: &str = "SERVING";
const SUFFIX: &str = ".items";
/// The suffix of the redb generations of older releases (replaced on the next build).
const OLD_SUFFIX: &str = ".redb";

/// Who built a generation (kept in its metadata): a server from its `--items` at start-up,
/// `items import`, or `items put|delete|apply`.
pub const BUILT_BY_SERVE: &str = "serve";
pub const BUILT_BY_IMPORT: &str = "import";
pub const BUILT_BY_UPDATES: &str = "updates";

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
    /// Another running server serves the data directory with another catalogue.
    #[error(
        "data directory {dir} serves another catalogue to a running sidecar: {serves}; \
         --items {requested} would replace it for that sidecar too. Give this sidecar its own \
         --data-dir, or replace the catalogue of every sidecar on {dir} on purpose with \
         `rescore-sidecar items import {requested} --data-dir {dir}`"
    )]
    Catalogue {
        dir: String,
        serves: String,
        requested: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Held by a server for as long as it serves a data directory (a shared advisory lock on
/// `SERVING`): another server that would publish a different catalogue there sees it and
/// refuses to start.
#[derive(Debug)]
pub struct ServingClaim {
    _file: File,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotLine {
    id: String,
    /// The document's `_routing`, when it is not routed by its id (shard-filtered imports).
    #[serde(default)]
    routing: Option<String>,
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
    /// Snapshot items left out because the index routes them to a shard the import does not
    /// keep (`--keep-shards`).
    pub skipped: u64,
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
    /// (Tools and tests; a server uses [`DataDir::serve`], which also respects other servers.)
    pub fn ensure_snapshot(
        &self,
        snapshot: &Path,
        cache_bytes: usize,
    ) -> Result<(Generation, Option<BuildReport>), StoreError> {
        let fingerprint = fingerprint(snapshot)?;
        let _lock = self.lock()?;
        if let Some(live) = self.live_for(&fingerprint, cache_bytes)? {
            return Ok((live, None));
        }
        let report = self.build_locked(snapshot, &fingerprint, BUILT_BY_SERVE, None)?;
        let generation = Generation::open(&report.path, report.generation, cache_bytes)?;
        Ok((generation, Some(report)))
    }

    /// The live generation if it was built from the snapshot of `fingerprint`.
    fn live_for(
        &self,
        fingerprint: &str,
        cache_bytes: usize,
    ) -> Result<Option<Generation>, StoreError> {
        let Some((number, path)) = self.current()? else {
            return Ok(None);
        };
        match Generation::open(&path, number, cache_bytes) {
            Ok(generation) if base_source(generation.source()) == fingerprint => {
                Ok(Some(generation))
            }
            Ok(_) => Ok(None),
            Err(error) => {
                tracing::warn!(%error, "live generation unreadable; rebuilding from the snapshot");
                Ok(None)
            }
        }
    }

    /// What a server does with `--items snapshot` at start: [`DataDir::ensure_snapshot`], and
    /// a claim on the directory held while serving. A data directory serves one catalogue:
    /// when the live generation came from another snapshot file (or an `items import` of one)
    /// and another server is serving the directory, nothing is built and the error names the
    /// directory and what it serves. A newer version of the same snapshot file is built and
    /// published (every server on the directory then swaps to it), as is any snapshot when no
    /// other server is running.
    pub fn serve(
        &self,
        snapshot: &Path,
    ) -> Result<(Generation, Option<BuildReport>, ServingClaim), StoreError> {
        let fingerprint = fingerprint(snapshot)?;
        let claim_path = self.path.join(SERVING);
        let claim = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&claim_path)
            .map_err(io(&claim_path))?;
        let _lock = self.lock()?;
        if let Some(live) = self.live_for(&fingerprint, 0)? {
            claim.lock_shared().map_err(io(&claim_path))?;
            return Ok((live, None, ServingClaim { _file: claim }));
        }
        match claim.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                if let Some(live) = self.open_current(0).ok().flatten() {
                    if snapshot_path(live.source()) != snapshot_path(&fingerprint) {
                        return Err(StoreError::Catalogue {
                            dir: self.path.display().to_string(),
                            serves: format!(
                                "generation {} ({} items) built by {} from {}",
                                live.number(),
                                live.len(),
                                live.built_by(),
                                snapshot_path(live.source()),
                            ),
                            requested: snapshot.display().to_string(),
                        });
                    }
                }
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&claim_path)(e)),
        }
        // A data directory that serves a shard-filtered generation keeps its shards when a
        // newer snapshot file is built at start (a node must not grow to the whole catalogue
        // because it restarted); `items import` without `--keep-shards` goes back to all.
        let shards = self
            .open_current(0)
            .ok()
            .flatten()
            .and_then(|live| live.shard_filter().cloned());
        if let Some(shards) = &shards {
            tracing::info!(%shards, "building the newer snapshot with the live generation's shard filter");
        }
        let report = self.build_locked(snapshot, &fingerprint, BUILT_BY_SERVE, shards.as_ref())?;
        let generation = Generation::open(&report.path, report.generation, 0)?;
        claim.lock_shared().map_err(io(&claim_path))?;
        Ok((generation, Some(report), ServingClaim { _file: claim }))
    }

    /// Builds a new generation from a snapshot and publishes it, whatever is live.
    pub fn import(&self, snapshot: &Path) -> Result<BuildReport, StoreError> {
        self.import_shards(snapshot, None)
    }

    /// [`DataDir::import`] keeping only the items the index routes to `shards` (all when
    /// `None`); the generation's metadata records the filter (ADR 0009).
    pub fn import_shards(
        &self,
        snapshot: &Path,
        shards: Option<&ShardFilter>,
    ) -> Result<BuildReport, StoreError> {
        let fingerprint = fingerprint(snapshot)?;
        let _lock = self.lock()?;
        self.build_locked(snapshot, &fingerprint, BUILT_BY_IMPORT, shards)
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

    fn build_locked(
        &self,
        snapshot: &Path,
        fingerprint: &str,
        built_by: &str,
        shards: Option<&ShardFilter>,
    ) -> Result<BuildReport, StoreError> {
        self.build_generation(Instant::now(), |tmp| {
            let builder = SnapshotBuilder::create(tmp, shards.cloned())?;
            match SnapshotFormat::of(snapshot) {
                SnapshotFormat::JsonLines => {
                    let file = File::open(snapshot).map_err(io(snapshot))?;
                    let reader = std::io::BufReader::with_capacity(1 << 20, file);
                    build_file(builder, tmp, reader, fingerprint, built_by)
                }
                SnapshotFormat::Parquet => {
                    crate::parquet_snapshot::build(snapshot, builder, fingerprint, built_by)
                }
            }
        })
    }

    /// Builds the next generation's file with `build` beside the live one, removes it if the
    /// build fails, else publishes it. The caller holds the directory lock.
    fn build_generation(
        &self,
        started: Instant,
        build: impl FnOnce(&Path) -> Result<Built, StoreError>,
    ) -> Result<BuildReport, StoreError> {
        let number = self.next_generation()?;
        let tmp = self
            .path
            .join(format!("{}.building", generation_name(number)));
        let _ = std::fs::remove_file(&tmp);
        let built = match build(&tmp) {
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
            items: built.items,
            lines: built.lines,
            stale: built.stale,
            skipped: built.skipped,
            seconds: started.elapsed().as_secs_f64(),
            bytes,
        })
    }

    /// Applies versioned puts and deletes: reads the live generation, applies the updates
    /// that are newer than what it holds (in input order), and writes the result as the next
    /// generation. The updates of one run are held in memory until written (a batch, not a
    /// stream: streams of single updates belong in Redis).
    pub fn apply_updates(
        &self,
        updates: impl Iterator<Item = Result<Update, StoreError>>,
    ) -> Result<BuildReport, StoreError> {
        let started = Instant::now();
        let _lock = self.lock()?;
        let live = match self.current()? {
            Some((number, path)) => Some(Generation::open(&path, number, 0)?),
            None => None,
        };
        self.build_generation(started, |tmp| apply_to(live.as_ref(), tmp, updates))
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

/// What building a generation file did (see [`BuildReport`]).
#[derive(Debug, Default)]
pub(crate) struct Built {
    items: u64,
    lines: u64,
    stale: u64,
    skipped: u64,
}

fn generation_name(number: u64) -> String {
    format!("gen-{number:06}{SUFFIX}")
}

/// The number of a generation file, this release's or an older one's (`CURRENT` may still
/// name a redb generation: it is then rebuilt, and numbering goes on from it).
fn parse_generation(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("gen-")?;
    rest.strip_suffix(SUFFIX)
        .or_else(|| rest.strip_suffix(OLD_SUFFIX))?
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

/// The snapshot file a source (or fingerprint) names: what identifies a catalogue.
pub fn snapshot_path(source: &str) -> &str {
    let base = base_source(source);
    let path = base.strip_prefix("snapshot ").unwrap_or(base);
    path.rsplit_once(" size ").map_or(path, |(p, _)| p)
}

/// Writes a new store file from JSON Lines.
fn build_file(
    mut builder: SnapshotBuilder,
    path: &Path,
    reader: impl BufRead,
    fingerprint: &str,
    built_by: &str,
) -> Result<Built, StoreError> {
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
            parsed.routing.as_deref(),
            parsed.version,
            parsed.features.iter().map(|(k, v)| (k.as_str(), *v)),
            at,
        )?;
    }
    builder.finish(fingerprint, built_by)
}

/// Writes a snapshot's items into a new store file, whatever the snapshot's format: JSON Lines
/// ([`build_file`]) and Parquet ([`crate::parquet_snapshot`]) feed the same rows through it,
/// so the same data gives the same file.
pub(crate) struct SnapshotBuilder {
    writer: Writer,
    columns: Columns,
    rows: u64,
    values: Vec<f64>,
    /// Keeps only the items routed to these shards (`items import --keep-shards`).
    shards: Option<ShardFilter>,
    skipped: u64,
}

impl SnapshotBuilder {
    pub(crate) fn create(path: &Path, shards: Option<ShardFilter>) -> Result<Self, StoreError> {
        Ok(SnapshotBuilder {
            writer: Writer::create(path)?,
            columns: Columns::default(),
            rows: 0,
            values: Vec::new(),
            shards,
            skipped: 0,
        })
    }

    /// Whether the snapshot is filtered by shard (its `routing` must then be a string).
    pub(crate) fn filters_shards(&self) -> bool {
        self.shards.is_some()
    }

    /// One item (a later one with the same id replaces it). `routing` is the document's
    /// `_routing` when it has one (else the id routes it): with a shard filter, an item routed
    /// to another shard is counted and left out. `features` in the order their names are
    /// first seen (JSON Lines: by name, as the parsed object is sorted); `None` is an absent
    /// feature and does not create a column. `at` places an error in the input.
    pub(crate) fn push<'n>(
        &mut self,
        id: &str,
        routing: Option<&str>,
        version: u64,
        features: impl IntoIterator<Item = (&'n str, Option<f64>)>,
        at: impl FnOnce(String) -> StoreError,
    ) -> Result<(), StoreError> {
        if routing == Some("") {
            return Err(at(
                "`routing` is empty: omit it (or null) for an item routed by its id".into(),
            ));
        }
        // The top bit of a stored version marks a tombstone.
        if version >= 1 << 63 {
            return Err(at(format!("version {version} is above 2^63 - 1")));
        }
        self.rows += 1;
        if let Some(shards) = &self.shards {
            if !shards.keeps(routing.unwrap_or(id)) {
                self.skipped += 1;
                return Ok(());
            }
        }
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
        self.writer.push(id, version, Some(&self.values))?;
        Ok(())
    }

    /// Sorts and writes the file durably.
    pub(crate) fn finish(self, fingerprint: &str, built_by: &str) -> Result<Built, StoreError> {
        let (items, _) = self.writer.finish(
            &self.columns,
            Meta {
                source: fingerprint,
                built_by,
                shards: self.shards.as_ref(),
            },
        )?;
        Ok(Built {
            items,
            lines: self.rows,
            stale: 0,
            skipped: self.skipped,
        })
    }
}

/// The state of an id after the updates seen so far: version, and the values unless deleted.
type Updated = (u64, Option<Vec<f64>>);

/// Writes `live` with `updates` applied into `path` (keeping its shard filter, if any: the
/// updates themselves are applied as given).
fn apply_to(
    live: Option<&Generation>,
    path: &Path,
    updates: impl Iterator<Item = Result<Update, StoreError>>,
) -> Result<Built, StoreError> {
    let columns = match live {
        Some(g) => Columns::from_names(g.columns().names().iter().map(String::as_str)),
        None => Columns::default(),
    };
    let mut lines = 0u64;
    let mut stale = 0u64;
    let mut changed: HashMap<String, Updated> = HashMap::new();
    for update in updates {
        let update = update?;
        lines += 1;
        let current = match changed.get(update.id.as_str()) {
            Some((version, _)) => Some(*version),
            None => live.and_then(|g| g.entry(&update.id)).map(|e| e.version),
        };
        if current.is_some_and(|v| v >= update.version) {
            stale += 1;
            continue;
        }
        let values = match &update.op {
            UpdateOp::Put(features) => {
                let mut values = Vec::new();
                for (name, value) in features {
                    let Some(column) = columns.intern(name) else {
                        return Err(StoreError::Line {
                            line: update.line,
                            problem: format!(
                                "more than {} distinct feature names",
                                crate::record::MAX_COLUMNS
                            ),
                        });
                    };
                    let column = column as usize;
                    if values.len() <= column {
                        values.resize(column + 1, f64::NAN);
                    }
                    values[column] = *value;
                }
                Some(values)
            }
            UpdateOp::Delete => None,
        };
        changed.insert(update.id, (update.version, values));
    }
    let mut writer = Writer::create(path)?;
    if let Some(live) = live {
        for (id, entry) in live.entries() {
            if !changed.contains_key(id) {
                writer.push(id, entry.version, entry.values)?;
            }
        }
    }
    for (id, (version, values)) in &changed {
        writer.push(id, *version, values.as_deref())?;
    }
    let source = format!(
        "{} +updates",
        live.map_or("empty", |g| base_source(g.source()))
    );
    let (items, _) = writer.finish(
        &columns,
        Meta {
            source: &source,
            built_by: BUILT_BY_UPDATES,
            shards: live.and_then(Generation::shard_filter),
        },
    )?;
    Ok(Built {
        items,
        lines,
        stale,
        skipped: 0,
    })
}

/// Counts a generation's live items by reading every entry (for reports and tests).
pub fn count_items(generation: &Generation) -> Result<u64, StoreError> {
    Ok(generation
        .entries()
        .filter(|(_, e)| e.values.is_some())
        .count() as u64)
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

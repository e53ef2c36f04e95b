//! Feature logging: a sample of scored requests, with the exact feature vectors the model saw
//! and the scores it returned, written as JSON Lines by a background thread. The request path
//! only decides the sample and hands a record to a bounded queue; a full queue drops the record
//! and counts it. Files rotate by size and the directory is kept under a total size.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::config::FeatureLogConfig;
use crate::names;

/// Log files are `features-<unix ms>-<sequence>.jsonl`; names sort by age.
pub const FILE_PREFIX: &str = "features-";
pub const FILE_SUFFIX: &str = ".jsonl";

/// One logged request (one line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRecord {
    /// Milliseconds since the Unix epoch when the request was scored.
    pub ts_ms: u64,
    /// The request's `request_id`, or one the sidecar made up (`sc-<start>-<n>`).
    pub request_id: String,
    pub model: String,
    pub version: String,
    pub variant: String,
    /// The model's features, in the order of each hit's `features`.
    pub feature_names: Arc<[String]>,
    pub hits: Vec<LoggedHit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggedHit {
    pub id: String,
    /// Exactly the values the model scored; null = missing (NaN).
    pub features: Vec<Option<f64>>,
    pub score: f64,
}

/// What the request path hands to the writer: the serialisation happens on its thread.
#[derive(Debug)]
pub struct PendingRecord {
    pub request_id: String,
    pub model: String,
    pub version: String,
    pub variant: String,
    pub feature_names: Arc<[String]>,
    pub hit_ids: Vec<String>,
    /// Row-major, `feature_names.len()` values per hit.
    pub rows: Vec<f64>,
    pub scores: Vec<f64>,
    pub ts_ms: u64,
}

impl PendingRecord {
    /// The line as written (public for the overhead benchmark).
    pub fn into_record(self) -> LogRecord {
        let width = self.feature_names.len();
        let hits = self
            .hit_ids
            .into_iter()
            .zip(&self.scores)
            .enumerate()
            .map(|(i, (id, &score))| LoggedHit {
                id,
                features: self.rows[i * width..(i + 1) * width]
                    .iter()
                    .map(|&x| (!x.is_nan()).then_some(x))
                    .collect(),
                score,
            })
            .collect();
        LogRecord {
            ts_ms: self.ts_ms,
            request_id: self.request_id,
            model: self.model,
            version: self.version,
            variant: self.variant,
            feature_names: self.feature_names,
            hits,
        }
    }
}

/// The sampling decision and the queue to the writer thread.
#[derive(Debug)]
pub struct FeatureLog {
    sample_rate: f64,
    tx: Mutex<Option<SyncSender<PendingRecord>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    started_ms: u64,
    next_id: AtomicU64,
    dropped_full: metrics::Counter,
}

impl FeatureLog {
    /// Creates the directory, applies the size bound to files already there and starts the
    /// writer thread.
    pub fn start(config: &FeatureLogConfig) -> std::io::Result<Self> {
        let dir = config
            .dir
            .clone()
            .ok_or_else(|| std::io::Error::other("monitoring.feature_log.dir is not set"))?;
        std::fs::create_dir_all(&dir)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue_capacity);
        let mut writer = Writer::new(dir, config.max_file_bytes, config.max_total_bytes);
        writer.enforce_total()?;
        let handle = std::thread::Builder::new()
            .name("feature-log".into())
            .spawn(move || writer.run(rx))?;
        Ok(FeatureLog {
            sample_rate: config.sample_rate,
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            started_ms: unix_ms(),
            next_id: AtomicU64::new(0),
            dropped_full: metrics::counter!(names::FEATURE_LOG_DROPPED, "reason" => "queue_full"),
        })
    }

    /// Whether this request is in the sample.
    pub fn sampled(&self) -> bool {
        sample(self.sample_rate, &mut rand::thread_rng())
    }

    /// An id for a request that did not bring one: unique per process start.
    pub fn make_request_id(&self) -> String {
        format!(
            "sc-{}-{}",
            self.started_ms,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Hands a record to the writer without blocking; false if it was dropped (queue full,
    /// or the log is closed).
    pub fn submit(&self, record: PendingRecord) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = tx.as_ref() else {
            return false;
        };
        match tx.try_send(record) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped_full.increment(1);
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Stops accepting records, lets the writer drain the queue and flush, and waits for it.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = handle.join();
        }
    }
}

impl Drop for FeatureLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// Bernoulli sample with probability `rate`.
pub fn sample(rate: f64, rng: &mut impl rand::Rng) -> bool {
    rate >= 1.0 || (rate > 0.0 && rng.gen::<f64>() < rate)
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Writer {
    dir: PathBuf,
    max_file_bytes: u64,
    max_total_bytes: u64,
    current: Option<(PathBuf, BufWriter<File>, u64)>,
    seq: u64,
    records: metrics::Counter,
    bytes: metrics::Counter,
    write_errors: metrics::Counter,
    disk_bytes: metrics::Gauge,
}

impl Writer {
    fn new(dir: PathBuf, max_file_bytes: u64, max_total_bytes: u64) -> Self {
        Writer {
            dir,
            max_file_bytes,
            max_total_bytes,
            current: None,
            seq: 0,
            records: metrics::counter!(names::FEATURE_LOG_RECORDS),
            bytes: metrics::counter!(names::FEATURE_LOG_BYTES),
            write_errors: metrics::counter!(names::FEATURE_LOG_DROPPED, "reason" => "write_error"),
            disk_bytes: metrics::gauge!(names::FEATURE_LOG_DISK_BYTES),
        }
    }

    fn run(mut self, rx: Receiver<PendingRecord>) {
        let mut line = Vec::with_capacity(64 * 1024);
        while let Ok(first) = rx.recv() {
            let mut next = Some(first);
            // Drain what is queued, then flush once: records reach the file within one batch.
            while let Some(pending) = next {
                line.clear();
                let record = pending.into_record();
                let written = serde_json::to_writer(&mut line, &record)
                    .map_err(std::io::Error::other)
                    .and_then(|()| {
                        line.push(b'\n');
                        self.write(&line)
                    });
                match written {
                    Ok(()) => {
                        self.records.increment(1);
                        self.bytes.increment(line.len() as u64);
                    }
                    Err(error) => {
                        self.write_errors.increment(1);
                        tracing::warn!(%error, dir = %self.dir.display(), "feature log record not written");
                        self.current = None;
                    }
                }
                next = rx.try_recv().ok();
            }
            if let Some((_, file, _)) = &mut self.current {
                if let Err(error) = file.flush() {
                    self.write_errors.increment(1);
                    tracing::warn!(%error, "feature log flush failed");
                    self.current = None;
                }
            }
        }
        if let Some((_, mut file, _)) = self.current.take() {
            let _ = file.flush();
        }
    }

    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        let full = self.current.as_ref().is_some_and(|(_, _, size)| {
            *size > 0 && size + line.len() as u64 > self.max_file_bytes
        });
        if full {
            if let Some((_, mut file, _)) = self.current.take() {
                file.flush()?;
            }
        }
        if self.current.is_none() {
            let path = self.dir.join(format!(
                "{FILE_PREFIX}{:013}-{:06}{FILE_SUFFIX}",
                unix_ms(),
                self.seq
            ));
            self.seq += 1;
            let file = File::options().create_new(true).append(true).open(&path)?;
            self.current = Some((path, BufWriter::with_capacity(256 * 1024, file), 0));
            self.enforce_total()?;
        }
        let Some((_, file, size)) = &mut self.current else {
            return Err(std::io::Error::other("no log file"));
        };
        file.write_all(line)?;
        *size += line.len() as u64;
        self.disk_bytes.increment(line.len() as f64);
        Ok(())
    }

    /// Deletes the oldest log files until the directory's log files fit `max_total_bytes`,
    /// counting the current file at its full allowance (never deleting it).
    fn enforce_total(&mut self) -> std::io::Result<()> {
        let current = self.current.as_ref().map(|(p, _, _)| p.clone());
        let mut files = log_files(&self.dir)?;
        let sizes: Vec<u64> = files
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .collect();
        let mut total: u64 = files
            .iter()
            .zip(&sizes)
            .filter(|(p, _)| Some(*p) != current.as_ref())
            .map(|(_, s)| s)
            .sum();
        let allowance = if current.is_some() {
            self.max_file_bytes
        } else {
            0
        };
        let mut kept = 0u64;
        for (path, size) in files.drain(..).zip(sizes) {
            if Some(&path) == current.as_ref() {
                continue;
            }
            if total + allowance > self.max_total_bytes {
                std::fs::remove_file(&path)?;
                total -= size;
                tracing::info!(path = %path.display(), "feature log file deleted (max_total_bytes)");
            } else {
                kept += size;
            }
        }
        let current_size = self.current.as_ref().map_or(0, |(_, _, s)| *s);
        self.disk_bytes.set((kept + current_size) as f64);
        Ok(())
    }
}

/// The log files of a directory, oldest first.
pub fn log_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(FILE_PREFIX) && n.ends_with(FILE_SUFFIX))
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "rescore-monitor-{tag}-{}-{}",
            std::process::id(),
            unix_ms()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn pending(id: &str, hits: usize) -> PendingRecord {
        PendingRecord {
            request_id: id.into(),
            model: "m".into(),
            version: "1".into(),
            variant: "live".into(),
            feature_names: vec!["a".to_string(), "b".to_string()].into(),
            hit_ids: (0..hits).map(|i| format!("h{i}")).collect(),
            rows: (0..hits)
                .flat_map(|i| {
                    [
                        0.1 * i as f64,
                        if i % 2 == 0 { f64::NAN } else { 1.0 / 3.0 },
                    ]
                })
                .collect(),
            scores: (0..hits).map(|i| -(i as f64) / 7.0).collect(),
            ts_ms: 1,
        }
    }

    fn read_all(dir: &Path) -> Vec<LogRecord> {
        log_files(dir)
            .expect("list")
            .iter()
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .expect("read")
                    .lines()
                    .map(|l| serde_json::from_str::<LogRecord>(l).expect("record"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn records_round_trip_exactly_with_missing_values_as_null() {
        let dir = temp_dir("roundtrip");
        let config = FeatureLogConfig {
            enabled: true,
            dir: Some(dir.clone()),
            sample_rate: 1.0,
            ..FeatureLogConfig::default()
        };
        let log = FeatureLog::start(&config).expect("start");
        let p = pending("r1", 3);
        let (rows, scores) = (p.rows.clone(), p.scores.clone());
        log.submit(p);
        log.close();
        let records = read_all(&dir);
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.request_id, "r1");
        assert_eq!(r.hits[1].id, "h1");
        for (i, hit) in r.hits.iter().enumerate() {
            assert_eq!(hit.score.to_bits(), scores[i].to_bits());
            for (j, v) in hit.features.iter().enumerate() {
                let want = rows[i * 2 + j];
                match v {
                    Some(v) => assert_eq!(v.to_bits(), want.to_bits()),
                    None => assert!(want.is_nan()),
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_rotate_and_the_directory_stays_bounded() {
        let dir = temp_dir("rotate");
        let config = FeatureLogConfig {
            enabled: true,
            dir: Some(dir.clone()),
            sample_rate: 1.0,
            max_file_bytes: 4096,
            max_total_bytes: 3 * 4096,
            queue_capacity: 1024,
        };
        let log = FeatureLog::start(&config).expect("start");
        for i in 0..200 {
            log.submit(pending(&format!("r{i}"), 10));
        }
        log.close();
        let files = log_files(&dir).expect("list");
        assert!(files.len() >= 2, "rotated into several files");
        let total: u64 = files
            .iter()
            .map(|p| std::fs::metadata(p).expect("meta").len())
            .sum();
        assert!(total <= 3 * 4096, "{total} bytes on disk");
        for p in &files {
            assert!(std::fs::metadata(p).expect("meta").len() <= 4096);
        }
        // The newest records survive, the oldest were deleted.
        let records = read_all(&dir);
        assert_eq!(records.last().expect("some").request_id, "r199");
        assert!(records.len() < 200);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_queue_drops_instead_of_blocking() {
        // A writer that never reads: the queue of 2 fills, further records are dropped at once.
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let log = FeatureLog {
            sample_rate: 1.0,
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(None),
            started_ms: 0,
            next_id: AtomicU64::new(0),
            dropped_full: metrics::counter!(names::FEATURE_LOG_DROPPED, "reason" => "queue_full"),
        };
        let queued: Vec<bool> = (0..5)
            .map(|i| log.submit(pending(&format!("r{i}"), 3)))
            .collect();
        assert_eq!(queued, vec![true, true, false, false, false]);
        assert_eq!(rx.try_recv().expect("first").request_id, "r0");
        assert!(
            log.submit(pending("r5", 3)),
            "room again after the writer took one"
        );
        log.close();
        assert!(!log.submit(pending("r6", 3)), "closed: dropped");
        assert_eq!(log.make_request_id(), "sc-0-0");
        assert_eq!(log.make_request_id(), "sc-0-1");
    }

    #[test]
    fn the_sample_rate_is_honoured() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let n = 100_000;
        for rate in [0.01, 0.1, 0.5] {
            let k = (0..n).filter(|_| sample(rate, &mut rng)).count() as f64;
            let sd = (n as f64 * rate * (1.0 - rate)).sqrt();
            assert!(
                (k - n as f64 * rate).abs() < 5.0 * sd,
                "rate {rate}: {k} of {n}"
            );
        }
        assert_eq!((0..1000).filter(|_| sample(0.0, &mut rng)).count(), 0);
        assert_eq!((0..1000).filter(|_| sample(1.0, &mut rng)).count(), 1000);
    }
}

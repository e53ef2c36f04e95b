//! Shadow scoring: shadow versions score the hits of a served request on dedicated threads,
//! after the response is computed, through a bounded queue that drops (and counts) work when
//! full, so the live path never waits. Comparison metrics (Kendall tau-b, top-k overlap, score
//! distributions) and an optional sampled JSON Lines log of both rankings.

use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rescore_api::RescoreRequest;
use rescore_features::RequestItems;
use rescore_monitor as mon;
use serde::Deserialize;

use crate::registry::LoadedVersion;

/// `[serving.shadow]` in the config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShadowConfig {
    /// Requests waiting for shadow scoring; beyond it, shadow work is dropped and counted.
    pub queue_capacity: usize,
    /// Threads scoring shadows (outside the live scoring slots).
    pub workers: usize,
    /// k of the top-k overlap metric.
    pub top_k: usize,
    /// JSON Lines log of served and shadow rankings (off when absent).
    pub log_path: Option<PathBuf>,
    /// Share of shadowed requests written to the log.
    pub log_sample_rate: f64,
    /// The log is rotated to `<log_path>.1` beyond this size (at most twice this on disk).
    pub log_max_bytes: u64,
}

impl Default for ShadowConfig {
    fn default() -> Self {
        ShadowConfig {
            queue_capacity: 64,
            workers: 1,
            top_k: 10,
            log_path: None,
            log_sample_rate: 0.01,
            log_max_bytes: 64 * 1024 * 1024,
        }
    }
}

impl ShadowConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.queue_capacity == 0 || self.queue_capacity > 1_000_000 {
            return Err("serving.shadow.queue_capacity must be in 1..=1000000".into());
        }
        if self.workers == 0 || self.workers > 64 {
            return Err("serving.shadow.workers must be in 1..=64".into());
        }
        if self.top_k == 0 {
            return Err("serving.shadow.top_k must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.log_sample_rate) {
            return Err("serving.shadow.log_sample_rate must be in [0, 1]".into());
        }
        if self.log_max_bytes < 4096 {
            return Err("serving.shadow.log_max_bytes must be at least 4096".into());
        }
        Ok(())
    }
}

/// One served request to score with its model's shadow versions.
pub struct ShadowJob {
    pub model: String,
    pub served_version: u64,
    pub variant: String,
    pub request: Arc<RescoreRequest>,
    pub served: Vec<f64>,
    pub shadows: Vec<Arc<LoadedVersion>>,
    /// The items the served version used (resolved once per request).
    pub items: Option<Arc<RequestItems>>,
}

pub struct ShadowPool {
    tx: SyncSender<ShadowJob>,
}

impl std::fmt::Debug for ShadowPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShadowPool")
    }
}

/// A shadow version gets this long per request: it never holds a worker forever.
const SHADOW_BUDGET: Duration = Duration::from_secs(10);
/// Kendall tau is quadratic: computed over the served top hits only.
const TAU_MAX_HITS: usize = 1000;

impl ShadowPool {
    pub fn start(config: &ShadowConfig) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue_capacity);
        let rx = Arc::new(Mutex::new(rx));
        let log = match &config.log_path {
            Some(path) => Some(Arc::new(Mutex::new(ShadowLog::open(
                path.clone(),
                config.log_max_bytes,
            )?))),
            None => None,
        };
        for i in 0..config.workers {
            let rx = rx.clone();
            let log = log.clone();
            let (top_k, rate) = (config.top_k, config.log_sample_rate);
            std::thread::Builder::new()
                .name(format!("shadow-{i}"))
                .spawn(move || worker(&rx, top_k, rate, log.as_deref()))?;
        }
        Ok(ShadowPool { tx })
    }

    /// Never blocks: a full queue drops the job and counts it.
    pub fn submit(&self, job: ShadowJob) {
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                metrics::counter!(mon::SHADOW_REQUESTS, "model" => job.model,
                    "result" => mon::shadow_result::DROPPED)
                .increment(job.shadows.len() as u64);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn worker(
    rx: &Mutex<Receiver<ShadowJob>>,
    top_k: usize,
    sample_rate: f64,
    log: Option<&Mutex<ShadowLog>>,
) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // The served request is over: its deadline no longer bounds the item reads.
        if let Some(items) = &job.items {
            items.lift_deadline();
        }
        for shadow in &job.shadows {
            let started = Instant::now();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                shadow.score(
                    &job.request,
                    job.items.as_deref(),
                    started + SHADOW_BUDGET,
                    None,
                )
            }));
            let scores = match result {
                Ok(Ok(scores)) => scores,
                Ok(Err(error)) => {
                    tracing::warn!(model = %job.model, version = shadow.version, %error, "shadow scoring failed");
                    metrics::counter!(mon::SHADOW_REQUESTS, "model" => job.model.clone(),
                        "result" => mon::shadow_result::ERROR)
                    .increment(1);
                    continue;
                }
                Err(_) => {
                    tracing::error!(model = %job.model, version = shadow.version, "shadow scoring panicked");
                    metrics::counter!(mon::SHADOW_REQUESTS, "model" => job.model.clone(),
                        "result" => mon::shadow_result::ERROR)
                    .increment(1);
                    continue;
                }
            };
            let version = shadow.version.to_string();
            metrics::histogram!(mon::SHADOW_DURATION, "model" => job.model.clone())
                .record(started.elapsed().as_secs_f64());
            metrics::counter!(mon::SHADOW_REQUESTS, "model" => job.model.clone(),
                "result" => mon::shadow_result::SCORED)
            .increment(1);
            let tau = kendall_tau_b(&job.served, &scores);
            if let Some(tau) = tau {
                metrics::histogram!(mon::SHADOW_KENDALL_TAU, "model" => job.model.clone(),
                    "version" => version.clone())
                .record(tau);
            }
            let overlap = top_k_overlap(&job.served, &scores, top_k);
            if let Some(overlap) = overlap {
                metrics::histogram!(mon::SHADOW_TOPK_OVERLAP, "model" => job.model.clone(),
                    "version" => version.clone())
                .record(overlap);
            }
            let served_hist = metrics::histogram!(mon::SHADOW_SCORES, "model" => job.model.clone(),
                "version" => job.served_version.to_string(), "role" => "served");
            let shadow_hist = metrics::histogram!(mon::SHADOW_SCORES, "model" => job.model.clone(),
                "version" => version, "role" => "shadow");
            for (&a, &b) in job.served.iter().zip(&scores) {
                served_hist.record(a);
                shadow_hist.record(b);
            }
            if let Some(log) = log {
                if sample_rate > 0.0 && rand::random::<f64>() < sample_rate {
                    let line = serde_json::json!({
                        "ts_unix_ms": unix_ms(),
                        "model": job.model,
                        "served_version": job.served_version.to_string(),
                        "variant": job.variant,
                        "shadow_version": shadow.version.to_string(),
                        "ids": job.request.hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
                        "served_scores": job.served,
                        "shadow_scores": scores,
                        "kendall_tau": tau,
                        "top_k_overlap": overlap,
                    });
                    let result = match log.lock() {
                        Ok(mut log) => log.write(&line),
                        Err(_) => Err(std::io::Error::other("shadow log lock poisoned")),
                    };
                    let outcome = match result {
                        Ok(()) => "written",
                        Err(error) => {
                            tracing::warn!(%error, "cannot write the shadow log");
                            "error"
                        }
                    };
                    metrics::counter!(mon::SHADOW_LOG_LINES, "result" => outcome).increment(1);
                }
            }
        }
    }
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Append-only JSON Lines with one rotated generation (`<path>.1`).
struct ShadowLog {
    path: PathBuf,
    max_bytes: u64,
    file: std::fs::File,
    size: u64,
}

impl ShadowLog {
    fn open(path: PathBuf, max_bytes: u64) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let size = file.metadata()?.len();
        Ok(ShadowLog {
            path,
            max_bytes,
            file,
            size,
        })
    }

    fn write(&mut self, value: &serde_json::Value) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(value)?;
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            let mut rotated = self.path.clone().into_os_string();
            rotated.push(".1");
            std::fs::rename(&self.path, &rotated)?;
            *self = ShadowLog::open(self.path.clone(), self.max_bytes)?;
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }
}

/// Kendall's tau-b (ties accounted for) between two score lists of the same hits, over the
/// `TAU_MAX_HITS` best-served hits; `None` when undefined (fewer than two hits, all tied).
pub fn kendall_tau_b(served: &[f64], shadow: &[f64]) -> Option<f64> {
    let n = served.len().min(shadow.len());
    let mut idx: Vec<usize> = (0..n).collect();
    if n > TAU_MAX_HITS {
        idx.sort_by(|&i, &j| served[j].total_cmp(&served[i]).then(i.cmp(&j)));
        idx.truncate(TAU_MAX_HITS);
    }
    let (mut concordant, mut discordant, mut ties_a, mut ties_b) = (0i64, 0i64, 0i64, 0i64);
    for (x, &i) in idx.iter().enumerate() {
        for &j in &idx[x + 1..] {
            let a = served[i].total_cmp(&served[j]) as i64;
            let b = shadow[i].total_cmp(&shadow[j]) as i64;
            match (a, b) {
                (0, 0) => {
                    ties_a += 1;
                    ties_b += 1;
                }
                (0, _) => ties_a += 1,
                (_, 0) => ties_b += 1,
                _ if a == b => concordant += 1,
                _ => discordant += 1,
            }
        }
    }
    let m = idx.len() as i64;
    let pairs = m * (m - 1) / 2;
    let denominator = (((pairs - ties_a) as f64) * ((pairs - ties_b) as f64)).sqrt();
    (denominator > 0.0).then(|| (concordant - discordant) as f64 / denominator)
}

/// Share of the served top-k also in the shadow's top-k (k capped at the number of hits).
pub fn top_k_overlap(served: &[f64], shadow: &[f64], k: usize) -> Option<f64> {
    let n = served.len().min(shadow.len());
    let k = k.min(n);
    if k == 0 {
        return None;
    }
    let top = |scores: &[f64]| {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]).then(i.cmp(&j)));
        idx.truncate(k);
        idx
    };
    let (a, b) = (top(served), top(shadow));
    let common = a.iter().filter(|i| b.contains(i)).count();
    Some(common as f64 / k as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kendall_tau_b_known_values() {
        assert_eq!(
            kendall_tau_b(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]),
            Some(1.0)
        );
        assert_eq!(
            kendall_tau_b(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]),
            Some(-1.0)
        );
        // One swapped pair out of three: (2 - 1) / 3.
        let tau = kendall_tau_b(&[1.0, 2.0, 3.0], &[2.0, 1.0, 3.0]).expect("defined");
        assert!((tau - 1.0 / 3.0).abs() < 1e-12);
        // Ties: a = [1,1,2], b = [1,2,3]: C = 2, D = 0, ties_a = 1 → 2 / sqrt(2 * 3).
        let tau = kendall_tau_b(&[1.0, 1.0, 2.0], &[1.0, 2.0, 3.0]).expect("defined");
        assert!((tau - 2.0 / 6f64.sqrt()).abs() < 1e-12);
        assert_eq!(kendall_tau_b(&[1.0], &[1.0]), None);
        assert_eq!(kendall_tau_b(&[1.0, 1.0], &[1.0, 2.0]), None);
    }

    #[test]
    fn top_k_overlap_counts_common_hits() {
        let served = [5.0, 4.0, 3.0, 2.0, 1.0];
        assert_eq!(top_k_overlap(&served, &served, 2), Some(1.0));
        assert_eq!(
            top_k_overlap(&served, &[1.0, 2.0, 3.0, 4.0, 5.0], 2),
            Some(0.0)
        );
        assert_eq!(
            top_k_overlap(&served, &[5.0, 1.0, 4.0, 0.0, 0.0], 2),
            Some(0.5)
        );
        assert_eq!(top_k_overlap(&served, &served, 10), Some(1.0));
        assert_eq!(top_k_overlap(&[], &[], 10), None);
    }

    #[test]
    fn the_log_rotates_and_stays_bounded() {
        let dir = std::env::temp_dir().join(format!("shadow-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("shadow.jsonl");
        let mut log = ShadowLog::open(path.clone(), 4096).expect("opens");
        let line = serde_json::json!({"pad": "x".repeat(1000)});
        for _ in 0..20 {
            log.write(&line).expect("writes");
        }
        let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let rotated = dir.join("shadow.jsonl.1");
        assert!(size(&path) <= 4096 && size(&rotated) <= 4096);
        assert!(size(&rotated) > 0);
        for p in [&path, &rotated] {
            let text = std::fs::read_to_string(p).expect("readable");
            for l in text.lines() {
                serde_json::from_str::<serde_json::Value>(l).expect("whole JSON lines");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

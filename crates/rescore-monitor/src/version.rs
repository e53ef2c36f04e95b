//! The process-wide [`Monitor`] and the per-model-version [`VersionMonitor`] that the serving
//! layer keeps next to each loaded version and calls once per scored request.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use rescore_api::RescoreRequest;
use serde::Serialize;

use crate::config::MonitorConfig;
use crate::drift::{DriftReport, DriftSketch};
use crate::feature_log::{unix_ms, FeatureLog, PendingRecord};
use crate::names;
use crate::reference::{Reference, REFERENCE_FILE};

/// Monitoring shared by every model version: configuration, the feature log writer, and the
/// versions being watched (for `/v1/drift` and the drift gauges).
#[derive(Debug)]
pub struct Monitor {
    config: MonitorConfig,
    feature_log: Option<Arc<FeatureLog>>,
    versions: Mutex<Vec<Weak<VersionMonitor>>>,
    /// Each model's live version, as the serving layer's routing has it after every (re)load.
    live: Mutex<BTreeMap<String, u64>>,
}

impl Monitor {
    /// Starts the feature log writer when it is enabled.
    pub fn new(config: MonitorConfig) -> std::io::Result<Arc<Self>> {
        let feature_log = if config.feature_log.enabled {
            Some(Arc::new(FeatureLog::start(&config.feature_log)?))
        } else {
            None
        };
        Ok(Arc::new(Monitor {
            config,
            feature_log,
            versions: Mutex::new(Vec::new()),
            live: Mutex::new(BTreeMap::new()),
        }))
    }

    /// No drift, no feature log (reference files are still checked at load).
    pub fn disabled() -> Arc<Self> {
        let mut config = MonitorConfig::default();
        config.drift.enabled = false;
        Arc::new(Monitor {
            config,
            feature_log: None,
            versions: Mutex::new(Vec::new()),
            live: Mutex::new(BTreeMap::new()),
        })
    }

    /// The live version of each model (called by the serving layer after every load, reload
    /// and routing change): the drift gauges follow it, so a rollback moves them back to the
    /// version that serves.
    pub fn set_live(&self, live: BTreeMap<String, u64>) {
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = live;
    }

    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// Sets up monitoring for a model version being loaded from `dir`: reads and checks its
    /// `reference.json` if there is one (an invalid one fails the load, like an invalid
    /// manifest). None when there is nothing to do for this version.
    ///
    /// `per_request`: per feature, whether the version's manifest makes it the same for every
    /// hit of a request (`FeatureSpec::per_request`). A reference that counts a feature once
    /// per request which is not is refused (serving could not count it that way); one that
    /// counts a query-level feature per row (made without query groups) is kept, and that
    /// feature is counted per row at serving too, so that both sides count alike.
    pub fn attach(
        &self,
        model: &str,
        version: u64,
        dir: &Path,
        feature_names: &[String],
        per_request: &[bool],
    ) -> Result<Option<Arc<VersionMonitor>>, String> {
        let path = dir.join(REFERENCE_FILE);
        let reference = if path.exists() {
            Some(Reference::load(&path, feature_names).map_err(|e| e.to_string())?)
        } else {
            None
        };
        if let Some(reference) = &reference {
            for (f, &query_level) in reference.features.iter().zip(per_request) {
                if f.per_request && !query_level {
                    return Err(format!(
                        "{}: feature `{}` is counted once per request (per_request), but the manifest gives it a per-hit source; rebuild the reference with this manifest",
                        path.display(),
                        f.name
                    ));
                }
                if query_level && !f.per_request {
                    tracing::warn!(model, version, feature = %f.name,
                        "reference.json counts this query-level feature per row (made without query groups): drift counts it per row too; rebuild it with groups to count it once per request");
                }
            }
        }
        let reference_rows = reference.as_ref().map(|r| r.rows);
        let drift = reference
            .filter(|_| self.config.drift.enabled)
            .map(|r| DriftSketch::new(r, &self.config.drift));
        if drift.is_none() && self.feature_log.is_none() {
            return Ok(None);
        }
        let gauges = drift
            .as_ref()
            .map(|d| Gauges::register(model, d.reference()));
        let vm = Arc::new(VersionMonitor {
            model: model.to_string(),
            version: version.to_string(),
            feature_names: feature_names.to_vec().into(),
            reference_rows,
            drift,
            gauges,
            feature_log: self.feature_log.clone(),
        });
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        versions.retain(|w| w.strong_count() > 0);
        versions.push(Arc::downgrade(&vm));
        Ok(Some(vm))
    }

    fn live(&self) -> Vec<Arc<VersionMonitor>> {
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        versions.retain(|w| w.strong_count() > 0);
        versions.iter().filter_map(Weak::upgrade).collect()
    }

    /// Current drift of every monitored version (computed now), and the drift gauges updated.
    pub fn report(&self) -> DriftResponse {
        let mut models = Vec::new();
        let mut live = self.live();
        live.sort_by(|a, b| (&a.model, a.version_number()).cmp(&(&b.model, b.version_number())));
        let mut monitored = Vec::new();
        for vm in &live {
            let drift = vm.drift.as_ref().map(DriftSketch::report);
            monitored.push((vm.model.as_str(), vm.version_number(), drift.is_some()));
            models.push(ModelDrift {
                model: vm.model.clone(),
                version: vm.version.clone(),
                reference_rows: vm.reference_rows,
                drift,
            });
        }
        // Gauges carry no version label: per model, the live version sets them.
        let serving = self.live.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (model, choice) in published(&serving, &monitored) {
            match choice {
                Some(i) => {
                    if let (Some(gauges), Some(drift)) = (&live[i].gauges, &models[i].drift) {
                        gauges.set(drift);
                    }
                }
                // the live version is not monitored: no other version's figures under its name
                None => {
                    if let Some(gauges) = live
                        .iter()
                        .find(|v| v.model == model)
                        .and_then(|v| v.gauges.as_ref())
                    {
                        gauges.clear();
                    }
                }
            }
        }
        let d = &self.config.drift;
        DriftResponse {
            enabled: d.enabled,
            window_secs: d.window_secs,
            row_sample_rate: d.row_sample_rate,
            min_rows: d.min_rows,
            feature_psi_threshold: d.feature_psi_threshold,
            score_psi_threshold: d.score_psi_threshold,
            models,
        }
    }

    /// Recomputes the drift gauges every `monitoring.drift.refresh_secs` on a thread of its
    /// own, until the monitor is dropped.
    pub fn start_refresher(self: &Arc<Self>) -> std::io::Result<()> {
        if !self.config.drift.enabled {
            return Ok(());
        }
        let weak = Arc::downgrade(self);
        let every = std::time::Duration::from_secs(self.config.drift.refresh_secs);
        std::thread::Builder::new()
            .name("drift-refresh".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                match weak.upgrade() {
                    Some(monitor) => {
                        monitor.report();
                    }
                    None => return,
                }
            })?;
        Ok(())
    }

    /// Flushes and closes the feature log (at shutdown).
    pub fn close(&self) {
        if let Some(log) = &self.feature_log {
            log.close();
        }
    }
}

/// What one model version needs per scored request.
#[derive(Debug)]
pub struct VersionMonitor {
    model: String,
    version: String,
    feature_names: Arc<[String]>,
    reference_rows: Option<u64>,
    drift: Option<DriftSketch>,
    gauges: Option<Gauges>,
    feature_log: Option<Arc<FeatureLog>>,
}

impl VersionMonitor {
    fn version_number(&self) -> u64 {
        self.version.parse().unwrap_or(0)
    }

    pub fn has_drift(&self) -> bool {
        self.drift.is_some()
    }

    /// Called once per scored request with the exact feature matrix (row-major, model order,
    /// NaN = missing) and the scores: feeds the drift sketches with a sample of the rows and,
    /// if the request is in the feature log's sample, queues it for the log writer.
    pub fn observe(&self, request: &RescoreRequest, variant: &str, rows: &[f64], scores: &[f64]) {
        let width = self.feature_names.len();
        self.observe_with(request, variant, scores, |hits| {
            if hits.len() == scores.len() {
                return rows.to_vec();
            }
            hits.iter()
                .flat_map(|&h| &rows[h * width..(h + 1) * width])
                .copied()
                .collect()
        });
    }

    /// Like [`Self::observe`] for a request scored without a feature matrix (from cached
    /// item bins): `rows_of(hits)` must return the exact rows of those hits (indices into
    /// the request's hits, increasing), row-major. It is called at most once, for the hits
    /// the drift sample and the feature log read: usually a few, every hit only when the
    /// feature log samples the request; not at all when nothing is sampled.
    pub fn observe_with(
        &self,
        request: &RescoreRequest,
        variant: &str,
        scores: &[f64],
        rows_of: impl FnOnce(&[usize]) -> Vec<f64>,
    ) {
        let hits = scores.len();
        let width = self.feature_names.len();
        let drift_sample: Vec<usize> = match &self.drift {
            Some(drift) => drift.sample(hits).collect(),
            None => Vec::new(),
        };
        // Per-request (query-level) features are counted for every request, from one row:
        // the first sampled one, or the first hit's when no row was sampled.
        let request_hit = match &self.drift {
            Some(drift) if drift.counts_requests() && hits > 0 => {
                Some(drift_sample.first().copied().unwrap_or(0))
            }
            _ => None,
        };
        let logged = self.feature_log.as_ref().filter(|log| log.sampled());
        let wanted: Vec<usize> = match logged {
            Some(_) => (0..hits).collect(),
            None if drift_sample.is_empty() => request_hit.into_iter().collect(),
            None => drift_sample.clone(),
        };
        if wanted.is_empty() {
            return;
        }
        let rows = rows_of(&wanted);
        if rows.len() != wanted.len() * width {
            return;
        }
        if let Some(drift) = &self.drift {
            let sample_scores: Vec<f64> = drift_sample.iter().map(|&h| scores[h]).collect();
            if logged.is_some() {
                // Every row was assembled: a hit's row is at its index.
                let row = |h: usize| &rows[h * width..(h + 1) * width];
                let sample_rows: Vec<f64> =
                    drift_sample.iter().flat_map(|&h| row(h)).copied().collect();
                drift.observe_sampled(&sample_rows, &sample_scores, request_hit.map(row));
            } else {
                // `wanted` is the sample, or the request's row alone when the sample is empty.
                let request_row = request_hit.map(|_| &rows[..width]);
                let sample_rows = if drift_sample.is_empty() {
                    &[][..]
                } else {
                    &rows[..]
                };
                drift.observe_sampled(sample_rows, &sample_scores, request_row);
            }
        }
        if let Some(log) = logged {
            let request_id = request
                .request_id
                .clone()
                .unwrap_or_else(|| log.make_request_id());
            log.submit(PendingRecord {
                request_id,
                model: self.model.clone(),
                version: self.version.clone(),
                variant: variant.to_string(),
                feature_names: self.feature_names.clone(),
                hit_ids: request.hits.iter().map(|h| h.id.clone()).collect(),
                rows,
                scores: scores.to_vec(),
                ts_ms: unix_ms(),
            });
        }
    }
}

/// Gauge handles of one model's drift and outlier series.
#[derive(Debug)]
struct Gauges {
    psi: Vec<metrics::Gauge>,
    ks: Vec<Option<metrics::Gauge>>,
    missing: Vec<metrics::Gauge>,
    outlier: Vec<metrics::Gauge>,
    /// The report of an empty window: what a version without traffic shows.
    empty: DriftReport,
    score_psi: metrics::Gauge,
    score_ks: metrics::Gauge,
    window_rows: metrics::Gauge,
    over: metrics::Gauge,
    score_over: metrics::Gauge,
    out_of_range: metrics::Gauge,
    unseen: metrics::Gauge,
    missing_all: metrics::Gauge,
}

impl Gauges {
    /// Registers the series (NaN until the window has enough rows).
    fn register(model: &str, reference: &Reference) -> Self {
        let m = model.to_string();
        let per_feature = |name: &'static str| -> Vec<metrics::Gauge> {
            reference
                .features
                .iter()
                .map(|f| metrics::gauge!(name, "model" => m.clone(), "feature" => f.name.clone()))
                .collect()
        };
        let g = Gauges {
            empty: DriftSketch::new(reference.clone(), &crate::DriftConfig::default()).report_at(0),
            psi: per_feature(names::FEATURE_DRIFT_PSI),
            ks: reference
                .features
                .iter()
                .map(|f| {
                    (!f.distribution.is_categorical()).then(|| {
                        metrics::gauge!(names::FEATURE_DRIFT_KS, "model" => m.clone(), "feature" => f.name.clone())
                    })
                })
                .collect(),
            missing: per_feature(names::FEATURE_MISSING_RATIO),
            outlier: reference
                .features
                .iter()
                .map(|f| {
                    let name = if f.distribution.is_categorical() {
                        names::FEATURE_UNSEEN_CATEGORY_RATIO
                    } else {
                        names::FEATURE_OUT_OF_RANGE_RATIO
                    };
                    metrics::gauge!(name, "model" => m.clone(), "feature" => f.name.clone())
                })
                .collect(),
            score_psi: metrics::gauge!(names::SCORE_DRIFT_PSI, "model" => m.clone()),
            score_ks: metrics::gauge!(names::SCORE_DRIFT_KS, "model" => m.clone()),
            window_rows: metrics::gauge!(names::DRIFT_WINDOW_ROWS, "model" => m.clone()),
            over: metrics::gauge!(names::DRIFT_FEATURES_OVER_THRESHOLD, "model" => m.clone()),
            score_over: metrics::gauge!(names::SCORE_DRIFT_OVER_THRESHOLD, "model" => m.clone()),
            out_of_range: metrics::gauge!(names::OUTLIER_RATIO, "model" => m.clone(), "kind" => "out_of_range"),
            unseen: metrics::gauge!(names::OUTLIER_RATIO, "model" => m.clone(), "kind" => "unseen_category"),
            missing_all: metrics::gauge!(names::OUTLIER_RATIO, "model" => m, "kind" => "missing"),
        };
        g.set(&g.empty);
        g
    }

    /// Every series NaN (the window empty).
    fn clear(&self) {
        self.set(&self.empty);
    }

    fn set(&self, r: &DriftReport) {
        let v = |x: Option<f64>| x.unwrap_or(f64::NAN);
        for (i, f) in r.features.iter().enumerate() {
            self.psi[i].set(v(f.drift.psi));
            if let Some(ks) = &self.ks[i] {
                ks.set(v(f.drift.ks));
            }
            self.missing[i].set(v(f.drift.missing_ratio));
            self.outlier[i].set(v(f.drift.outlier_ratio));
        }
        self.score_psi.set(v(r.score.psi));
        self.score_ks.set(v(r.score.ks));
        self.window_rows.set(r.window_rows as f64);
        self.over.set(r.features_over_threshold as f64);
        self.score_over
            .set(if r.score_over_threshold { 1.0 } else { 0.0 });
        self.out_of_range.set(v(r.out_of_range_ratio));
        self.unseen.set(v(r.unseen_category_ratio));
        self.missing_all.set(v(r.missing_ratio));
    }
}

/// Which monitored version sets each model's drift gauges: the live version (`serving`) when it
/// has a drift sketch, none when the live version has none; without a live version known (not
/// loaded by the serving layer yet), the highest monitored one. `monitored`: (model, version,
/// has a drift sketch), in any order; the result indexes into it.
fn published<'a>(
    serving: &BTreeMap<String, u64>,
    monitored: &[(&'a str, u64, bool)],
) -> BTreeMap<&'a str, Option<usize>> {
    let mut out: BTreeMap<&str, Option<usize>> = BTreeMap::new();
    for (i, &(model, version, has_drift)) in monitored.iter().enumerate() {
        let current = out.entry(model).or_insert(None);
        let better = match serving.get(model) {
            Some(&live) => has_drift && version == live,
            None => has_drift && current.is_none_or(|c| monitored[c].1 < version),
        };
        if better {
            *current = Some(i);
        }
    }
    out
}

/// `GET /v1/drift`.
#[derive(Debug, Clone, Serialize)]
pub struct DriftResponse {
    pub enabled: bool,
    pub window_secs: u64,
    pub row_sample_rate: f64,
    pub min_rows: u64,
    pub feature_psi_threshold: f64,
    pub score_psi_threshold: f64,
    pub models: Vec<ModelDrift>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelDrift {
    pub model: String,
    pub version: String,
    /// Rows behind the version's `reference.json`; null without one.
    pub reference_rows: Option<u64>,
    /// Null without a reference, or with drift monitoring disabled.
    pub drift: Option<DriftReport>,
}

#[cfg(test)]
mod published_tests {
    use super::*;

    #[test]
    fn the_live_version_sets_the_gauges() {
        let monitored = [("m", 1, true), ("m", 2, true), ("other", 4, true)];
        let none = BTreeMap::new();
        let highest = published(&none, &monitored);
        assert_eq!(
            highest[&"m"],
            Some(1),
            "nothing known to be live: the highest"
        );
        assert_eq!(highest[&"other"], Some(2));
        let rolled_back = BTreeMap::from([("m".to_string(), 1)]);
        let p = published(&rolled_back, &monitored);
        assert_eq!(p[&"m"], Some(0), "after a rollback to version 1");
        assert_eq!(
            p[&"other"],
            Some(2),
            "a model the map does not name: the highest"
        );
        let unmonitored = BTreeMap::from([("m".to_string(), 3)]);
        assert_eq!(published(&unmonitored, &monitored)[&"m"], None);
        let no_sketch = [("m", 1, false), ("m", 2, true)];
        let live_one = BTreeMap::from([("m".to_string(), 1)]);
        assert_eq!(
            published(&live_one, &no_sketch)[&"m"],
            None,
            "live without a drift sketch"
        );
    }
}

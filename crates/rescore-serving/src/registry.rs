//! Models under `--models DIR`: `DIR/<name>/<version>/model.txt` (+ optional `manifest.toml`).
//! Discovery (cheap, before the server binds) finds names and versions; loading (slow, on the
//! blocking pool) makes the highest version that loads the live one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rescore_api::{
    ExperimentStatus, ModelStatus, ModelsResponse, RuleStatus, VariantStatus, VersionStatus,
};
use rescore_features::{FeatureDecl, FeatureSpec};
use rescore_model::{EnginePreference, Model};
use rescore_monitor as mon;
use serde::Deserialize;

use crate::routing::{Experiment, RoutingFile, Rule};

pub const MODEL_FILE: &str = "model.txt";
pub const MANIFEST_FILE: &str = "manifest.toml";

/// What `--models` holds, by name, versions ascending.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discovery {
    pub models: BTreeMap<String, Vec<(u64, PathBuf)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("cannot read models directory {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl Discovery {
    /// Lists model versions. Entries may be symbolic links; files and directories that are not
    /// `<name>/<positive integer>/` are skipped with a warning.
    pub fn scan(dir: &Path) -> Result<Self, DiscoveryError> {
        let io = |source| DiscoveryError::Io {
            path: dir.display().to_string(),
            source,
        };
        let mut models = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let path = entry.path();
            let file_name = entry.file_name();
            // The routing file and hidden entries (uploads in progress) are not models.
            if file_name == crate::DEFAULT_ROUTING_FILE
                || file_name.to_str().is_some_and(|n| n.starts_with('.'))
            {
                continue;
            }
            // `metadata` follows symbolic links, `entry.file_type` would not.
            if !std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                tracing::warn!(path = %path.display(), "skipping: not a model directory");
                continue;
            }
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                tracing::warn!(path = %path.display(), "skipping model directory with a non-UTF-8 name");
                continue;
            };
            let mut versions = Vec::new();
            for v in std::fs::read_dir(&path).map_err(io)? {
                let v = v.map_err(io)?;
                if v.file_name().to_str().is_some_and(|n| n.starts_with('.')) {
                    continue;
                }
                let vpath = v.path();
                if !std::fs::metadata(&vpath).is_ok_and(|m| m.is_dir()) {
                    continue;
                }
                match vpath
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    Some(version) if version > 0 => versions.push((version, vpath)),
                    _ => tracing::warn!(path = %vpath.display(),
                        "skipping: a version directory is named by a positive integer"),
                }
            }
            if versions.is_empty() {
                tracing::warn!(model = %name, "skipping model directory without versions");
                continue;
            }
            versions.sort();
            models.insert(name, versions);
        }
        Ok(Discovery { models })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }
}

/// `manifest.toml` beside a model version.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub description: Option<String>,
    /// Free-form metadata (owner, training data, metrics...): kept, not interpreted.
    #[serde(default)]
    pub metadata: toml::Table,
    #[serde(default)]
    pub features: BTreeMap<String, FeatureDecl>,
    /// How item suspicion is computed off the request path (`rescore-sidecar items suspicion`).
    #[serde(default)]
    pub suspicion: Option<rescore_features::suspicion::SuspicionConfig>,
    /// The gamed-listing guard after scoring (ADR 0011).
    #[serde(default)]
    pub guard: Option<crate::guard::GuardConfig>,
}

impl Manifest {
    /// Reads and checks a manifest file (absent: the defaults).
    pub fn read(path: &Path) -> Result<Manifest, String> {
        let manifest = match std::fs::read_to_string(path) {
            Ok(text) => {
                toml::from_str::<Manifest>(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let check = || -> Result<(), String> {
            rescore_features::seller_controlled_keys(&manifest.features)
                .map_err(|e| e.to_string())?;
            if let Some(s) = &manifest.suspicion {
                s.validate()?;
            }
            if let Some(g) = &manifest.guard {
                g.validate()?;
            }
            Ok(())
        };
        check().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(manifest)
    }
}

/// Identity of a version's files: resolved paths (symbolic links followed), sizes and
/// modification times of `model.txt` and `manifest.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Vec<(PathBuf, Option<(u64, std::time::SystemTime)>)>);

impl Fingerprint {
    pub fn of(dir: &Path) -> Self {
        Fingerprint(
            [MODEL_FILE, MANIFEST_FILE, rescore_monitor::REFERENCE_FILE]
                .iter()
                .map(|file| {
                    let path = dir.join(file);
                    let resolved = std::fs::canonicalize(&path).unwrap_or(path);
                    let meta = std::fs::metadata(&resolved)
                        .ok()
                        .and_then(|m| Some((m.len(), m.modified().ok()?)));
                    (resolved, meta)
                })
                .collect(),
        )
    }
}

/// A model version ready to score.
pub struct LoadedVersion {
    pub name: String,
    pub version: u64,
    pub model: Model,
    pub spec: FeatureSpec,
    pub description: Option<String>,
    /// The files it was loaded from, to tell an unchanged version (reused by a reload) from
    /// a rewritten one (loaded again).
    pub fingerprint: Fingerprint,
    pub(crate) missing_counters: Vec<metrics::Counter>,
    pub(crate) scoring_duration: metrics::Histogram,
    /// Drift sketches and feature logging of this version (rescore-monitor), if any.
    pub monitor: Option<Arc<rescore_monitor::VersionMonitor>>,
    /// The native evaluator's bin columns, for scoring from cached item bins.
    pub(crate) bin_layout: Option<crate::binned::BinLayout>,
    /// The manifest's `[guard]`, with its counters (none: the guard never runs).
    pub guard: Option<crate::guard::VersionGuard>,
}

impl std::fmt::Debug for LoadedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({:?})", self.name, self.version, self.model)
    }
}

impl LoadedVersion {
    pub fn load(
        name: &str,
        version: u64,
        dir: &Path,
        engine: EnginePreference,
    ) -> Result<Self, String> {
        let fingerprint = Fingerprint::of(dir);
        let model = Model::load(&dir.join(MODEL_FILE), engine).map_err(|e| e.to_string())?;
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest = Manifest::read(&manifest_path)?;
        // The model's own category lists (pandas_categorical), for string categories.
        let model_path = dir.join(MODEL_FILE);
        let model_text = std::fs::read_to_string(&model_path)
            .map_err(|e| format!("{}: {e}", model_path.display()))?;
        let categories = crate::pandas::model_categories(&model_text, model.feature_names())
            .map_err(|e| format!("{}: {e}", model_path.display()))?;
        drop(model_text);
        let spec = FeatureSpec::with_model_categories(
            model.feature_names(),
            &manifest.features,
            &categories,
        )
        .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
        for feature in categories.keys() {
            if manifest
                .features
                .get(feature)
                .is_none_or(|d| d.source != rescore_features::SourceKind::Categorical)
            {
                tracing::warn!(model = name, version, feature = %feature,
                    "the model maps this feature's pandas categories to their positions in its own list: numbers sent for it must be those codes; declare it `source = \"categorical\"` to send the strings");
            }
        }
        let missing_counters = model
            .feature_names()
            .iter()
            .map(|f| {
                metrics::counter!(mon::FEATURE_MISSING, "model" => name.to_string(), "feature" => f.clone())
            })
            .collect();
        let scoring_duration = metrics::histogram!(mon::SCORING_DURATION,
            "model" => name.to_string(), "engine" => model.engine_kind().as_str());
        let bin_layout = crate::binned::BinLayout::of(model.native(), &spec);
        let guard = manifest
            .guard
            .map(|config| crate::guard::VersionGuard::new(config, name, version));
        Ok(LoadedVersion {
            bin_layout,
            guard,
            name: name.to_string(),
            version,
            model,
            spec,
            description: manifest.description,
            fingerprint,
            missing_counters,
            scoring_duration,
            monitor: None,
        })
    }

    /// Assembles features and scores them: the CPU-heavy part, run on the blocking pool.
    pub fn score(
        &self,
        request: &rescore_api::RescoreRequest,
        items: Option<&rescore_features::RequestItems>,
        deadline: std::time::Instant,
        served_as: Option<&str>,
    ) -> Result<Vec<f64>, ScoreError> {
        let started = std::time::Instant::now();
        // Cached item bins when they cover the request; monitoring then rebuilds as f64 only
        // the rows it samples (below).
        let binned = match (self.model.native(), &self.bin_layout) {
            (Some(native), Some(layout)) => {
                crate::binned::assemble(native, layout, &self.spec, request, items)
                    .map(|binned| Rows::Bins(native, layout.width(), binned))
            }
            _ => None,
        };
        let rows = binned.unwrap_or_else(|| Rows::F64(self.spec.assemble(request, items)));
        // Shadow scoring (`served_as: None`) stays out of the live metrics and monitoring.
        if served_as.is_some() {
            let missing = match &rows {
                Rows::F64(assembled) => &assembled.missing,
                Rows::Bins(_, _, binned) => &binned.missing,
            };
            for (counter, missing) in self.missing_counters.iter().zip(missing) {
                if *missing > 0 {
                    counter.increment(*missing);
                }
            }
        }
        // Nobody waits for a late answer: score in blocks and stop once the budget is spent,
        // so abandoned requests free their scoring slot early.
        let hits = request.hits.len();
        let mut scores = Vec::with_capacity(hits);
        for first in (0..hits).step_by(SCORING_BLOCK_ROWS) {
            if std::time::Instant::now() >= deadline {
                return Err(ScoreError::PastDeadline);
            }
            let n = (hits - first).min(SCORING_BLOCK_ROWS);
            match &rows {
                Rows::F64(assembled) => {
                    let width = self.model.num_features();
                    let block = &assembled.rows[first * width..(first + n) * width];
                    let block_scores = self
                        .model
                        .predict(block)
                        .map_err(|e| ScoreError::Model(e.to_string()))?;
                    scores.extend(block_scores);
                }
                Rows::Bins(native, width, binned) => {
                    let block = &binned.rows[first * width..(first + n) * width];
                    scores.extend(native.predict_binned(block, n));
                }
            }
        }
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            // JSON cannot carry it, and the coordinator could not merge it.
            return Err(ScoreError::Model(format!(
                "non-finite score {} for hit {i}",
                scores[i]
            )));
        }
        let Some(variant) = served_as else {
            return Ok(scores);
        };
        self.scoring_duration
            .record(started.elapsed().as_secs_f64());
        // Monitoring sees what was served: not the scores of a request already answered late.
        if let Some(monitor) = &self.monitor {
            if std::time::Instant::now() < deadline {
                match &rows {
                    Rows::F64(assembled) => {
                        monitor.observe(request, variant, &assembled.rows, &scores)
                    }
                    Rows::Bins(..) => monitor.observe_with(request, variant, &scores, |hits| {
                        self.spec.assemble_hits(request, items, hits)
                    }),
                }
            }
        }
        Ok(scores)
    }
}

/// A request's rows: f64 features, or the native evaluator's bins (with the row width).
enum Rows<'a> {
    F64(rescore_features::Assembled),
    Bins(&'a rescore_model::NativeModel, usize, crate::binned::Binned),
}

/// Rows scored between two deadline checks.
const SCORING_BLOCK_ROWS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("budget spent before the model ran")]
    PastDeadline,
    #[error("{0}")]
    Model(String),
}

/// One model name after a (re)load.
#[derive(Debug, Default)]
pub struct ModelEntry {
    pub live: Option<Arc<LoadedVersion>>,
    /// The routing file's `live` for this model.
    pub pinned: Option<u64>,
    /// The version live before the current one: kept loaded for an instant rollback.
    pub previous_live: Option<u64>,
    pub experiment: Option<ActiveExperiment>,
    pub shadows: Vec<Arc<LoadedVersion>>,
    pub rules: Vec<Rule>,
    /// Every version held in memory (live, candidates, shadows, the warm previous live).
    pub loaded: BTreeMap<u64, Arc<LoadedVersion>>,
    /// Versions that failed, with the files they failed with: retried once those change.
    failed: BTreeMap<u64, (Fingerprint, String)>,
    pub versions: Vec<VersionStatus>,
}

#[derive(Debug)]
pub struct ActiveExperiment {
    pub decl: Experiment,
    /// Per variant: its loaded version, or `None` when it failed (its traffic goes live).
    pub arms: Vec<Option<Arc<LoadedVersion>>>,
}

/// Every configured model after a (re)load: immutable, swapped whole.
#[derive(Debug, Default)]
pub struct Registry {
    pub models: BTreeMap<String, ModelEntry>,
    pub default_model: Option<String>,
    /// Why there is no default model although several models are loaded.
    pub default_model_note: Option<String>,
    /// The routing this registry applies.
    pub routing: RoutingFile,
}

/// A registry built from discovery and routing, with what changed on the way.
#[derive(Debug)]
pub struct Build {
    pub registry: Registry,
    /// `name/version` loaded from disk by this build (unchanged versions are reused).
    pub loaded: Vec<String>,
    /// `name/version` held by the previous registry and not by this one.
    pub unloaded: Vec<String>,
    pub errors: Vec<String>,
}

impl Registry {
    /// Start-up loading without a routing file: the highest version that loads is live.
    pub fn load(discovery: &Discovery, config: &crate::ServingConfig) -> Self {
        let monitor = rescore_monitor::Monitor::disabled();
        Self::build(discovery, &RoutingFile::default(), None, config, &monitor).registry
    }

    /// Loads what `routing` needs (pinned live or the highest version that loads, experiment
    /// variants, shadows, and the previous live version kept warm), reusing every unchanged
    /// version of `previous`. Whatever fails keeps its previous state and is reported.
    pub fn build(
        discovery: &Discovery,
        routing: &RoutingFile,
        previous: Option<&Registry>,
        config: &crate::ServingConfig,
        monitor: &rescore_monitor::Monitor,
    ) -> Build {
        let mut models = BTreeMap::new();
        let mut loaded_now = Vec::new();
        let mut errors = Vec::new();
        for (name, versions) in &discovery.models {
            let decl = routing.model(name).cloned().unwrap_or_default();
            let old = previous.and_then(|p| p.models.get(name));
            let mut loader = VersionLoader {
                name,
                dirs: versions.iter().cloned().collect(),
                old,
                engine: config.engine_for(name),
                monitor,
                loaded: BTreeMap::new(),
                failed: BTreeMap::new(),
                loaded_now: &mut loaded_now,
                errors: &mut errors,
            };
            let old_live = old.and_then(|o| o.live.clone());
            let live = match decl.live {
                Some(pin) => match loader.get(pin) {
                    Some(l) => Some(l),
                    None => {
                        let kept = old_live.clone().or_else(|| loader.highest());
                        if let Some(k) = &kept {
                            loader.errors.push(format!(
                                "{name}: the pinned live version {pin} is not servable; version {} serves",
                                k.version
                            ));
                        }
                        kept
                    }
                },
                None => loader.highest(),
            };
            let previous_live = match (&old_live, &live) {
                (Some(o), Some(n)) if o.version != n.version => Some(o.version),
                _ => old.and_then(|o| o.previous_live),
            }
            .filter(|v| loader.dirs.contains_key(v));
            if let Some(p) = previous_live {
                loader.get(p);
            }
            let experiment = decl.experiment.clone().map(|decl| {
                let arms = decl
                    .variants
                    .iter()
                    .map(|v| {
                        let arm = loader.get(v.version);
                        if arm.is_none() {
                            loader.errors.push(format!(
                                "{name}: variant `{}` (version {}) is not servable; its traffic goes to the live version",
                                v.name, v.version
                            ));
                        }
                        arm
                    })
                    .collect();
                ActiveExperiment { decl, arms }
            });
            let shadows = decl
                .shadows
                .iter()
                .filter_map(|&v| loader.get(v))
                .collect::<Vec<_>>();
            let (loaded, failed) = (loader.loaded, loader.failed);
            if let (Some(o), Some(n)) = (&old_live, &live) {
                if o.version != n.version {
                    set_info(o, 0.0);
                    tracing::info!(model = %name, from = o.version, to = n.version, "live version changed");
                }
            }
            if let Some(n) = &live {
                set_info(n, 1.0);
                metrics::gauge!(mon::MODEL_LIVE_VERSION, "model" => name.clone())
                    .set(n.version as f64);
            }
            let mut entry = ModelEntry {
                live,
                pinned: decl.live,
                previous_live,
                experiment,
                shadows,
                rules: decl.rules.clone(),
                loaded,
                failed,
                versions: Vec::new(),
            };
            entry.versions = versions.iter().map(|(v, _)| entry.status_of(*v)).collect();
            models.insert(name.clone(), entry);
        }
        let mut unloaded = Vec::new();
        if let Some(previous) = previous {
            for (name, old) in &previous.models {
                let new = models.get(name);
                if new.is_none() {
                    if let Some(l) = &old.live {
                        set_info(l, 0.0);
                    }
                }
                for v in old.loaded.keys() {
                    if !new.is_some_and(|n| n.loaded.contains_key(v)) {
                        unloaded.push(format!("{name}/{v}"));
                    }
                }
            }
        }
        let default_model = routing
            .default_model
            .clone()
            .or_else(|| config.default_model.clone())
            .filter(|m| models.contains_key(m))
            .or_else(|| {
                (models.len() == 1)
                    .then(|| models.keys().next().cloned())
                    .flatten()
            });
        let default_model_note = (default_model.is_none() && models.len() > 1).then(|| {
            format!(
                "several models are loaded ({}) and neither serving.default_model nor the routing file's default_model names one of them: requests without `model` get 400 model_required",
                models.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        });
        if let (Some(note), Some(before)) = (
            &default_model_note,
            previous.and_then(|p| p.default_model.as_ref()),
        ) {
            tracing::warn!(previous_default = %before, "no default model any more: {note}");
        }
        Build {
            registry: Registry {
                models,
                default_model,
                default_model_note,
                routing: routing.clone(),
            },
            loaded: loaded_now,
            unloaded,
            errors,
        }
    }

    pub fn status(&self) -> ModelsResponse {
        ModelsResponse {
            default_model: self.default_model.clone(),
            default_model_note: self.default_model_note.clone(),
            routing: None,
            models: self
                .models
                .iter()
                .map(|(name, entry)| ModelStatus {
                    name: name.clone(),
                    live_version: entry.live.as_ref().map(|l| l.version.to_string()),
                    pinned_version: entry.pinned.map(|v| v.to_string()),
                    previous_live_version: entry.previous_live.map(|v| v.to_string()),
                    experiment: entry.experiment.as_ref().map(|e| ExperimentStatus {
                        salt: e.decl.salt.clone(),
                        key: e.decl.key.as_str().into(),
                        live_share: (1.0 - e.decl.variants.iter().map(|v| v.share).sum::<f64>())
                            .max(0.0),
                        variants: e
                            .decl
                            .variants
                            .iter()
                            .zip(&e.arms)
                            .map(|(v, arm)| VariantStatus {
                                name: v.name.clone(),
                                version: v.version.to_string(),
                                share: v.share,
                                active: arm.is_some(),
                            })
                            .collect(),
                    }),
                    shadow_versions: entry
                        .shadows
                        .iter()
                        .map(|s| s.version.to_string())
                        .collect(),
                    rules: entry
                        .rules
                        .iter()
                        .map(|r| RuleStatus {
                            when: r
                                .when
                                .iter()
                                .map(|(k, v)| (k.clone(), v.values()))
                                .collect(),
                            model: r.model.clone(),
                        })
                        .collect(),
                    versions: entry.versions.clone(),
                })
                .collect(),
        }
    }
}

fn set_info(l: &LoadedVersion, value: f64) {
    metrics::gauge!(mon::MODEL_INFO, "model" => l.name.clone(),
        "version" => l.version.to_string(), "engine" => l.model.engine_kind().as_str())
    .set(value);
}

impl ModelEntry {
    fn status_of(&self, version: u64) -> VersionStatus {
        let variant = self.experiment.as_ref().and_then(|e| {
            e.decl
                .variants
                .iter()
                .zip(&e.arms)
                .find(|(v, arm)| v.version == version && arm.is_some())
                .map(|(v, _)| v.name.clone())
        });
        let role = if self.live.as_ref().is_some_and(|l| l.version == version) {
            "live"
        } else if variant.is_some() {
            "candidate"
        } else if self.shadows.iter().any(|s| s.version == version) {
            "shadow"
        } else if self.loaded.contains_key(&version) {
            "standby"
        } else if self.failed.contains_key(&version) {
            "failed"
        } else {
            "available"
        };
        let mut status = VersionStatus {
            version: version.to_string(),
            role: role.into(),
            variant,
            engine: None,
            objective: None,
            num_features: None,
            num_trees: None,
            description: None,
            memory_bytes: None,
            engine_note: None,
            error: self.failed.get(&version).map(|(_, e)| e.clone()),
        };
        if let Some(loaded) = self.loaded.get(&version) {
            let header = loaded.model.header();
            status.engine = Some(loaded.model.engine_kind().as_str().into());
            status.objective = header.objective.clone();
            status.num_features = Some(header.num_features);
            status.num_trees = Some(header.num_trees);
            status.description = loaded.description.clone();
            status.memory_bytes = loaded.model.memory_bytes().map(|b| b as u64);
            status.engine_note = loaded.model.native_refusal().map(|r| r.to_string());
        }
        status
    }
}

/// Loads the versions of one model a build needs, each at most once.
struct VersionLoader<'a> {
    name: &'a str,
    dirs: BTreeMap<u64, PathBuf>,
    old: Option<&'a ModelEntry>,
    engine: EnginePreference,
    /// Sets up each newly loaded version's drift sketches and feature logging.
    monitor: &'a rescore_monitor::Monitor,
    loaded: BTreeMap<u64, Arc<LoadedVersion>>,
    failed: BTreeMap<u64, (Fingerprint, String)>,
    loaded_now: &'a mut Vec<String>,
    errors: &'a mut Vec<String>,
}

impl VersionLoader<'_> {
    fn get(&mut self, version: u64) -> Option<Arc<LoadedVersion>> {
        if let Some(l) = self.loaded.get(&version) {
            return Some(l.clone());
        }
        if self.failed.contains_key(&version) {
            return None;
        }
        let dir = self.dirs.get(&version)?.clone();
        let name = self.name;
        let fingerprint = Fingerprint::of(&dir);
        if let Some(old) = self.old.and_then(|o| o.loaded.get(&version)) {
            if old.fingerprint == fingerprint {
                self.loaded.insert(version, old.clone());
                return Some(old.clone());
            }
        }
        if let Some((fp, error)) = self.old.and_then(|o| o.failed.get(&version)) {
            if *fp == fingerprint {
                // Same files, same failure: reported again, not retried (nor counted) again.
                self.errors.push(format!("{name}/{version}: {error}"));
                self.failed.insert(version, (fp.clone(), error.clone()));
                return None;
            }
        }
        // A panic while loading (e.g. inside a dependency) fails this version only.
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut loaded = LoadedVersion::load(name, version, &dir, self.engine)?;
            loaded.monitor = self.monitor.attach(
                name,
                version,
                &dir,
                loaded.model.feature_names(),
                &loaded.spec.per_request(),
            )?;
            Ok(loaded)
        }))
        .unwrap_or_else(|_| Err("panicked while loading".to_string()));
        match attempt {
            Ok(loaded) => {
                if let Some(refusal) = loaded.model.native_refusal() {
                    metrics::counter!(mon::NATIVE_REFUSALS, "reason" => refusal.reason())
                        .increment(1);
                    tracing::warn!(model = %name, version, %refusal, "served by lightgbm3");
                }
                metrics::counter!(mon::MODEL_RELOADS, "result" => mon::reload_result::SUCCESS)
                    .increment(1);
                tracing::info!(model = %name, version, engine = loaded.model.engine_kind().as_str(),
                    features = loaded.model.num_features(), trees = loaded.model.header().num_trees,
                    memory_bytes = ?loaded.model.memory_bytes(), "model version loaded");
                let loaded = Arc::new(loaded);
                self.loaded_now.push(format!("{name}/{version}"));
                self.loaded.insert(version, loaded.clone());
                Some(loaded)
            }
            Err(error) => {
                metrics::counter!(mon::MODEL_RELOADS, "result" => mon::reload_result::FAILURE)
                    .increment(1);
                tracing::error!(model = %name, version, %error, "model version failed to load");
                self.errors.push(format!("{name}/{version}: {error}"));
                self.failed.insert(version, (fingerprint, error));
                None
            }
        }
    }

    /// The highest version that loads.
    fn highest(&mut self) -> Option<Arc<LoadedVersion>> {
        let versions: Vec<u64> = self.dirs.keys().rev().copied().collect();
        versions.into_iter().find_map(|v| self.get(v))
    }
}

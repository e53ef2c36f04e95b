//! Models under `--models DIR`: `DIR/<name>/<version>/model.txt` (+ optional `manifest.toml`).
//! Discovery (cheap, before the server binds) finds names and versions; loading (slow, on the
//! blocking pool) makes the highest version that loads the live one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rescore_api::{ModelStatus, ModelsResponse, VersionStatus};
use rescore_features::{FeatureDecl, FeatureSpec};
use rescore_model::{EnginePreference, Model};
use rescore_monitor as mon;
use serde::Deserialize;

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
                let vpath = v.map_err(io)?.path();
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
}

/// A model version ready to score.
pub struct LoadedVersion {
    pub name: String,
    pub version: u64,
    pub model: Model,
    pub spec: FeatureSpec,
    pub description: Option<String>,
    pub(crate) missing_counters: Vec<metrics::Counter>,
    pub(crate) scoring_duration: metrics::Histogram,
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
        let model = Model::load(&dir.join(MODEL_FILE), engine).map_err(|e| e.to_string())?;
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest = match std::fs::read_to_string(&manifest_path) {
            Ok(text) => toml::from_str::<Manifest>(&text)
                .map_err(|e| format!("{}: {e}", manifest_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
            Err(e) => return Err(format!("{}: {e}", manifest_path.display())),
        };
        let spec = FeatureSpec::new(model.feature_names(), &manifest.features)
            .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
        let missing_counters = model
            .feature_names()
            .iter()
            .map(|f| {
                metrics::counter!(mon::FEATURE_MISSING, "model" => name.to_string(), "feature" => f.clone())
            })
            .collect();
        let scoring_duration = metrics::histogram!(mon::SCORING_DURATION,
            "model" => name.to_string(), "engine" => model.engine_kind().as_str());
        Ok(LoadedVersion {
            name: name.to_string(),
            version,
            model,
            spec,
            description: manifest.description,
            missing_counters,
            scoring_duration,
        })
    }

    /// Assembles features and scores them: the CPU-heavy part, run on the blocking pool.
    pub fn score(
        &self,
        request: &rescore_api::RescoreRequest,
        items: Option<&rescore_features::RequestItems>,
        deadline: std::time::Instant,
    ) -> Result<Vec<f64>, ScoreError> {
        let started = std::time::Instant::now();
        let assembled = self.spec.assemble(request, items);
        for (counter, missing) in self.missing_counters.iter().zip(&assembled.missing) {
            if *missing > 0 {
                counter.increment(*missing);
            }
        }
        // Nobody waits for a late answer: score in blocks and stop once the budget is spent,
        // so abandoned requests free their scoring slot early.
        let width = self.model.num_features().max(1);
        let mut scores = Vec::with_capacity(request.hits.len());
        for block in assembled.rows.chunks(SCORING_BLOCK_ROWS * width) {
            if std::time::Instant::now() >= deadline {
                return Err(ScoreError::PastDeadline);
            }
            let block_scores = self
                .model
                .predict(block)
                .map_err(|e| ScoreError::Model(e.to_string()))?;
            scores.extend(block_scores);
        }
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            // JSON cannot carry it, and the coordinator could not merge it.
            return Err(ScoreError::Model(format!(
                "non-finite score {} for hit {i}",
                scores[i]
            )));
        }
        self.scoring_duration
            .record(started.elapsed().as_secs_f64());
        Ok(scores)
    }
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

/// One configured model name.
#[derive(Debug)]
pub struct ModelEntry {
    pub live: Option<Arc<LoadedVersion>>,
    pub versions: Vec<VersionStatus>,
}

/// Every configured model after loading.
#[derive(Debug, Default)]
pub struct Registry {
    pub models: BTreeMap<String, ModelEntry>,
}

impl Registry {
    /// Loads, per name, the highest version that loads; a version that fails is recorded
    /// (and counted) and the next lower one is tried, so a broken upload never takes a model
    /// down while an older version works.
    pub fn load(discovery: &Discovery, config: &crate::ServingConfig) -> Self {
        let mut models = BTreeMap::new();
        for (name, versions) in &discovery.models {
            let mut live = None;
            let mut statuses = Vec::new();
            for (version, dir) in versions.iter().rev() {
                if live.is_some() {
                    statuses.push(status_not_loaded(*version));
                    continue;
                }
                // A panic while loading (e.g. inside a dependency) fails this version only.
                let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    LoadedVersion::load(name, *version, dir, config.engine_for(name))
                }))
                .unwrap_or_else(|_| Err("panicked while loading".to_string()));
                match attempt {
                    Ok(loaded) => {
                        if let Some(refusal) = loaded.model.native_refusal() {
                            metrics::counter!(mon::NATIVE_REFUSALS, "reason" => refusal.reason())
                                .increment(1);
                            tracing::warn!(model = %name, version, %refusal, "served by lightgbm3");
                        }
                        metrics::counter!(mon::MODEL_RELOADS, "result" => mon::reload_result::SUCCESS).increment(1);
                        metrics::gauge!(mon::MODEL_INFO, "model" => name.clone(),
                            "version" => version.to_string(),
                            "engine" => loaded.model.engine_kind().as_str())
                        .set(1.0);
                        tracing::info!(model = %name, version, engine = loaded.model.engine_kind().as_str(),
                            features = loaded.model.num_features(), trees = loaded.model.header().num_trees,
                            memory_bytes = ?loaded.model.memory_bytes(), "model version loaded");
                        statuses.push(status_loaded(&loaded));
                        live = Some(Arc::new(loaded));
                    }
                    Err(error) => {
                        metrics::counter!(mon::MODEL_RELOADS, "result" => mon::reload_result::FAILURE).increment(1);
                        tracing::error!(model = %name, version, %error, "model version failed to load");
                        statuses.push(VersionStatus {
                            version: version.to_string(),
                            role: "failed".into(),
                            engine: None,
                            objective: None,
                            num_features: None,
                            num_trees: None,
                            description: None,
                            memory_bytes: None,
                            engine_note: None,
                            error: Some(error),
                        });
                    }
                }
            }
            statuses.reverse();
            models.insert(
                name.clone(),
                ModelEntry {
                    live,
                    versions: statuses,
                },
            );
        }
        Registry { models }
    }

    pub fn status(&self, default_model: Option<&str>) -> ModelsResponse {
        ModelsResponse {
            default_model: default_model.map(str::to_string),
            models: self
                .models
                .iter()
                .map(|(name, entry)| ModelStatus {
                    name: name.clone(),
                    live_version: entry.live.as_ref().map(|l| l.version.to_string()),
                    versions: entry.versions.clone(),
                })
                .collect(),
        }
    }
}

fn status_loaded(loaded: &LoadedVersion) -> VersionStatus {
    let header = loaded.model.header();
    VersionStatus {
        version: loaded.version.to_string(),
        role: "live".into(),
        engine: Some(loaded.model.engine_kind().as_str().into()),
        objective: header.objective.clone(),
        num_features: Some(header.num_features),
        num_trees: Some(header.num_trees),
        description: loaded.description.clone(),
        memory_bytes: loaded.model.memory_bytes().map(|b| b as u64),
        engine_note: loaded.model.native_refusal().map(|r| r.to_string()),
        error: None,
    }
}

fn status_not_loaded(version: u64) -> VersionStatus {
    VersionStatus {
        version: version.to_string(),
        role: "standby".into(),
        engine: None,
        objective: None,
        num_features: None,
        num_trees: None,
        description: None,
        memory_bytes: None,
        engine_note: None,
        error: None,
    }
}

//! The rescorer's lifecycle: start-up loading, hot reload of models and routing (swapped
//! atomically, never replacing a working version by a broken one), the admin API's routing
//! changes, promotion and rollback, and the `/v1/models` report.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rescore_api::{ModelsResponse, ReloadReport, RoutingStatus};
use rescore_features::CachedItems;
use rescore_monitor as mon;

use crate::rescorer::Loaded;
use crate::{shadow, AdminError, Build, Discovery, Registry, Rescorer, RoutingFile};

/// The routing file's name inside `--models` when `--routing` is not given.
pub const DEFAULT_ROUTING_FILE: &str = "routing.toml";

/// Where models and routing come from, for reloads.
#[derive(Debug, Clone, Default)]
pub struct ModelSources {
    pub models_dir: Option<PathBuf>,
    pub routing_path: Option<PathBuf>,
}

impl ModelSources {
    /// `routing` defaults to `routing.toml` inside the models directory.
    pub fn new(models_dir: Option<PathBuf>, routing: Option<PathBuf>) -> Self {
        let routing_path =
            routing.or_else(|| models_dir.as_ref().map(|d| d.join(DEFAULT_ROUTING_FILE)));
        ModelSources {
            models_dir,
            routing_path,
        }
    }
}

impl Rescorer {
    /// Installs a registry built elsewhere (tests); from now on the sidecar is ready.
    pub fn set_loaded(&self, registry: Registry, items: Option<Arc<CachedItems>>) {
        self.swap_in(Loaded { registry, items });
    }

    /// Serves `loaded` from now on; the monitor's drift gauges follow its live versions.
    fn swap_in(&self, loaded: Loaded) {
        self.monitor.set_live(
            loaded
                .registry
                .models
                .iter()
                .filter_map(|(name, entry)| Some((name.clone(), entry.live.as_ref()?.version)))
                .collect(),
        );
        self.loaded.store(Some(Arc::new(loaded)));
    }

    /// Start-up loading (blocking): every model with the routing validated by `with_sources`.
    pub fn load_initial(&self, discovery: &Discovery, items: Option<Arc<CachedItems>>) {
        let _guard = self.reload_lock.lock();
        let started = Instant::now();
        let build = Registry::build(
            discovery,
            &self.initial_routing,
            None,
            &self.config,
            &self.monitor,
        );
        let report = report(mon::reload_trigger::STARTUP, started, &build, Vec::new());
        self.set_loaded(build.registry, items);
        self.record(report);
    }

    /// `(model, version)` of every version held in memory (live, standby, candidates, shadows):
    /// `/metrics` shows the version-labelled series of these only (docs/metrics.md).
    pub fn loaded_versions(&self) -> Vec<(String, u64)> {
        match &*self.loaded.load() {
            Some(loaded) => loaded
                .registry
                .models
                .iter()
                .flat_map(|(name, entry)| entry.loaded.keys().map(|v| (name.clone(), *v)))
                .collect(),
            None => Vec::new(),
        }
    }

    pub fn models(&self) -> ModelsResponse {
        let routing = Some(RoutingStatus {
            path: self
                .sources
                .routing_path
                .as_ref()
                .map(|p| p.display().to_string()),
            present: self
                .sources
                .routing_path
                .as_ref()
                .is_some_and(|p| p.is_file()),
            last_reload: self.last_reload.load_full().map(|r| (*r).clone()),
        });
        match &*self.loaded.load() {
            Some(loaded) => ModelsResponse {
                routing,
                ..loaded.registry.status()
            },
            None => ModelsResponse {
                default_model: self.default_model.clone(),
                default_model_note: None,
                routing,
                models: self
                    .names
                    .iter()
                    .map(|name| rescore_api::ModelStatus {
                        name: name.clone(),
                        live_version: None,
                        pinned_version: None,
                        previous_live_version: None,
                        experiment: None,
                        shadow_versions: Vec::new(),
                        rules: Vec::new(),
                        versions: Vec::new(),
                    })
                    .collect(),
            },
        }
    }

    /// The routing the current registry applies (what the admin API edits).
    pub fn routing(&self) -> RoutingFile {
        match &*self.loaded.load() {
            Some(l) => l.registry.routing.clone(),
            None => self.initial_routing.clone(),
        }
    }

    /// Rescans the models directory and rereads the routing file, loads what changed off the
    /// request path, and swaps the registry atomically. A routing file that does not parse or
    /// validate changes nothing; a version that fails keeps its previous state. Blocking.
    pub fn reload(&self, trigger: &'static str) -> ReloadReport {
        let _guard = self.reload_lock.lock();
        let started = Instant::now();
        let refused = |errors: Vec<String>| {
            let report = ReloadReport {
                trigger: trigger.into(),
                result: mon::reload_result::FAILURE.into(),
                finished_unix_ms: shadow::unix_ms(),
                duration_ms: started.elapsed().as_millis() as u64,
                loaded: Vec::new(),
                unloaded: Vec::new(),
                errors,
            };
            tracing::error!(trigger, errors = ?report.errors, "reload refused; the previous state keeps serving");
            self.record(report.clone());
            report
        };
        let Some(current) = self.loaded.load_full() else {
            // Start-up loading reads the same files when it runs: nothing to do, nothing counted.
            return ReloadReport {
                trigger: trigger.into(),
                result: mon::reload_result::FAILURE.into(),
                finished_unix_ms: shadow::unix_ms(),
                duration_ms: 0,
                loaded: Vec::new(),
                unloaded: Vec::new(),
                errors: vec!["start-up loading has not finished".into()],
            };
        };
        let discovery = match self.discover() {
            Ok(d) => d,
            Err(e) => return refused(vec![e]),
        };
        let routing = match &self.sources.routing_path {
            Some(path) => match RoutingFile::read(path) {
                Ok(r) => r.unwrap_or_default(),
                Err(e) => return refused(vec![e]),
            },
            None => RoutingFile::default(),
        };
        if let Err(errors) = routing.validate(&discovery) {
            return refused(errors);
        }
        let build = Registry::build(
            &discovery,
            &routing,
            Some(&current.registry),
            &self.config,
            &self.monitor,
        );
        let report = report(trigger, started, &build, Vec::new());
        self.swap_in(Loaded {
            registry: build.registry,
            items: current.items.clone(),
        });
        tracing::info!(trigger, result = %report.result, loaded = ?report.loaded,
            unloaded = ?report.unloaded, errors = ?report.errors, "reloaded");
        self.record(report.clone());
        report
    }

    /// Applies a new routing (admin API): validated, loaded, and only if every version it
    /// names serves, written to the routing file and swapped in. Otherwise nothing changes.
    pub fn apply_routing(&self, routing: RoutingFile) -> Result<ReloadReport, AdminError> {
        let _guard = self.reload_lock.lock();
        let started = Instant::now();
        let trigger = mon::reload_trigger::ADMIN;
        let Some(path) = self.sources.routing_path.clone() else {
            return Err(AdminError::Invalid(
                "no routing file: start the sidecar with --models (or --routing) to change routing"
                    .into(),
            ));
        };
        let current = self
            .loaded
            .load_full()
            .ok_or_else(|| AdminError::Invalid("start-up loading has not finished".into()))?;
        let discovery = self.discover().map_err(AdminError::Invalid)?;
        routing
            .validate(&discovery)
            .map_err(|errors| AdminError::Invalid(errors.join("; ")))?;
        let build = Registry::build(
            &discovery,
            &routing,
            Some(&current.registry),
            &self.config,
            &self.monitor,
        );
        let unmet = unmet_routing(&routing, &build.registry);
        if !unmet.is_empty() {
            let report = report(trigger, started, &build, unmet);
            self.record(report.clone());
            tracing::error!(errors = ?report.errors, "routing change refused; nothing changed");
            return Err(AdminError::NotApplied(Box::new(report)));
        }
        routing.write(&path).map_err(AdminError::Invalid)?;
        let report = report(trigger, started, &build, Vec::new());
        self.swap_in(Loaded {
            registry: build.registry,
            items: current.items.clone(),
        });
        tracing::info!(path = %path.display(), loaded = ?report.loaded, "routing changed by the admin API");
        self.record(report.clone());
        Ok(report)
    }

    /// Pins `model`'s live version (promotion or rollback to a named version).
    pub fn pin_live(&self, model: &str, version: u64) -> Result<ReloadReport, AdminError> {
        let mut routing = self.routing();
        self.check_model(model)?;
        routing.models.entry(model.to_string()).or_default().live = Some(version);
        self.apply_routing(routing)
    }

    /// Pins `model`'s live version back to the one live before the current one.
    pub fn rollback(&self, model: &str) -> Result<ReloadReport, AdminError> {
        let previous = self.check_model(model)?.ok_or_else(|| {
            AdminError::Invalid(format!(
                "no previous live version is known for `{model}`: pin one with POST /admin/v1/models/{model}/live {{\"version\": N}}"
            ))
        })?;
        self.pin_live(model, previous)
    }

    /// Errors for an unknown model; otherwise its previous live version.
    fn check_model(&self, model: &str) -> Result<Option<u64>, AdminError> {
        let loaded = self.loaded.load();
        let entry = loaded
            .as_ref()
            .and_then(|l| l.registry.models.get(model))
            .ok_or_else(|| AdminError::UnknownModel(model.to_string()))?;
        Ok(entry.previous_live)
    }

    fn discover(&self) -> Result<Discovery, String> {
        match &self.sources.models_dir {
            Some(dir) => Discovery::scan(dir).map_err(|e| e.to_string()),
            None => Ok(Discovery::default()),
        }
    }

    fn record(&self, report: ReloadReport) {
        metrics::counter!(mon::RELOADS, "trigger" => trigger_label(&report.trigger),
            "result" => result_label(&report.result))
        .increment(1);
        self.last_reload.store(Some(Arc::new(report)));
    }
}

/// Versions the routing names explicitly that the build could not serve.
fn unmet_routing(routing: &RoutingFile, registry: &Registry) -> Vec<String> {
    let mut unmet = Vec::new();
    for (name, decl) in &routing.models {
        let Some(entry) = registry.models.get(name) else {
            continue;
        };
        let loaded = |v: u64| entry.loaded.contains_key(&v);
        if let Some(pin) = decl.live {
            if entry.live.as_ref().map(|l| l.version) != Some(pin) {
                unmet.push(format!("{name}: version {pin} cannot be made live"));
            }
        }
        for v in decl.shadows.iter().filter(|v| !loaded(**v)) {
            unmet.push(format!("{name}: shadow version {v} does not load"));
        }
        if let Some(exp) = &decl.experiment {
            for v in exp.variants.iter().filter(|v| !loaded(v.version)) {
                unmet.push(format!(
                    "{name}: variant `{}` (version {}) does not load",
                    v.name, v.version
                ));
            }
        }
    }
    unmet
}

fn report(trigger: &str, started: Instant, build: &Build, extra: Vec<String>) -> ReloadReport {
    let mut errors = build.errors.clone();
    errors.extend(extra);
    ReloadReport {
        trigger: trigger.into(),
        result: if errors.is_empty() {
            mon::reload_result::SUCCESS
        } else {
            mon::reload_result::FAILURE
        }
        .into(),
        finished_unix_ms: shadow::unix_ms(),
        duration_ms: started.elapsed().as_millis() as u64,
        loaded: build.loaded.clone(),
        unloaded: build.unloaded.clone(),
        errors,
    }
}

/// Metric labels from a fixed set (reports carry owned strings).
fn trigger_label(trigger: &str) -> &'static str {
    mon::reload_trigger::ALL
        .into_iter()
        .find(|t| *t == trigger)
        .unwrap_or(mon::reload_trigger::ADMIN)
}

fn result_label(result: &str) -> &'static str {
    if result == mon::reload_result::SUCCESS {
        mon::reload_result::SUCCESS
    } else {
        mon::reload_result::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServingConfig;

    fn golden(models: &[&str]) -> Discovery {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/golden/models");
        let mut discovery = Discovery::scan(&dir).expect("golden fixtures");
        discovery
            .models
            .retain(|name, _| models.contains(&name.as_str()));
        discovery
    }

    /// One model is the default by itself; a second one appearing without a configured
    /// default leaves none, and `/v1/models` says why; a configured default stays.
    #[test]
    fn a_second_model_without_a_configured_default_is_reported() {
        let monitor = mon::Monitor::disabled();
        let none = RoutingFile::default();
        let config = ServingConfig::default();
        let one = Registry::build(&golden(&["binary"]), &none, None, &config, &monitor).registry;
        assert_eq!(one.default_model.as_deref(), Some("binary"));
        assert_eq!(one.status().default_model_note, None);

        let two = golden(&["binary", "regression"]);
        let build = Registry::build(&two, &none, Some(&one), &config, &monitor);
        let status = build.registry.status();
        assert_eq!(status.default_model, None);
        let note = status.default_model_note.expect("reported");
        assert!(note.contains("(binary, regression)"), "{note}");
        assert!(note.contains("serving.default_model"), "{note}");

        let config = ServingConfig {
            default_model: Some("binary".into()),
            ..ServingConfig::default()
        };
        let build = Registry::build(&two, &none, Some(&one), &config, &monitor);
        let status = build.registry.status();
        assert_eq!(status.default_model.as_deref(), Some("binary"));
        assert_eq!(status.default_model_note, None);
    }
}

//! The serving core: which model answers a request, scoring it off the async workers within
//! the request's budget, and the baseline fallback whenever that cannot happen.

mod config;
mod registry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use rescore_api::{ErrorCode, FallbackReason, ModelsResponse, RescoreRequest, RescoreResponse};
use rescore_features::CachedItems;
use rescore_monitor as mon;
use tokio::sync::Semaphore;

pub use config::{EngineChoice, ServingConfig};
pub use registry::{
    Discovery, DiscoveryError, LoadedVersion, Manifest, ModelEntry, Registry, ScoreError,
    MANIFEST_FILE, MODEL_FILE,
};

/// The only variant until A/B routing exists.
pub const LIVE_VARIANT: &str = "live";

/// A request the sidecar refuses (4xx); everything else is answered, with the baseline if need be.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RescoreError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("no `model` given and {0}")]
    ModelRequired(String),
    #[error("model `{0}` is not configured")]
    UnknownModel(String),
}

impl RescoreError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RescoreError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            RescoreError::ModelRequired(_) => ErrorCode::ModelRequired,
            RescoreError::UnknownModel(_) => ErrorCode::UnknownModel,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("serving.default_model `{0}` is not among the models found under --models ({1})")]
    UnknownDefaultModel(String, String),
    #[error("{0}")]
    Config(String),
}

/// What is loaded once start-up loading finishes.
struct Loaded {
    registry: Registry,
    items: Option<Arc<CachedItems>>,
}

pub struct Rescorer {
    config: ServingConfig,
    /// Names found by discovery: known before loading ends, so that an unknown name is a 404
    /// and a known-but-not-loaded one a fallback, from the first request on.
    names: Vec<String>,
    default_model: Option<String>,
    loaded: ArcSwapOption<Loaded>,
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Rescorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rescorer")
            .field("names", &self.names)
            .field("default_model", &self.default_model)
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl Rescorer {
    /// Validates the configuration against what discovery found; nothing is loaded yet.
    pub fn new(config: ServingConfig, discovery: &Discovery) -> Result<Self, StartupError> {
        config.validate().map_err(StartupError::Config)?;
        let names: Vec<String> = discovery.names().map(str::to_string).collect();
        if let Some(unknown) = config.engines.keys().find(|n| !names.contains(n)) {
            return Err(StartupError::Config(format!(
                "serving.engines names `{unknown}`, which is not among the models found under --models"
            )));
        }
        let default_model = match &config.default_model {
            Some(name) if names.contains(name) => Some(name.clone()),
            Some(name) => {
                return Err(StartupError::UnknownDefaultModel(
                    name.clone(),
                    names.join(", "),
                ))
            }
            None if names.len() == 1 => names.first().cloned(),
            None => None,
        };
        let slots = Arc::new(Semaphore::new(config.effective_scoring_threads()));
        Ok(Rescorer {
            config,
            names,
            default_model,
            loaded: ArcSwapOption::empty(),
            slots,
        })
    }

    /// Installs what start-up loading produced; from now on the sidecar is ready.
    pub fn set_loaded(&self, registry: Registry, items: Option<Arc<CachedItems>>) {
        self.loaded
            .store(Some(Arc::new(Loaded { registry, items })));
    }

    pub fn is_ready(&self) -> bool {
        self.loaded.load().is_some()
    }

    pub fn default_model(&self) -> Option<&str> {
        self.default_model.as_deref()
    }

    pub fn config(&self) -> &ServingConfig {
        &self.config
    }

    pub fn models(&self) -> ModelsResponse {
        match &*self.loaded.load() {
            Some(loaded) => loaded.registry.status(self.default_model()),
            None => ModelsResponse {
                default_model: self.default_model.clone(),
                models: self
                    .names
                    .iter()
                    .map(|name| rescore_api::ModelStatus {
                        name: name.clone(),
                        live_version: None,
                        versions: Vec::new(),
                    })
                    .collect(),
            },
        }
    }

    /// Answers a parsed request: model scores, or the baseline with a `fallback` reason.
    /// Only invalid requests are errors.
    pub async fn rescore(&self, request: RescoreRequest) -> Result<RescoreResponse, RescoreError> {
        let started = Instant::now();
        let result = self.rescore_inner(request, started).await;
        let (model, variant, outcome) = match &result {
            Ok(resp) => (
                resp.model.clone().unwrap_or_default(),
                resp.variant.clone().unwrap_or_default(),
                if resp.fallback.is_some() {
                    mon::outcome::FALLBACK
                } else {
                    mon::outcome::SCORED
                },
            ),
            // Rejected requests carry no model label: the name may be anything the client sent.
            Err(_) => (String::new(), String::new(), mon::outcome::REJECTED),
        };
        if let Ok(resp) = &result {
            if let Some(reason) = resp.fallback {
                metrics::counter!(mon::FALLBACKS, "reason" => reason.as_str()).increment(1);
            }
            metrics::histogram!(mon::REQUEST_DURATION, "model" => model.clone())
                .record(started.elapsed().as_secs_f64());
        }
        metrics::counter!(mon::REQUESTS, "model" => model, "variant" => variant, "outcome" => outcome)
            .increment(1);
        result
    }

    async fn rescore_inner(
        &self,
        request: RescoreRequest,
        started: Instant,
    ) -> Result<RescoreResponse, RescoreError> {
        let name = self.choose_model(&request)?;
        let budget = match request.timeout_ms {
            Some(0) => {
                return Err(RescoreError::InvalidRequest(
                    "timeout_ms: must be at least 1".into(),
                ))
            }
            Some(ms) => ms.min(self.config.max_timeout_ms),
            None => self.config.default_timeout_ms,
        };
        let deadline = started + Duration::from_millis(budget);
        if request.hits.len() > self.config.max_hits {
            return Err(RescoreError::InvalidRequest(format!(
                "hits: {} hits, at most {} are accepted (serving.max_hits)",
                request.hits.len(),
                self.config.max_hits
            )));
        }
        if let Some(i) = request.hits.iter().position(|h| !h.score.is_finite()) {
            return Err(RescoreError::InvalidRequest(format!(
                "hits[{i}].score: must be a finite number"
            )));
        }
        metrics::histogram!(mon::REQUEST_HITS).record(request.hits.len() as f64);
        let baseline: Vec<f64> = request.hits.iter().map(|h| h.score).collect();
        let fallback = |reason: FallbackReason, version: Option<String>| RescoreResponse {
            scores: baseline.clone(),
            model: Some(name.clone()),
            version,
            variant: Some(LIVE_VARIANT.into()),
            fallback: Some(reason),
            took_us: micros(started),
        };

        let loaded = self.loaded.load_full();
        let Some((live, items)) = loaded.as_ref().and_then(|l| {
            l.registry
                .models
                .get(&name)
                .and_then(|m| m.live.clone())
                .map(|live| (live, l.items.clone()))
        }) else {
            return Ok(fallback(FallbackReason::ModelUnavailable, None));
        };
        let version = Some(live.version.to_string());
        if request.hits.is_empty() {
            return Ok(RescoreResponse {
                scores: Vec::new(),
                model: Some(name),
                version,
                variant: Some(LIVE_VARIANT.into()),
                fallback: None,
                took_us: micros(started),
            });
        }

        // Item lookups: a remote store (Redis) is asked here, asynchronously and within the
        // store's and the request's budget; the embedded store is read during assembly.
        let request_items = match items {
            Some(items) if live.spec.needs_items() => Some(
                items
                    .for_request(request.hits.iter().map(|h| h.id.as_str()), deadline)
                    .await,
            ),
            _ => None,
        };
        let deadline_tokio = tokio::time::Instant::from_std(deadline);
        let Ok(Ok(permit)) =
            tokio::time::timeout_at(deadline_tokio, self.slots.clone().acquire_owned()).await
        else {
            return Ok(fallback(FallbackReason::Overloaded, version));
        };
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _in_flight = InFlight::enter();
            live.score(&request, request_items.as_ref(), deadline)
        });
        let outcome = tokio::time::timeout_at(deadline_tokio, task).await;
        match outcome {
            Ok(Ok(Ok(scores))) => Ok(RescoreResponse {
                scores,
                model: Some(name),
                version,
                variant: Some(LIVE_VARIANT.into()),
                fallback: None,
                took_us: micros(started),
            }),
            Err(_) | Ok(Ok(Err(ScoreError::PastDeadline))) => {
                Ok(fallback(FallbackReason::Timeout, version))
            }
            Ok(Ok(Err(ScoreError::Model(error)))) => {
                tracing::warn!(model = %name, %error, "scoring failed; baseline returned");
                Ok(fallback(FallbackReason::ScoringError, version))
            }
            Ok(Err(join_error)) => {
                tracing::error!(model = %name, error = %join_error, "scoring task panicked; baseline returned");
                Ok(fallback(FallbackReason::ScoringError, version))
            }
        }
    }

    fn choose_model(&self, request: &RescoreRequest) -> Result<String, RescoreError> {
        match &request.model {
            Some(name) if self.names.iter().any(|n| n == name) => Ok(name.clone()),
            Some(name) => Err(RescoreError::UnknownModel(name.clone())),
            None => self.default_model.clone().ok_or_else(|| {
                RescoreError::ModelRequired(if self.names.is_empty() {
                    "no models are configured".into()
                } else {
                    format!(
                        "several models are configured ({}) and serving.default_model is not set",
                        self.names.join(", ")
                    )
                })
            }),
        }
    }
}

fn micros(started: Instant) -> u64 {
    started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64
}

/// Tracks `rescore_scoring_in_flight` for the lifetime of a blocking scoring task.
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        metrics::gauge!(mon::SCORING_IN_FLIGHT).increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(mon::SCORING_IN_FLIGHT).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rescore_api::Hit;

    fn rescorer(scoring_threads: usize) -> Rescorer {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/golden/models");
        let discovery = Discovery::scan(&dir).expect("golden fixtures");
        let config = ServingConfig {
            default_model: Some("regression".into()),
            scoring_threads,
            ..ServingConfig::default()
        };
        let r = Rescorer::new(config, &discovery).expect("valid config");
        let registry = Registry::load(&discovery, r.config());
        r.set_loaded(registry, None);
        r
    }

    fn request(timeout_ms: Option<u64>) -> RescoreRequest {
        RescoreRequest {
            hits: vec![
                Hit {
                    id: "a".into(),
                    score: 3.0,
                    features: Default::default(),
                },
                Hit {
                    id: "b".into(),
                    score: 7.0,
                    features: Default::default(),
                },
            ],
            timeout_ms,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn busy_slots_for_the_whole_budget_return_the_baseline() {
        let r = rescorer(1);
        let held = r.slots.clone().acquire_owned().await.expect("slot");
        let resp = r.rescore(request(Some(20))).await.expect("answered");
        assert_eq!(resp.fallback, Some(FallbackReason::Overloaded));
        assert_eq!(resp.scores, vec![3.0, 7.0]);
        assert_eq!(resp.version.as_deref(), Some("1"));
        drop(held);
        let resp = r.rescore(request(Some(1000))).await.expect("answered");
        assert_eq!(resp.fallback, None);
        assert_ne!(resp.scores, vec![3.0, 7.0]);
    }

    #[tokio::test]
    async fn default_model_rule() {
        let r = rescorer(1);
        assert_eq!(r.default_model(), Some("regression"));
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/golden/models");
        let mut discovery = Discovery::scan(&dir).expect("golden fixtures");
        let unknown = ServingConfig {
            default_model: Some("nope".into()),
            ..ServingConfig::default()
        };
        assert!(matches!(
            Rescorer::new(unknown, &discovery),
            Err(StartupError::UnknownDefaultModel(..))
        ));
        // several models, no default: a request without `model` is refused
        let r = Rescorer::new(ServingConfig::default(), &discovery).expect("valid");
        assert_eq!(r.default_model(), None);
        let err = r.rescore(request(None)).await.expect_err("model required");
        assert_eq!(err.code(), ErrorCode::ModelRequired);
        // exactly one model: it is the default
        discovery.models.retain(|name, _| name == "binary");
        let r = Rescorer::new(ServingConfig::default(), &discovery).expect("valid");
        assert_eq!(r.default_model(), Some("binary"));
    }
}

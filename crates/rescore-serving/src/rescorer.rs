//! The request path: which model and version answer a request (routing rules, sticky A/B
//! variants), scoring it off the async workers within the request's budget, the baseline
//! fallback whenever that cannot happen, and shadow scoring after the response.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use rescore_api::{BaselineScore, FallbackReason, ReloadReport, RescoreRequest, RescoreResponse};
use rescore_features::CachedItems;
use rescore_monitor as mon;
use tokio::sync::Semaphore;

use crate::{
    assign, shadow, Discovery, LoadedVersion, ModelSources, Registry, RescoreError, RoutingFile,
    ScoreError, ServingConfig, StartupError, LIVE_VARIANT,
};

/// What is loaded once start-up loading finishes; replaced whole by each reload.
pub(crate) struct Loaded {
    pub(crate) registry: Registry,
    pub(crate) items: Option<Arc<CachedItems>>,
}

pub struct Rescorer {
    pub(crate) config: ServingConfig,
    pub(crate) sources: ModelSources,
    /// Names found by discovery at start-up: known before loading ends, so that an unknown
    /// name is a 404 and a known-but-not-loaded one a fallback, from the first request on.
    pub(crate) names: Vec<String>,
    pub(crate) default_model: Option<String>,
    /// The routing file validated at start-up.
    pub(crate) initial_routing: RoutingFile,
    pub(crate) loaded: ArcSwapOption<Loaded>,
    pub(crate) slots: Arc<Semaphore>,
    /// Refuses at once what cannot be scored within its budget (ADR 0002).
    pub(crate) admission: Arc<crate::admission::Admission>,
    /// One reload at a time; requests never take it.
    pub(crate) reload_lock: Mutex<()>,
    pub(crate) last_reload: ArcSwapOption<ReloadReport>,
    pub(crate) shadow: shadow::ShadowPool,
    pub(crate) monitor: Arc<rescore_monitor::Monitor>,
    /// Requests answered (scored, fallback or refused as invalid) since start.
    pub(crate) answered: std::sync::atomic::AtomicU64,
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

/// The version chosen for a request.
pub(crate) struct Route {
    pub(crate) model: String,
    pub(crate) variant: String,
    pub(crate) version: Option<Arc<LoadedVersion>>,
    pub(crate) shadows: Vec<Arc<LoadedVersion>>,
}

impl Rescorer {
    /// Validates the configuration against what discovery found; nothing is loaded yet.
    pub fn new(config: ServingConfig, discovery: &Discovery) -> Result<Self, StartupError> {
        Self::with_sources(config, discovery, ModelSources::default())
    }

    /// Like [`Rescorer::new`], with the models directory and routing file to reload from
    /// (the routing file is read and validated here: an invalid one stops start-up).
    pub fn with_sources(
        config: ServingConfig,
        discovery: &Discovery,
        sources: ModelSources,
    ) -> Result<Self, StartupError> {
        config.validate().map_err(StartupError::Config)?;
        let names: Vec<String> = discovery.names().map(str::to_string).collect();
        if let Some(unknown) = config.engines.keys().find(|n| !names.contains(n)) {
            return Err(StartupError::Config(format!(
                "serving.engines names `{unknown}`, which is not among the models found under --models"
            )));
        }
        let initial_routing = match &sources.routing_path {
            Some(path) => RoutingFile::read(path)
                .map_err(StartupError::Config)?
                .unwrap_or_default(),
            None => RoutingFile::default(),
        };
        initial_routing.validate(discovery).map_err(|errors| {
            let path = sources
                .routing_path
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string());
            StartupError::Config(format!("routing file {path}: {}", errors.join("; ")))
        })?;
        let default_model = match (&initial_routing.default_model, &config.default_model) {
            (Some(name), _) => Some(name.clone()),
            (None, Some(name)) if names.contains(name) => Some(name.clone()),
            (None, Some(name)) => {
                return Err(StartupError::UnknownDefaultModel(
                    name.clone(),
                    names.join(", "),
                ))
            }
            (None, None) if names.len() == 1 => names.first().cloned(),
            (None, None) => None,
        };
        let slots = Arc::new(Semaphore::new(config.effective_scoring_threads()));
        let admission = crate::admission::Admission::new(config.effective_scoring_threads());
        let shadow = shadow::ShadowPool::start(&config.shadow)
            .map_err(|e| StartupError::Config(format!("serving.shadow: {e}")))?;
        Ok(Rescorer {
            config,
            sources,
            names,
            default_model,
            initial_routing,
            loaded: ArcSwapOption::empty(),
            slots,
            admission,
            reload_lock: Mutex::new(()),
            last_reload: ArcSwapOption::empty(),
            shadow,
            monitor: rescore_monitor::Monitor::disabled(),
            answered: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Drift monitoring and feature logging for the versions this rescorer loads; `/v1/drift`
    /// reads it.
    pub fn with_monitor(mut self, monitor: Arc<rescore_monitor::Monitor>) -> Self {
        self.monitor = monitor;
        self
    }

    /// How many rescore requests have been answered since start (the heap trim watches it for
    /// the end of a burst).
    pub fn answered_requests(&self) -> u64 {
        self.answered.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn monitor(&self) -> &Arc<rescore_monitor::Monitor> {
        &self.monitor
    }

    pub fn is_ready(&self) -> bool {
        self.loaded.load().is_some()
    }

    /// The default model of the current registry (or the one configured, before loading).
    pub fn default_model(&self) -> Option<String> {
        match &*self.loaded.load() {
            Some(l) => l.registry.default_model.clone(),
            None => self.default_model.clone(),
        }
    }

    pub fn config(&self) -> &ServingConfig {
        &self.config
    }

    pub fn sources(&self) -> &ModelSources {
        &self.sources
    }
    /// Answers a parsed request: model scores, or the baseline with a `fallback` reason.
    /// Only invalid requests are errors. The budget starts now.
    pub async fn rescore(&self, request: RescoreRequest) -> Result<RescoreResponse, RescoreError> {
        self.rescore_since(request, Instant::now()).await
    }

    /// [`Self::rescore`] with the budget started at `started`: the HTTP layer passes the
    /// moment the request arrived, so that reading and parsing its body count against it.
    pub async fn rescore_since(
        &self,
        request: RescoreRequest,
        started: Instant,
    ) -> Result<RescoreResponse, RescoreError> {
        let result = self.rescore_inner(request, started).await;
        self.record_answer(&result, started);
        result
    }

    /// Counts an answer in the request metrics.
    pub(crate) fn record_answer(
        &self,
        result: &Result<RescoreResponse, RescoreError>,
        started: Instant,
    ) {
        self.answered
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (model, variant, outcome) = match result {
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
        if let Ok(resp) = result {
            if let Some(reason) = resp.fallback {
                metrics::counter!(mon::FALLBACKS, "reason" => reason.as_str()).increment(1);
            }
            metrics::histogram!(mon::REQUEST_DURATION, "model" => model.clone(), "variant" => variant.clone())
                .record(started.elapsed().as_secs_f64());
        }
        metrics::counter!(mon::REQUESTS, "model" => model, "variant" => variant, "outcome" => outcome)
            .increment(1);
    }

    async fn rescore_inner(
        &self,
        request: RescoreRequest,
        started: Instant,
    ) -> Result<RescoreResponse, RescoreError> {
        let deadline = started + self.checked_budget(&request)?;
        // One snapshot for the whole request: a reload meanwhile does not change its version.
        let loaded = self.loaded.load_full();
        let route = self.route(loaded.as_deref(), &request)?;
        metrics::histogram!(mon::REQUEST_HITS).record(request.hits.len() as f64);
        let Route {
            model: name,
            variant,
            version: chosen,
            shadows,
        } = route;
        let baseline: Vec<f64> = request.hits.iter().map(|h| h.score).collect();
        let fallback = |reason: FallbackReason, version: Option<String>| RescoreResponse {
            scores: baseline.clone(),
            model: Some(name.clone()),
            version,
            variant: Some(variant.clone()),
            fallback: Some(reason),
            took_us: micros(started),
            flags: None,
        };
        let (Some(live), Some(loaded)) = (chosen, loaded) else {
            return Ok(fallback(FallbackReason::ModelUnavailable, None));
        };
        let items = loaded.items.clone();
        let version = Some(live.version.to_string());
        // The body took the whole budget to arrive or to parse: nothing is left to score in.
        if Instant::now() >= deadline {
            return Ok(fallback(FallbackReason::Timeout, version));
        }
        // The items of a request are resolved once and shared with its shadows.
        if request.hits.is_empty() {
            return Ok(RescoreResponse {
                scores: Vec::new(),
                model: Some(name),
                version,
                variant: Some(variant),
                fallback: None,
                took_us: micros(started),
                flags: None,
            });
        }

        // Item lookups: a remote store (Redis) is asked here, asynchronously and within the
        // store's and the request's budget; the embedded store is read during assembly.
        let request_items = match items {
            Some(items)
                if live.spec.needs_items() || shadows.iter().any(|s| s.spec.needs_items()) =>
            {
                Some(
                    items
                        .for_request(request.hits.iter().map(|h| h.id.as_str()), deadline)
                        .await,
                )
            }
            _ => None,
        };
        // A Redis store that failed is known here: answer before taking a scoring slot.
        if self.store_failed(request_items.as_ref(), request.hits.len()) {
            return Ok(fallback(FallbackReason::FeatureStore, version));
        }
        let deadline_tokio = tokio::time::Instant::from_std(deadline);
        let hits = request.hits.len();
        let ticket = if self.config.admission_control {
            let Some(ticket) = self
                .admission
                .admit(hits, deadline.saturating_duration_since(Instant::now()))
            else {
                return Ok(fallback(FallbackReason::Overloaded, version));
            };
            Some(ticket)
        } else {
            None
        };
        let Ok(Ok(permit)) =
            tokio::time::timeout_at(deadline_tokio, self.slots.clone().acquire_owned()).await
        else {
            return Ok(fallback(FallbackReason::Overloaded, version));
        };
        // Waited too long for the slot to finish in time: hand it on at once (ADR 0010).
        if self.config.admission_control
            && !self
                .admission
                .fits(hits, deadline.saturating_duration_since(Instant::now()))
        {
            drop(permit);
            return Ok(fallback(FallbackReason::Overloaded, version));
        }
        let request = Arc::new(request);
        let request_items = request_items.map(Arc::new);
        let task = {
            let (request, items, live) = (request.clone(), request_items.clone(), live.clone());
            let variant_for_task = variant.clone();
            let admission = self.admission.clone();
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let _ticket = ticket;
                let _in_flight = InFlight::enter();
                let began = Instant::now();
                let scored = live.score(
                    &request,
                    items.as_deref(),
                    deadline,
                    Some(&variant_for_task),
                );
                if scored.is_ok() {
                    admission.observe(hits, began.elapsed());
                }
                // The gamed-listing guard (ADR 0011) sees the served scores, after the model.
                scored.map(|mut scores| {
                    let outcome = live
                        .guard
                        .as_ref()
                        .map(|g| g.run(&request, items.as_deref(), &mut scores));
                    (scores, outcome)
                })
            })
        };
        let outcome = tokio::time::timeout_at(deadline_tokio, task).await;
        match outcome {
            // Embedded read errors are known after assembly.
            Ok(Ok(Ok(_))) if self.store_failed(request_items.as_deref(), hits) => {
                Ok(fallback(FallbackReason::FeatureStore, version))
            }
            Ok(Ok(Ok((scores, guarded)))) => {
                let flags = request
                    .guard
                    .as_ref()
                    .filter(|g| g.flags)
                    .map(|_| guarded.unwrap_or_default().per_hit(scores.len()));
                if !shadows.is_empty() {
                    self.shadow.submit(shadow::ShadowJob {
                        model: name.clone(),
                        served_version: live.version,
                        variant: variant.clone(),
                        request,
                        served: scores.clone(),
                        shadows,
                        items: request_items,
                    });
                }
                Ok(RescoreResponse {
                    scores,
                    model: Some(name),
                    version,
                    variant: Some(variant),
                    fallback: None,
                    took_us: micros(started),
                    flags,
                })
            }
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

    /// The request's budget, once the checks every decoding of it gets have passed (a refusal
    /// decoded from scores only is checked as strictly as a request that is scored).
    pub(crate) fn checked_budget<H: BaselineScore>(
        &self,
        request: &RescoreRequest<H>,
    ) -> Result<Duration, RescoreError> {
        let budget = match request.timeout_ms {
            Some(0) => {
                return Err(RescoreError::InvalidRequest(
                    "timeout_ms: must be at least 1".into(),
                ))
            }
            Some(ms) => ms.min(self.config.max_timeout_ms),
            None => self.config.default_timeout_ms,
        };
        if request.hits.len() > self.config.max_hits {
            return Err(RescoreError::InvalidRequest(format!(
                "hits: {} hits, at most {} are accepted (serving.max_hits)",
                request.hits.len(),
                self.config.max_hits
            )));
        }
        if request
            .request_id
            .as_ref()
            .is_some_and(|id| id.len() > rescore_api::MAX_REQUEST_ID_LEN)
        {
            return Err(RescoreError::InvalidRequest(format!(
                "request_id: at most {} bytes",
                rescore_api::MAX_REQUEST_ID_LEN
            )));
        }
        if let Some(i) = request.hits.iter().position(|h| !h.baseline().is_finite()) {
            return Err(RescoreError::InvalidRequest(format!(
                "hits[{i}].score: must be a finite number"
            )));
        }
        Ok(Duration::from_millis(budget))
    }

    /// Whether the store failed to read more than `serving.max_store_failure_share` of the
    /// request's hits (ADR 0002); unknown ids never count.
    fn store_failed(&self, items: Option<&rescore_features::RequestItems>, hits: usize) -> bool {
        let unread = items.map_or(0, |i| i.unread());
        unread > 0 && unread as f64 > self.config.max_store_failure_share * hits as f64
    }

    /// The requested (or default) name, then its rules, then the target's A/B arm.
    pub(crate) fn route<H>(
        &self,
        loaded: Option<&Loaded>,
        request: &RescoreRequest<H>,
    ) -> Result<Route, RescoreError> {
        let Some(loaded) = loaded else {
            // Still loading: names come from start-up discovery, every answer is a fallback.
            let name =
                self.requested_name(request, self.names.iter(), self.default_model.as_deref())?;
            return Ok(Route {
                model: name,
                variant: LIVE_VARIANT.into(),
                version: None,
                shadows: Vec::new(),
            });
        };
        let registry = &loaded.registry;
        let requested = self.requested_name(
            request,
            registry.models.keys(),
            registry.default_model.as_deref(),
        )?;
        let entry = &registry.models[&requested];
        let (name, entry) = match entry.rules.iter().find(|r| r.matches(request)) {
            Some(rule) => match registry.models.get(&rule.model) {
                Some(target) => (rule.model.clone(), target),
                None => (requested, entry),
            },
            None => (requested, entry),
        };
        let arm = entry.experiment.as_ref().and_then(|exp| {
            let i = assign(&exp.decl, request)?;
            let version = exp.arms.get(i)?.clone()?;
            Some((exp.decl.variants[i].name.clone(), version))
        });
        let (variant, version) = match arm {
            Some((variant, version)) => (variant, Some(version)),
            None => (LIVE_VARIANT.to_string(), entry.live.clone()),
        };
        Ok(Route {
            model: name,
            variant,
            version,
            shadows: entry.shadows.clone(),
        })
    }

    /// `names` lists the configured models in order (iterated only to check a name, or for
    /// the error message: no allocation on the request path).
    fn requested_name<'a, H>(
        &self,
        request: &RescoreRequest<H>,
        names: impl Iterator<Item = &'a String> + Clone,
        default_model: Option<&str>,
    ) -> Result<String, RescoreError> {
        let names_list = || names.clone().cloned().collect::<Vec<_>>();
        match &request.model {
            Some(name) if names.clone().any(|n| n == name) => Ok(name.clone()),
            Some(name) => Err(RescoreError::UnknownModel(name.clone())),
            None => default_model.map(str::to_string).ok_or_else(|| {
                let names = names_list();
                RescoreError::ModelRequired(if names.is_empty() {
                    "no models are configured".into()
                } else {
                    format!(
                        "several models are configured ({}) and no default model is set (serving.default_model or the routing file's default_model)",
                        names.join(", ")
                    )
                })
            }),
        }
    }
}

pub(crate) fn micros(started: Instant) -> u64 {
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

/// A rescorer over the golden fixture models, loaded, `regression` the default model.
#[cfg(test)]
pub(crate) fn golden_rescorer(config: ServingConfig) -> Rescorer {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/golden/models");
    let discovery = Discovery::scan(&dir).expect("golden fixtures");
    let config = ServingConfig {
        default_model: Some("regression".into()),
        ..config
    };
    let r = Rescorer::new(config, &discovery).expect("valid config");
    let registry = Registry::load(&discovery, r.config());
    r.set_loaded(registry, None);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use rescore_api::{ErrorCode, Hit};

    fn rescorer(scoring_threads: usize) -> Rescorer {
        golden_rescorer(ServingConfig {
            scoring_threads,
            ..ServingConfig::default()
        })
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
        assert_eq!(r.default_model().as_deref(), Some("regression"));
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
        assert_eq!(r.default_model().as_deref(), Some("binary"));
    }
}

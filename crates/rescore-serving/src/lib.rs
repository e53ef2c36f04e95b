//! The serving core: which model and version answer a request (routing rules, sticky A/B
//! variants), scoring it off the async workers within the request's budget, the baseline
//! fallback whenever that cannot happen, shadow scoring after the response, and hot reload of
//! models and routing that swaps atomically and never replaces a working version by a broken one.

mod admission;
mod binned;
mod config;
mod error;
mod guard;
mod lifecycle;
mod pandas;
mod record_bins;
mod refusal;
mod registry;
mod rescorer;
mod routing;
mod row_bins;
mod shadow;
mod watch;

pub use config::{EngineChoice, ReloadConfig, ServingConfig};
pub use error::{AdminError, RescoreError, StartupError};
pub use guard::{describe_guard_metrics, GuardConfig, GuardOutcome, VersionGuard, GUARD_FLAGGED};
pub use lifecycle::{ModelSources, DEFAULT_ROUTING_FILE};
pub use registry::{
    ActiveExperiment, Build, Discovery, DiscoveryError, Fingerprint, LoadedVersion, Manifest,
    ModelEntry, Registry, ScoreError, MANIFEST_FILE, MODEL_FILE,
};
pub use rescorer::Rescorer;
pub use routing::{
    assign, bucket, Experiment, ModelRouting, OneOrMany, RoutingFile, Rule, SplitKey, VariantDecl,
    LIVE_VARIANT,
};
pub use shadow::{kendall_tau_b, top_k_overlap, ShadowConfig};
pub use watch::{spawn_watcher, WatchError, Watcher};

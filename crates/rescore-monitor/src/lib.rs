//! Monitoring: the metric catalogue (names, help, buckets) and the Prometheus recorder; per
//! model version, reference statistics, drift and outlier sketches over a sliding window
//! ([`VersionMonitor`]); and the sampled feature log. Names are part of the contract
//! (docs/metrics.md); labels stay bounded: model names, versions, variants, engines, fallback
//! reasons and model feature names — never ids or query text.

pub mod config;
pub mod dataset;
pub mod drift;
pub mod exposition;
pub mod feature_log;
pub mod join;
pub mod reference;
mod version;

pub use config::{DriftConfig, FeatureLogConfig, MonitorConfig};
pub use drift::{ColumnDrift, DriftReport, DriftSketch, FeatureDrift};
pub use reference::{Reference, ReferenceBuilder, REFERENCE_FILE};
pub use version::{DriftResponse, ModelDrift, Monitor, VersionMonitor};

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use rescore_api::FallbackReason;

pub const REQUESTS: &str = "rescore_requests_total";
pub const REQUEST_DURATION: &str = "rescore_request_duration_seconds";
pub const SCORING_DURATION: &str = "rescore_scoring_duration_seconds";
pub const REQUEST_HITS: &str = "rescore_request_hits";
pub const FALLBACKS: &str = "rescore_fallbacks_total";
/// Requests refused at admission from a scores-only decode of their body (ADR 0010).
pub const SCORES_ONLY_REFUSALS: &str = "rescore_scores_only_refusals_total";
pub const MODEL_INFO: &str = "rescore_model_info";
pub const MODEL_RELOADS: &str = "rescore_model_reloads_total";
pub const FEATURE_MISSING: &str = "rescore_feature_missing_total";
pub const SCORING_IN_FLIGHT: &str = "rescore_scoring_in_flight";
pub const NATIVE_REFUSALS: &str = "rescore_native_refusals_total";
pub const MODEL_LIVE_VERSION: &str = "rescore_model_live_version";
pub const RELOADS: &str = "rescore_reloads_total";
pub const SHADOW_REQUESTS: &str = "rescore_shadow_requests_total";
pub const SHADOW_DURATION: &str = "rescore_shadow_duration_seconds";
pub const SHADOW_KENDALL_TAU: &str = "rescore_shadow_kendall_tau";
pub const SHADOW_TOPK_OVERLAP: &str = "rescore_shadow_topk_overlap";
pub const SHADOW_SCORES: &str = "rescore_shadow_scores";
pub const SHADOW_LOG_LINES: &str = "rescore_shadow_log_lines_total";
pub const ADMIN_REQUESTS: &str = "rescore_admin_requests_total";

/// `trigger` label values of [`RELOADS`].
pub mod reload_trigger {
    pub const STARTUP: &str = "startup";
    pub const WATCH: &str = "watch";
    pub const SIGHUP: &str = "sighup";
    pub const ADMIN: &str = "admin";
    pub const ALL: [&str; 4] = [STARTUP, WATCH, SIGHUP, ADMIN];
}

/// `result` label values of [`SHADOW_REQUESTS`].
pub mod shadow_result {
    /// The shadow version scored the hits; comparison metrics were recorded.
    pub const SCORED: &str = "scored";
    /// The shadow queue was full: the work was dropped so the live path never waits.
    pub const DROPPED: &str = "dropped";
    /// The shadow version failed to score (the live response was unaffected).
    pub const ERROR: &str = "error";
}

/// Drift, outlier and feature-log metrics (docs/monitoring.md).
pub mod names {
    pub const FEATURE_DRIFT_PSI: &str = "rescore_feature_drift_psi";
    pub const FEATURE_DRIFT_KS: &str = "rescore_feature_drift_ks";
    pub const SCORE_DRIFT_PSI: &str = "rescore_score_drift_psi";
    pub const SCORE_DRIFT_KS: &str = "rescore_score_drift_ks";
    pub const FEATURE_MISSING_RATIO: &str = "rescore_feature_missing_ratio";
    pub const FEATURE_OUT_OF_RANGE_RATIO: &str = "rescore_feature_out_of_range_ratio";
    pub const FEATURE_UNSEEN_CATEGORY_RATIO: &str = "rescore_feature_unseen_category_ratio";
    pub const OUTLIER_RATIO: &str = "rescore_outlier_ratio";
    pub const DRIFT_WINDOW_ROWS: &str = "rescore_drift_window_rows";
    pub const DRIFT_FEATURES_OVER_THRESHOLD: &str = "rescore_drift_features_over_threshold";
    pub const SCORE_DRIFT_OVER_THRESHOLD: &str = "rescore_score_drift_over_threshold";
    pub const FEATURE_LOG_RECORDS: &str = "rescore_feature_log_records_total";
    pub const FEATURE_LOG_BYTES: &str = "rescore_feature_log_bytes_total";
    pub const FEATURE_LOG_DROPPED: &str = "rescore_feature_log_dropped_total";
    pub const FEATURE_LOG_DISK_BYTES: &str = "rescore_feature_log_disk_bytes";
}

/// `outcome` label values of [`REQUESTS`].
pub mod outcome {
    /// Model scores were returned.
    pub const SCORED: &str = "scored";
    /// The baseline was returned (see `rescore_fallbacks_total`).
    pub const FALLBACK: &str = "fallback";
    /// The request was refused with a 4xx.
    pub const REJECTED: &str = "rejected";
}

/// `result` label values of [`MODEL_RELOADS`].
pub mod reload_result {
    pub const SUCCESS: &str = "success";
    pub const FAILURE: &str = "failure";
}

/// Latency buckets (seconds): 100 µs to 5 s, dense where a rescoring budget lives (1-100 ms).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05,
    0.075, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];
/// Rank correlation and overlap buckets: -1 to 1 by 0.1.
pub const CORRELATION_BUCKETS: &[f64] = &[
    -1.0, -0.9, -0.8, -0.7, -0.6, -0.5, -0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6,
    0.7, 0.8, 0.9, 0.95, 0.99, 1.0,
];
/// Score buckets wide enough for both probabilities (0-1) and ranking margins (about -10..10).
pub const SCORE_BUCKETS: &[f64] = &[
    -10.0, -5.0, -2.0, -1.0, -0.5, -0.25, 0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 2.0, 5.0, 10.0,
];
pub const HITS_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
];

/// How often the server drains histogram samples into their buckets when nobody scrapes
/// (`PrometheusHandle::run_upkeep`): the samples held meanwhile are bounded by this much
/// traffic.
pub const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Installs the global Prometheus recorder with histogram buckets (without them the exporter
/// renders summaries) and returns the handle `/metrics` renders from.
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(REQUEST_HITS.into()), HITS_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(SHADOW_KENDALL_TAU.into()),
            CORRELATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(SHADOW_TOPK_OVERLAP.into()),
            CORRELATION_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Full(SHADOW_SCORES.into()), SCORE_BUCKETS)?
        .install_recorder()?;
    describe();
    Ok(handle)
}

/// Help texts, and the counters with known label values exposed at 0 from start-up.
pub fn describe() {
    metrics::describe_counter!(
        REQUESTS,
        "Rescore requests by model, variant and outcome (scored, fallback, rejected)."
    );
    metrics::describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time from a rescore request's arrival (headers read) to its response, by model and variant."
    );
    metrics::describe_histogram!(
        SCORING_DURATION,
        metrics::Unit::Seconds,
        "Feature assembly plus model evaluation per request, by model and engine."
    );
    metrics::describe_histogram!(REQUEST_HITS, "Hits per rescore request.");
    metrics::describe_counter!(
        FALLBACKS,
        "Requests answered with the baseline scores, by reason."
    );
    metrics::describe_gauge!(
        MODEL_INFO,
        "1 for each model version serving, with the engine that scores it."
    );
    metrics::describe_counter!(MODEL_RELOADS, "Model version loads by result.");
    metrics::describe_counter!(
        FEATURE_MISSING,
        "Hit rows in which a model feature resolved to missing (NaN)."
    );
    metrics::describe_gauge!(
        SCORING_IN_FLIGHT,
        "Requests holding a scoring slot (running on the blocking pool)."
    );
    for reason in FallbackReason::ALL {
        metrics::counter!(FALLBACKS, "reason" => reason.as_str()).absolute(0);
    }
    metrics::describe_counter!(
        SCORES_ONLY_REFUSALS,
        "Requests refused at admission from a scores-only decode of their body (part of the overloaded fallbacks)."
    );
    metrics::counter!(SCORES_ONLY_REFUSALS).absolute(0);
    metrics::describe_counter!(
        NATIVE_REFUSALS,
        "Model versions served by lightgbm3 instead of the native evaluator, by reason (forced, unsupported, self_check)."
    );
    for reason in ["forced", "unsupported", "self_check"] {
        metrics::counter!(NATIVE_REFUSALS, "reason" => reason).absolute(0);
    }
    for result in [reload_result::SUCCESS, reload_result::FAILURE] {
        metrics::counter!(MODEL_RELOADS, "result" => result).absolute(0);
        for trigger in reload_trigger::ALL {
            metrics::counter!(RELOADS, "trigger" => trigger, "result" => result).absolute(0);
        }
    }
    metrics::describe_gauge!(
        MODEL_LIVE_VERSION,
        "The live version number of each model (changes on promotion and rollback)."
    );
    metrics::describe_counter!(
        RELOADS,
        "Registry reloads (models directory and routing file) by trigger and result; a failure kept the previous state where it could not apply."
    );
    metrics::describe_counter!(
        SHADOW_REQUESTS,
        "Shadow scorings by model and result (scored, dropped when the queue was full, error)."
    );
    metrics::describe_histogram!(
        SHADOW_DURATION,
        metrics::Unit::Seconds,
        "Time a shadow version took to score a request's hits, by model."
    );
    metrics::describe_histogram!(
        SHADOW_KENDALL_TAU,
        "Kendall tau-b between the served and the shadow scores of a request, by model and shadow version."
    );
    metrics::describe_histogram!(
        SHADOW_TOPK_OVERLAP,
        "Share of the served top-k hits (k = serving.shadow.top_k) also in the shadow's top-k."
    );
    metrics::describe_histogram!(
        SHADOW_SCORES,
        "Scores of shadowed requests, by model, version and role (served or shadow)."
    );
    metrics::describe_counter!(
        SHADOW_LOG_LINES,
        "Lines written to (or dropped from, on I/O errors) the shadow comparison log, by result."
    );
    metrics::describe_counter!(
        ADMIN_REQUESTS,
        "Admin API calls by outcome (ok, refused, unauthorized)."
    );
    describe_monitoring();
}

fn describe_monitoring() {
    use names::*;
    let gauges = [
        (FEATURE_DRIFT_PSI, "PSI of a feature over the drift window against the model version's reference (NaN until the window has monitoring.drift.min_rows rows, or requests for a query-level feature)."),
        (FEATURE_DRIFT_KS, "Binned Kolmogorov-Smirnov distance of a numeric feature against the reference."),
        (SCORE_DRIFT_PSI, "PSI of the model's scores over the drift window against the reference scores."),
        (SCORE_DRIFT_KS, "Binned Kolmogorov-Smirnov distance of the scores against the reference scores."),
        (FEATURE_MISSING_RATIO, "Share of sampled rows in the drift window where the feature was missing."),
        (FEATURE_OUT_OF_RANGE_RATIO, "Share of a numeric feature's non-missing values in the window outside the reference [min, max]."),
        (FEATURE_UNSEEN_CATEGORY_RATIO, "Share of a categorical feature's non-missing values in the window that the reference never saw."),
        (OUTLIER_RATIO, "Per model over all features in the window: out_of_range, unseen_category or missing values as a share."),
        (DRIFT_WINDOW_ROWS, "Sampled rows in the drift window."),
        (DRIFT_FEATURES_OVER_THRESHOLD, "Features whose PSI is at or above monitoring.drift.feature_psi_threshold."),
        (SCORE_DRIFT_OVER_THRESHOLD, "1 when the score PSI is at or above monitoring.drift.score_psi_threshold."),
        (FEATURE_LOG_DISK_BYTES, "Bytes of feature log files on disk."),
    ];
    for (name, help) in gauges {
        metrics::describe_gauge!(name, help);
    }
    metrics::describe_counter!(FEATURE_LOG_RECORDS, "Requests written to the feature log.");
    metrics::describe_counter!(FEATURE_LOG_BYTES, "Bytes written to the feature log.");
    metrics::describe_counter!(
        FEATURE_LOG_DROPPED,
        "Sampled requests not logged, by reason (queue_full, write_error)."
    );
    metrics::counter!(FEATURE_LOG_RECORDS).absolute(0);
    metrics::counter!(FEATURE_LOG_BYTES).absolute(0);
    for reason in ["queue_full", "write_error"] {
        metrics::counter!(FEATURE_LOG_DROPPED, "reason" => reason).absolute(0);
    }
    metrics::gauge!(FEATURE_LOG_DISK_BYTES).set(0.0);
}

//! `[monitoring]` in the config file (docs/configuration.md, docs/monitoring.md).

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    pub drift: DriftConfig,
    pub feature_log: FeatureLogConfig,
}

/// `[monitoring.drift]`: sliding-window sketches against each version's `reference.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftConfig {
    /// Off: no sketches, no drift gauges (reference files are still validated at load).
    pub enabled: bool,
    /// Length of the sliding window.
    pub window_secs: u64,
    /// Time buckets the window is made of; the oldest bucket is dropped as time moves on.
    pub buckets: u32,
    /// Share of scored rows (hits) that feed the sketches: every `round(1/rate)`-th row from
    /// a random offset, so the cost per request stays a small fraction of scoring.
    pub row_sample_rate: f64,
    /// Fewer observations of a column than this in the window: its PSI/KS are not reported
    /// (NaN, null). An observation is a sampled row, or a request for query-level features
    /// (counted once per request).
    pub min_rows: u64,
    /// A feature whose PSI reaches this counts in `rescore_drift_features_over_threshold`.
    pub feature_psi_threshold: f64,
    /// The score's PSI reaching this sets `rescore_score_drift_over_threshold` to 1.
    pub score_psi_threshold: f64,
    /// How often the drift gauges are recomputed in the background.
    pub refresh_secs: u64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            enabled: true,
            window_secs: 3600,
            buckets: 12,
            row_sample_rate: 0.03125,
            min_rows: 500,
            feature_psi_threshold: 0.2,
            score_psi_threshold: 0.2,
            refresh_secs: 15,
        }
    }
}

/// `[monitoring.feature_log]`: a sample of scored requests as JSON Lines.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureLogConfig {
    pub enabled: bool,
    /// Directory of the log files (created if absent). Required when enabled.
    pub dir: Option<PathBuf>,
    /// Share of scored requests that are logged, 0..=1.
    pub sample_rate: f64,
    /// A file is closed and a new one started once it reaches this size.
    pub max_file_bytes: u64,
    /// Oldest files are deleted so that the log directory stays under this.
    pub max_total_bytes: u64,
    /// Records waiting for the writer thread; when full, records are dropped and counted.
    pub queue_capacity: usize,
}

impl Default for FeatureLogConfig {
    fn default() -> Self {
        FeatureLogConfig {
            enabled: false,
            dir: None,
            sample_rate: 0.01,
            max_file_bytes: 64 * 1024 * 1024,
            max_total_bytes: 1024 * 1024 * 1024,
            queue_capacity: 256,
        }
    }
}

impl MonitorConfig {
    pub fn validate(&self) -> Result<(), String> {
        let d = &self.drift;
        if d.window_secs == 0 {
            return Err("monitoring.drift.window_secs must be at least 1".into());
        }
        if d.buckets == 0 || d.buckets > 1440 {
            return Err("monitoring.drift.buckets must be in 1..=1440".into());
        }
        if d.window_secs < u64::from(d.buckets) {
            return Err(
                "monitoring.drift.window_secs must be at least monitoring.drift.buckets (one second per bucket)"
                    .into(),
            );
        }
        if !(d.row_sample_rate > 0.0 && d.row_sample_rate <= 1.0) {
            return Err("monitoring.drift.row_sample_rate must be in (0, 1]".into());
        }
        for (key, v) in [
            ("feature_psi_threshold", d.feature_psi_threshold),
            ("score_psi_threshold", d.score_psi_threshold),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("monitoring.drift.{key} must be a positive number"));
            }
        }
        if d.refresh_secs == 0 {
            return Err("monitoring.drift.refresh_secs must be at least 1".into());
        }
        let l = &self.feature_log;
        if !(0.0..=1.0).contains(&l.sample_rate) {
            return Err("monitoring.feature_log.sample_rate must be in 0..=1".into());
        }
        if l.enabled && l.dir.is_none() {
            return Err("monitoring.feature_log.dir is required when feature_log.enabled".into());
        }
        if l.max_file_bytes < 4096 {
            return Err("monitoring.feature_log.max_file_bytes must be at least 4096".into());
        }
        if l.max_total_bytes < l.max_file_bytes {
            return Err(
                "monitoring.feature_log.max_total_bytes must be at least max_file_bytes".into(),
            );
        }
        if l.queue_capacity == 0 {
            return Err("monitoring.feature_log.queue_capacity must be at least 1".into());
        }
        Ok(())
    }

    /// Relative `feature_log.dir` in a config file is relative to the file's directory.
    pub fn rebase(&mut self, base: &std::path::Path) {
        if let Some(dir) = &self.feature_log.dir {
            self.feature_log.dir = Some(base.join(dir));
        }
    }
}

impl DriftConfig {
    /// Rows skipped between two sampled rows (1 = every row).
    pub fn row_stride(&self) -> usize {
        (1.0 / self.row_sample_rate).round().max(1.0) as usize
    }

    pub fn bucket_secs(&self) -> u64 {
        self.window_secs / u64::from(self.buckets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        MonitorConfig::default().validate().expect("defaults");
        let mut c = MonitorConfig::default();
        c.drift.row_sample_rate = 0.0;
        assert!(c
            .validate()
            .expect_err("must fail")
            .contains("row_sample_rate"));
        let mut c = MonitorConfig::default();
        c.feature_log.enabled = true;
        assert!(c
            .validate()
            .expect_err("must fail")
            .contains("feature_log.dir"));
        let mut c = MonitorConfig::default();
        c.feature_log.sample_rate = 1.5;
        assert!(c.validate().expect_err("must fail").contains("sample_rate"));
        assert_eq!(DriftConfig::default().row_stride(), 32);
        assert_eq!(DriftConfig::default().bucket_secs(), 300);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml_like(r#"{"drift": {"window": 10}}"#);
        assert!(err.contains("unknown field `window`"), "{err}");
    }

    fn toml_like(json: &str) -> String {
        serde_json::from_str::<MonitorConfig>(json)
            .expect_err("must fail")
            .to_string()
    }
}

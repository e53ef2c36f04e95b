use serde::Deserialize;

/// `[serving]` in the config file (docs/configuration.md).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServingConfig {
    /// The model for requests without `model` when several are loaded.
    pub default_model: Option<String>,
    /// Budget for requests without `timeout_ms`.
    pub default_timeout_ms: u64,
    /// Larger `timeout_ms` values are clamped to this.
    pub max_timeout_ms: u64,
    /// Requests with more hits are refused (400).
    pub max_hits: usize,
    /// Requests scored at once on the blocking pool; 0 = one per CPU core.
    pub scoring_threads: usize,
    /// Entries of the item cache (unknown ids included).
    pub item_cache_capacity: u64,
}

impl Default for ServingConfig {
    fn default() -> Self {
        ServingConfig {
            default_model: None,
            default_timeout_ms: 1000,
            max_timeout_ms: 10_000,
            max_hits: 10_000,
            scoring_threads: 0,
            item_cache_capacity: 1_000_000,
        }
    }
}

impl ServingConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_timeout_ms == 0 {
            return Err("serving.max_timeout_ms must be at least 1".into());
        }
        if self.default_timeout_ms == 0 || self.default_timeout_ms > self.max_timeout_ms {
            return Err(format!(
                "serving.default_timeout_ms must be in 1..={} (serving.max_timeout_ms)",
                self.max_timeout_ms
            ));
        }
        if self.max_hits == 0 {
            return Err("serving.max_hits must be at least 1".into());
        }
        if self.item_cache_capacity == 0 {
            return Err("serving.item_cache_capacity must be at least 1".into());
        }
        Ok(())
    }

    pub fn effective_scoring_threads(&self) -> usize {
        if self.scoring_threads > 0 {
            self.scoring_threads
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }
}

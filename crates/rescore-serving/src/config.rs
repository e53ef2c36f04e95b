use std::collections::BTreeMap;

use rescore_model::EnginePreference;
use serde::Deserialize;

/// Engine choice in the config file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineChoice {
    /// The native evaluator when its load-time self-check passes, else lightgbm3.
    #[default]
    Native,
    /// Always LightGBM's C API.
    Lightgbm3,
}

impl From<EngineChoice> for EnginePreference {
    fn from(c: EngineChoice) -> Self {
        match c {
            EngineChoice::Native => EnginePreference::Auto,
            EngineChoice::Lightgbm3 => EnginePreference::LightGbm,
        }
    }
}

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
    /// Refuse at once a request that cannot be scored within its budget (ADR 0002). Off by
    /// default: the first measurement (docs/reliability.md) showed no benefit yet.
    pub admission_control: bool,
    /// Largest share of a request's hits whose item the store failed to read (Redis error or
    /// timeout, embedded read error; unknown ids do not count) that is still scored with those
    /// items' features missing; above it the request gets the baseline with
    /// `fallback: "feature_store"`. 1.0 = always score.
    pub max_store_failure_share: f64,
    /// Entries of the item cache (unknown ids included).
    pub item_cache_capacity: u64,
    /// Engine for models without an entry in `engines`.
    pub default_engine: EngineChoice,
    /// Engine per model name, e.g. `{ marketplace = "lightgbm3" }`.
    pub engines: BTreeMap<String, EngineChoice>,
    /// `[serving.shadow]`: shadow scoring queue, threads and comparison log.
    pub shadow: crate::shadow::ShadowConfig,
    /// `[serving.reload]`: what triggers a reload besides SIGHUP and the admin API.
    pub reload: ReloadConfig,
}

/// `[serving.reload]` in the config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadConfig {
    /// Reload when files under `--models` or the routing file change.
    pub watch: bool,
    /// Changes are gathered for this long before one reload (an upload writes several files).
    pub debounce_ms: u64,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            watch: true,
            debounce_ms: 500,
        }
    }
}

impl Default for ServingConfig {
    fn default() -> Self {
        ServingConfig {
            default_model: None,
            default_timeout_ms: 1000,
            max_timeout_ms: 10_000,
            max_hits: 10_000,
            scoring_threads: 0,
            admission_control: false,
            max_store_failure_share: 0.1,
            item_cache_capacity: 1_000_000,
            default_engine: EngineChoice::Native,
            engines: BTreeMap::new(),
            shadow: Default::default(),
            reload: Default::default(),
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
        if self.scoring_threads > 4096 {
            return Err("serving.scoring_threads must be at most 4096 (0 = one per core)".into());
        }
        if self.max_hits == 0 {
            return Err("serving.max_hits must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.max_store_failure_share) {
            return Err("serving.max_store_failure_share must be in 0.0..=1.0".into());
        }
        if self.item_cache_capacity == 0 {
            return Err("serving.item_cache_capacity must be at least 1".into());
        }
        if !(10..=60_000).contains(&self.reload.debounce_ms) {
            return Err("serving.reload.debounce_ms must be in 10..=60000".into());
        }
        self.shadow.validate()
    }

    pub fn engine_for(&self, model: &str) -> EnginePreference {
        self.engines
            .get(model)
            .copied()
            .unwrap_or(self.default_engine)
            .into()
    }

    pub fn effective_scoring_threads(&self) -> usize {
        if self.scoring_threads > 0 {
            self.scoring_threads
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/configuration.md: the `[serving]` key table and the example's `[serving]` section.
    fn documented() -> (Vec<String>, String) {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let text = std::fs::read_to_string(path).expect("docs/configuration.md");
        let table = text
            .split("### `[serving]`")
            .nth(1)
            .and_then(|t| t.split("\n### ").next())
            .expect("[serving] table");
        let keys = table
            .lines()
            .filter(|l| !l.contains("**Deprecated"))
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .map(str::to_string)
            .collect();
        let example = text
            .split("```toml")
            .nth(1)
            .and_then(|b| b.split("\n[serving]\n").nth(1))
            .and_then(|s| s.split("\n[").next())
            .expect("[serving] in the example");
        (keys, example.to_string())
    }

    #[test]
    fn documented_serving_keys_parse_and_match_the_defaults() {
        let (keys, example) = documented();
        assert!(keys.len() >= 9, "{keys:?}");
        for key in &keys {
            assert!(
                example.contains(&format!("\n{key} = "))
                    || example.contains(&format!("# {key} = ")),
                "`{key}` of the [serving] table is missing from the example"
            );
        }
        let parsed: ServingConfig = toml::from_str(&example).expect("example [serving] parses");
        parsed.validate().expect("example [serving] is valid");
        let defaults = ServingConfig::default();
        assert_eq!(
            parsed.max_store_failure_share,
            defaults.max_store_failure_share
        );
        assert_eq!(parsed.admission_control, defaults.admission_control);
    }

    #[test]
    fn store_failure_share_is_validated() {
        for bad in [-0.1, 1.5, f64::NAN] {
            let config = ServingConfig {
                max_store_failure_share: bad,
                ..ServingConfig::default()
            };
            let error = config.validate().expect_err("out of range");
            assert!(error.contains("max_store_failure_share"), "{error}");
        }
    }
}

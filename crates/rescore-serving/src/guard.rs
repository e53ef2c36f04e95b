//! The gamed-listing guard (ADR 0011): after scoring, a hit the model lifted far above its
//! first-pass rank and whose item suspicion (computed off the request path, see
//! `rescore_features::suspicion`) is at or above a threshold is flagged; with policy `cap` its
//! score is limited to a constant of the model version, the same on every shard.

use rescore_api::{GuardPolicy, RescoreRequest};
use rescore_features::suspicion::{Rule, HBOS_RULE, RULES_COLUMN, SUSPICION_COLUMN};
use rescore_features::RequestItems;
use serde::Deserialize;

/// Hits the guard flagged, by model, version and rule (docs/metrics.md).
pub const GUARD_FLAGGED: &str = "rescore_guard_flagged_total";

/// Registers the guard's help text.
pub fn describe_guard_metrics() {
    metrics::describe_counter!(
        GUARD_FLAGGED,
        "Hits the gamed-listing guard flagged (lifted far above their first-pass rank with item suspicion over the threshold), by model, version and rule (hbos or a consistency rule); flagged hits are capped under policy cap."
    );
}

/// A version's guard: its config and its counters, one per rule label (made at load, so the
/// request path allocates nothing for them and the series exist at 0).
pub struct VersionGuard {
    pub config: GuardConfig,
    counters: Vec<(&'static str, metrics::Counter)>,
}

impl std::fmt::Debug for VersionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VersionGuard({:?})", self.config)
    }
}

impl VersionGuard {
    pub fn new(config: GuardConfig, model: &str, version: u64) -> Self {
        let labels = std::iter::once(HBOS_RULE).chain(Rule::ALL.iter().map(|r| r.as_str()));
        let counters = labels
            .map(|rule| {
                let c = metrics::counter!(GUARD_FLAGGED, "model" => model.to_string(),
                    "version" => version.to_string(), "rule" => rule);
                c.absolute(0);
                (rule, c)
            })
            .collect();
        VersionGuard { config, counters }
    }

    /// Runs the guard with the request's policy (its override, else the model's) and counts
    /// what it flagged.
    pub fn run(
        &self,
        request: &RescoreRequest,
        items: Option<&RequestItems>,
        scores: &mut [f64],
    ) -> GuardOutcome {
        let policy = request
            .guard
            .as_ref()
            .and_then(|g| g.policy)
            .unwrap_or(self.config.policy);
        let outcome = self.config.apply(policy, request, items, scores);
        for (_, rule, _) in &outcome.flagged {
            if let Some((_, c)) = self.counters.iter().find(|(r, _)| r == rule) {
                c.increment(1);
            }
        }
        outcome
    }
}

/// `[guard]` of a manifest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    pub policy: GuardPolicy,
    /// Suspicion at or above which a lifted hit is flagged (suspicion is in [0, 1]; a broken
    /// consistency rule makes it 1).
    pub threshold: f64,
    /// A hit counts as lifted when its model rank is at least this many places above its
    /// first-pass rank.
    pub min_rank_jump: usize,
    /// Only the model's top `top_k` hits are checked (per request, i.e. per shard): a hit
    /// further down is not shown, and checking fewer hits keeps the guard cheap.
    pub top_k: usize,
    /// The most a capped hit may score: a constant of the model version (e.g. a quantile of its
    /// scores on the reference data), so that shards cap alike. Required by policy `cap`.
    pub cap_score: Option<f64>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            policy: GuardPolicy::Off,
            threshold: 0.99,
            min_rank_jump: 10,
            top_k: 20,
            cap_score: None,
        }
    }
}

impl GuardConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(format!(
                "guard.threshold: {} is not within (0, 1]",
                self.threshold
            ));
        }
        if self.min_rank_jump == 0 {
            return Err("guard.min_rank_jump: must be at least 1".into());
        }
        if self.top_k == 0 {
            return Err("guard.top_k: must be at least 1".into());
        }
        if let Some(c) = self.cap_score {
            if !c.is_finite() {
                return Err("guard.cap_score: must be a finite number".into());
            }
        }
        if self.policy == GuardPolicy::Cap && self.cap_score.is_none() {
            return Err("guard.policy = \"cap\" needs guard.cap_score".into());
        }
        Ok(())
    }
}

/// What the guard did to one request.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct GuardOutcome {
    /// Per flagged hit: its index, the rule label, and whether its score was capped.
    pub flagged: Vec<(usize, &'static str, bool)>,
}

impl GuardOutcome {
    /// The response's `flags`: one list per hit (empty when not flagged).
    pub fn per_hit(&self, hits: usize) -> Vec<Vec<String>> {
        let mut flags = vec![Vec::new(); hits];
        for &(i, rule, capped) in &self.flagged {
            flags[i].push(rule.to_string());
            if capped {
                flags[i].push("capped".to_string());
            }
        }
        flags
    }
}

/// Sort key of a score: ascending key = descending score, a total order like
/// `f64::total_cmp` (integer compares are cheaper); ties are broken by position.
fn descending_key(score: f64) -> u64 {
    let bits = score.to_bits();
    let ascending = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    !ascending
}

/// A hit's suspicion: its inline `suspicion` feature, else the item store's column. The rule
/// bits are read only when asked (for a hit over the threshold).
fn suspicion_of(
    request: &RescoreRequest,
    items: Option<&RequestItems>,
    columns: (Option<u32>, Option<u32>),
    i: usize,
    threshold: f64,
) -> Option<u32> {
    let hit = &request.hits[i];
    let over = |s: f64| s >= threshold;
    if let Some(s) = hit.features.get(SUSPICION_COLUMN) {
        if !over((*s)?) {
            return None;
        }
        let rules = hit.features.get(RULES_COLUMN).copied().flatten();
        return Some(rules.unwrap_or(0.0) as u32);
    }
    let record = items?.get(&hit.id)?;
    if !over(record.value(columns.0?)?) {
        return None;
    }
    Some(columns.1.and_then(|c| record.value(c)).unwrap_or(0.0) as u32)
}

impl GuardConfig {
    /// Flags (and with `cap`, caps) the request's lifted suspicious hits in `scores`. Only
    /// lifted hits are looked up, so most requests read no item at all.
    pub fn apply(
        &self,
        policy: GuardPolicy,
        request: &RescoreRequest,
        items: Option<&RequestItems>,
        scores: &mut [f64],
    ) -> GuardOutcome {
        let mut outcome = GuardOutcome::default();
        let n = scores.len();
        if policy == GuardPolicy::Off || n <= self.min_rank_jump {
            return outcome;
        }
        // The model's top `top_k`, in rank order: one selection and a sort of k, not of n.
        let k = self.top_k.min(n);
        let mut order: Vec<(u64, u32)> = scores
            .iter()
            .enumerate()
            .map(|(i, s)| (descending_key(*s), i as u32))
            .collect();
        if k < n {
            order.select_nth_unstable(k - 1);
        }
        order.truncate(k);
        order.sort_unstable();
        let columns = items.map_or((None, None), |items| {
            let c = items.columns();
            (c.column(SUSPICION_COLUMN), c.column(RULES_COLUMN))
        });
        let cap = self.cap_score.filter(|_| policy == GuardPolicy::Cap);
        let hits = &request.hits;
        for (model_rank, &(_, i)) in order.iter().enumerate() {
            let i = i as usize;
            // Suspicion first: most hits are not suspicious, and then their first pass is moot.
            let Some(rules) = suspicion_of(request, items, columns, i, self.threshold) else {
                continue;
            };
            let key = (descending_key(hits[i].score), i);
            let first_pass_rank = hits
                .iter()
                .enumerate()
                .filter(|(j, h)| (descending_key(h.score), *j) < key)
                .count();
            if first_pass_rank.saturating_sub(model_rank) < self.min_rank_jump {
                continue;
            }
            let rule = Rule::first_in(rules).map_or(HBOS_RULE, Rule::as_str);
            let capped = match cap {
                Some(c) if scores[i] > c => {
                    scores[i] = c;
                    true
                }
                _ => false,
            };
            outcome.flagged.push((i, rule, capped));
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rescore_api::Hit;

    fn request(suspicion: &[(usize, f64, f64)]) -> RescoreRequest {
        RescoreRequest {
            hits: (0..30)
                .map(|i| {
                    let mut features = rescore_api::FeatureMap::new();
                    if let Some((_, s, r)) = suspicion.iter().find(|(k, _, _)| *k == i) {
                        features.insert(SUSPICION_COLUMN.into(), Some(*s));
                        features.insert(RULES_COLUMN.into(), Some(*r));
                    }
                    Hit {
                        id: format!("h{i}"),
                        score: 100.0 - i as f64,
                        features,
                    }
                })
                .collect(),
            ..Default::default()
        }
    }

    fn guard(policy: GuardPolicy) -> GuardConfig {
        GuardConfig {
            policy,
            threshold: 0.95,
            min_rank_jump: 10,
            top_k: 20,
            cap_score: Some(0.5),
        }
    }

    /// Model scores: hit 25 jumps to the top (suspicious), hit 20 to 2nd (honest), hit 28 to
    /// 3rd (suspicious by a rule), hit 3 stays where it is (suspicious, not lifted).
    fn scores() -> Vec<f64> {
        let mut s: Vec<f64> = (0..30).map(|i| -(i as f64) / 100.0).collect();
        s[25] = 2.0;
        s[20] = 1.5;
        s[28] = 1.0;
        s
    }

    fn suspicious() -> RescoreRequest {
        request(&[
            (25, 0.97, 0.0),
            (20, 0.5, 0.0),
            (28, 1.0, 2.0),
            (3, 1.0, 1.0),
        ])
    }

    #[test]
    fn off_leaves_scores_alone_and_flags_nothing() {
        let mut s = scores();
        let out = guard(GuardPolicy::Off).apply(GuardPolicy::Off, &suspicious(), None, &mut s);
        assert!(out.flagged.is_empty());
        assert_eq!(s, scores());
    }

    #[test]
    fn flag_names_lifted_suspicious_hits_without_changing_scores() {
        let mut s = scores();
        let out = guard(GuardPolicy::Flag).apply(GuardPolicy::Flag, &suspicious(), None, &mut s);
        assert_eq!(
            out.flagged,
            vec![(25, HBOS_RULE, false), (28, "price_below_category", false)]
        );
        assert_eq!(s, scores());
        let flags = out.per_hit(30);
        assert_eq!(flags[25], vec!["hbos".to_string()]);
        assert!(flags[20].is_empty() && flags[3].is_empty());
    }

    #[test]
    fn cap_limits_flagged_scores_to_the_version_constant() {
        let mut s = scores();
        let out = guard(GuardPolicy::Cap).apply(GuardPolicy::Cap, &suspicious(), None, &mut s);
        assert_eq!(
            out.flagged,
            vec![(25, HBOS_RULE, true), (28, "price_below_category", true)]
        );
        assert_eq!((s[25], s[28], s[20]), (0.5, 0.5, 1.5));
        assert_eq!(
            out.per_hit(30)[28],
            vec!["price_below_category".to_string(), "capped".to_string()]
        );
        // A flagged hit already below the cap keeps its score and is not reported capped.
        let mut s = scores();
        let low_cap = GuardConfig {
            cap_score: Some(5.0),
            ..guard(GuardPolicy::Cap)
        };
        let out = low_cap.apply(GuardPolicy::Cap, &suspicious(), None, &mut s);
        assert_eq!(out.flagged[0], (25, HBOS_RULE, false));
        assert_eq!(s, scores());
    }

    #[test]
    fn keys_order_like_total_cmp() {
        let scores = [0.5, -1.0, 3.0, -0.0, 0.0, f64::NEG_INFINITY, 1e-300, -2.5];
        for a in scores {
            for b in scores {
                assert_eq!(
                    descending_key(a).cmp(&descending_key(b)),
                    b.total_cmp(&a),
                    "{a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn only_the_models_top_k_is_checked() {
        let mut s = scores();
        let narrow = GuardConfig {
            top_k: 2,
            ..guard(GuardPolicy::Flag)
        };
        // Hit 28 is the model's third: outside a top 2.
        let out = narrow.apply(GuardPolicy::Flag, &suspicious(), None, &mut s);
        assert_eq!(out.flagged, vec![(25, HBOS_RULE, false)]);
    }

    #[test]
    fn config_is_validated() {
        let mut c = guard(GuardPolicy::Cap);
        c.cap_score = None;
        assert!(c.validate().expect_err("cap").contains("cap_score"));
        c = guard(GuardPolicy::Flag);
        c.threshold = 0.0;
        assert!(c.validate().expect_err("t").contains("threshold"));
        assert!(guard(GuardPolicy::Cap).validate().is_ok());
    }
}

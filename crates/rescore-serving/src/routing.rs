//! The routing file (TOML, hot-reloaded; docs/operations.md): per model, the pinned live
//! version, an A/B experiment over other versions, shadow versions, and rules that send a
//! requested name to another model by request context. Without a file (or a model's section)
//! the highest version that loads is live.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rescore_api::RescoreRequest;
use serde::{Deserialize, Serialize};

use crate::registry::Discovery;

/// The `variant` of responses scored by the live version (the experiment's control).
pub const LIVE_VARIANT: &str = "live";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingFile {
    /// The model for requests without `model` (overrides `serving.default_model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_model: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ModelRouting>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRouting {
    /// The live version; absent: the highest version that loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<u64>,
    /// Versions that score the same hits after the response, for comparison only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shadows: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<Experiment>,
    /// Evaluated in order for requests naming this model (or defaulting to it); the first
    /// rule whose conditions all hold sends the request to its `model` (one hop, no chains).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Mixed into the hash: a new salt reshuffles users, the same salt keeps them sticky.
    pub salt: String,
    #[serde(default)]
    pub key: SplitKey,
    pub variants: Vec<VariantDecl>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitKey {
    /// `query.user_id`
    #[default]
    UserId,
    /// `query.session_id`
    SessionId,
}

impl SplitKey {
    pub fn as_str(self) -> &'static str {
        match self {
            SplitKey::UserId => "user_id",
            SplitKey::SessionId => "session_id",
        }
    }

    fn of<H>(self, request: &RescoreRequest<H>) -> Option<&str> {
        let query = request.query.as_ref()?;
        match self {
            SplitKey::UserId => query.user_id.as_deref(),
            SplitKey::SessionId => query.session_id.as_deref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantDecl {
    /// Shown as the response's `variant` and as the `variant` metric label.
    pub name: String,
    pub version: u64,
    /// Fraction of keyed traffic in (0, 1]; the rest goes to the live version.
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `context` key → accepted values (a string or a list of strings).
    pub when: BTreeMap<String, OneOrMany>,
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn values(&self) -> Vec<String> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }

    fn contains(&self, value: &str) -> bool {
        match self {
            OneOrMany::One(v) => v == value,
            OneOrMany::Many(v) => v.iter().any(|v| v == value),
        }
    }
}

impl Rule {
    pub fn matches<H>(&self, request: &RescoreRequest<H>) -> bool {
        self.when.iter().all(|(key, accepted)| {
            request
                .context
                .get(key)
                .is_some_and(|value| accepted.contains(value))
        })
    }
}

/// Shares are compared with this slack so that e.g. 0.1 + 0.2 + 0.7 is accepted.
const SHARE_EPSILON: f64 = 1e-9;

impl RoutingFile {
    /// Reads the file; a missing file is `Ok(None)` (defaults apply).
    pub fn read(path: &Path) -> Result<Option<Self>, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map(Some)
                .map_err(|e| format!("routing file {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("routing file {}: {e}", path.display())),
        }
    }

    /// Writes the file atomically (a temporary file in the same directory, then a rename), so
    /// that a watcher or a crash never sees half a file.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = toml::to_string_pretty(self)
            .map_err(|e| format!("cannot serialise the routing: {e}"))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("routing file {}: not a file path", path.display()))?;
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        let header =
            "# Written by rescore-sidecar's admin API (docs/operations.md); edits are welcome.\n";
        std::fs::write(&tmp, format!("{header}{text}"))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot write the routing file {}: {e}", path.display()))
    }

    /// Every problem against what `--models` holds, each naming where it is.
    pub fn validate(&self, discovery: &Discovery) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let versions_of = |name: &str| -> Option<BTreeSet<u64>> {
            discovery
                .models
                .get(name)
                .map(|v| v.iter().map(|(version, _)| *version).collect())
        };
        if let Some(name) = &self.default_model {
            if versions_of(name).is_none() {
                errors.push(format!(
                    "default_model: `{name}` is not among the models found under --models"
                ));
            }
        }
        for (name, routing) in &self.models {
            let at = format!("models.{name}");
            let Some(versions) = versions_of(name) else {
                errors.push(format!(
                    "{at}: `{name}` is not among the models found under --models"
                ));
                continue;
            };
            let mut check_version = |what: String, v: u64| {
                if !versions.contains(&v) {
                    errors.push(format!(
                        "{at}.{what}: version {v} is not under --models/{name}/"
                    ));
                }
            };
            if let Some(live) = routing.live {
                check_version("live".into(), live);
            }
            for (i, v) in routing.shadows.iter().enumerate() {
                check_version(format!("shadows[{i}]"), *v);
            }
            if let Some(exp) = &routing.experiment {
                for (i, variant) in exp.variants.iter().enumerate() {
                    check_version(format!("experiment.variants[{i}].version"), variant.version);
                }
                errors.extend(exp.validate(&format!("{at}.experiment")));
            }
            for (i, rule) in routing.rules.iter().enumerate() {
                if rule.when.is_empty() {
                    errors.push(format!(
                        "{at}.rules[{i}].when: needs at least one condition"
                    ));
                }
                if rule
                    .when
                    .values()
                    .any(|v| matches!(v, OneOrMany::Many(list) if list.is_empty()))
                {
                    errors.push(format!(
                        "{at}.rules[{i}].when: an empty list matches nothing"
                    ));
                }
                if rule.model == *name {
                    errors.push(format!(
                        "{at}.rules[{i}].model: a rule cannot send `{name}` to itself"
                    ));
                } else if versions_of(&rule.model).is_none() {
                    errors.push(format!(
                        "{at}.rules[{i}].model: `{}` is not among the models found under --models",
                        rule.model
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    pub fn model(&self, name: &str) -> Option<&ModelRouting> {
        self.models.get(name)
    }
}

impl Experiment {
    fn validate(&self, at: &str) -> Vec<String> {
        let mut errors = Vec::new();
        if self.salt.trim().is_empty() {
            errors.push(format!("{at}.salt: must not be empty"));
        }
        if self.variants.is_empty() {
            errors.push(format!("{at}.variants: needs at least one variant"));
        }
        let mut names = BTreeSet::new();
        let mut total = 0.0;
        for (i, v) in self.variants.iter().enumerate() {
            let valid_name = !v.name.is_empty()
                && v.name.len() <= 64
                && v.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
            if !valid_name {
                errors.push(format!(
                    "{at}.variants[{i}].name: `{}` must be 1-64 characters of [A-Za-z0-9_.-] (it is a metric label)",
                    v.name
                ));
            }
            if v.name == LIVE_VARIANT {
                errors.push(format!(
                    "{at}.variants[{i}].name: `live` names the live version's traffic"
                ));
            }
            if !names.insert(v.name.as_str()) {
                errors.push(format!(
                    "{at}.variants[{i}].name: `{}` is used twice",
                    v.name
                ));
            }
            if !(v.share.is_finite() && v.share > 0.0 && v.share <= 1.0) {
                errors.push(format!(
                    "{at}.variants[{i}].share: {} is not in (0, 1]",
                    v.share
                ));
            } else {
                total += v.share;
            }
        }
        if total > 1.0 + SHARE_EPSILON {
            errors.push(format!(
                "{at}.variants: shares add up to {total}, more than 1"
            ));
        }
        errors
    }
}

/// A user's position in `[0, 1)` for an experiment: XXH3-64 of `salt`, a 0x1F separator and
/// the key, top 53 bits as a fraction. Stable across processes, nodes and releases.
pub fn bucket(salt: &str, key: &str) -> f64 {
    let mut bytes = Vec::with_capacity(salt.len() + 1 + key.len());
    bytes.extend_from_slice(salt.as_bytes());
    bytes.push(0x1F);
    bytes.extend_from_slice(key.as_bytes());
    let hash = xxhash_rust::xxh3::xxh3_64(&bytes);
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// Which arm a request falls in: `Some(i)` for `variants[i]`, `None` for the live version
/// (no key in the request, or a bucket beyond the variants' shares). Variants hold
/// consecutive ranges from 0, so raising one share only moves users from live into it.
pub fn assign<H>(experiment: &Experiment, request: &RescoreRequest<H>) -> Option<usize> {
    let key = experiment.key.of(request)?;
    let b = bucket(&experiment.salt, key);
    let mut upper = 0.0;
    for (i, v) in experiment.variants.iter().enumerate() {
        upper += v.share;
        if b < upper {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rescore_api::{Hit, QueryContext};

    fn experiment(shares: &[f64]) -> Experiment {
        Experiment {
            salt: "exp-2026-11".into(),
            key: SplitKey::UserId,
            variants: shares
                .iter()
                .enumerate()
                .map(|(i, &share)| VariantDecl {
                    name: format!("v{i}"),
                    version: i as u64 + 2,
                    share,
                })
                .collect(),
        }
    }

    fn request_for(user: &str) -> RescoreRequest {
        RescoreRequest {
            query: Some(QueryContext {
                user_id: Some(user.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn shares_hold_within_one_percent_over_100k_users_and_assignment_is_sticky() {
        let exp = experiment(&[0.10, 0.25]);
        let mut counts = [0usize; 3];
        for u in 0..100_000 {
            let user = format!("user-{u}");
            let arm = assign(&exp, &request_for(&user));
            // Sticky: the same user lands in the same arm every time.
            assert_eq!(arm, assign(&exp, &request_for(&user)));
            counts[arm.map_or(2, |i| i)] += 1;
        }
        let observed: Vec<f64> = counts.iter().map(|&c| c as f64 / 100_000.0).collect();
        for (got, want) in observed.iter().zip([0.10, 0.25, 0.65]) {
            assert!((got - want).abs() < 0.01, "observed {observed:?}");
        }
    }

    #[test]
    fn raising_a_share_only_moves_users_from_live() {
        let before = experiment(&[0.10]);
        let after = experiment(&[0.20]);
        for u in 0..20_000 {
            let r = request_for(&format!("u{u}"));
            if assign(&before, &r) == Some(0) {
                assert_eq!(assign(&after, &r), Some(0));
            }
        }
    }

    #[test]
    fn another_salt_reshuffles_and_requests_without_a_key_go_live() {
        let a = experiment(&[0.5]);
        let mut b = a.clone();
        b.salt = "another".into();
        let moved = (0..10_000)
            .filter(|u| {
                let r = request_for(&format!("u{u}"));
                assign(&a, &r) != assign(&b, &r)
            })
            .count();
        assert!((4_000..6_000).contains(&moved), "{moved}");
        assert_eq!(assign(&a, &RescoreRequest::<Hit>::default()), None);
        let mut by_session = a.clone();
        by_session.key = SplitKey::SessionId;
        assert_eq!(assign(&by_session, &request_for("u1")), None);
    }

    #[test]
    fn the_bucket_function_is_pinned() {
        // Changing the hash would silently move every user of every running experiment.
        assert_eq!(bucket("salt", "u42"), bucket("salt", "u42"));
        let pinned = bucket("exp-2026-11", "user-1");
        assert!((0.0..1.0).contains(&pinned));
        assert_eq!(
            format!("{pinned:.12}"),
            format!(
                "{:.12}",
                (xxhash_rust::xxh3::xxh3_64(b"exp-2026-11\x1fuser-1") >> 11) as f64
                    / 9007199254740992.0
            )
        );
    }

    #[test]
    fn validation_names_each_problem() {
        let mut discovery = Discovery::default();
        discovery
            .models
            .insert("m".into(), vec![(1, "/x/m/1".into()), (2, "/x/m/2".into())]);
        let text = r#"
            default_model = "nope"
            [models.m]
            live = 3
            shadows = [2, 9]
            rules = [{ when = { index = "cars" }, model = "other" }, { when = {}, model = "m" }]
            [models.m.experiment]
            salt = ""
            variants = [{ name = "live", version = 2, share = 0.7 }, { name = "b c", version = 2, share = 0.5 }]
            [models.ghost]
        "#;
        let routing: RoutingFile = toml::from_str(text).expect("parses");
        let errors = routing.validate(&discovery).expect_err("invalid");
        let all = errors.join("\n");
        for needle in [
            "default_model: `nope`",
            "models.m.live: version 3",
            "models.m.shadows[1]: version 9",
            "models.m.experiment.salt",
            "models.m.experiment.variants[0].name: `live`",
            "models.m.experiment.variants[1].name: `b c`",
            "shares add up to 1.2",
            "models.m.rules[0].model: `other`",
            "models.m.rules[1].when",
            "models.m.rules[1].model: a rule cannot send `m` to itself",
            "models.ghost: `ghost`",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
        assert!(toml::from_str::<RoutingFile>("[models.m]\nlive = 1\ntypo = 2").is_err());
        let ok: RoutingFile = toml::from_str(
            "[models.m]\nlive = 1\n[models.m.experiment]\nsalt = \"s\"\nvariants = [{ name = \"v2\", version = 2, share = 0.1 }]",
        )
        .expect("parses");
        ok.validate(&discovery).expect("valid");
        // The admin API writes what it read: a round trip keeps the meaning.
        let back: RoutingFile =
            toml::from_str(&toml::to_string_pretty(&ok).expect("serialises")).expect("parses");
        assert_eq!(back, ok);
    }

    #[test]
    fn rules_match_all_conditions() {
        let rule: Rule = toml::from_str(
            "model = \"cars\"\nwhen = { index = \"listings\", category = [\"cars\", \"vans\"] }",
        )
        .expect("parses");
        let mut r: RescoreRequest = RescoreRequest::default();
        r.context.insert("index".into(), "listings".into());
        assert!(!rule.matches(&r));
        r.context.insert("category".into(), "vans".into());
        assert!(rule.matches(&r));
        r.context.insert("category".into(), "toys".into());
        assert!(!rule.matches(&r));
    }
}

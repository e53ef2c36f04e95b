//! Per-model feature specification: for each feature of the model (in model order), where its
//! value comes from. Declared in `manifest.toml` under `[features.<name>]`; a feature that is
//! not declared resolves through the contract's order (hit → item store → query → missing).
//! This is the declaration, checked at load; `assemble` evaluates it per request.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The hit's `features` → the item store → the query's `features`.
    #[default]
    Auto,
    /// The hit's inline `features` only.
    Hit,
    /// The item store only.
    Item,
    /// The query's `features` only.
    Query,
    /// The hit's incoming first-pass score (e.g. BM25).
    HitScore,
    /// Number of whitespace-separated tokens in `query.text`.
    QueryTokens,
    /// 1.0 if both `args` are equal, 0.0 if not.
    Eq,
    /// `args[0] / args[1]`; missing when the divisor is 0.
    Ratio,
    /// `|args[0] - args[1]|`.
    AbsDiff,
    /// `ln(1 + input)`; missing when input <= -1.
    Log1p,
    /// `(now - input) / unit`: the age of a timestamp (seconds since the Unix epoch).
    Age,
    /// A string of the request mapped to an integer id through `mapping`.
    Categorical,
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SourceKind::Auto => "auto",
            SourceKind::Hit => "hit",
            SourceKind::Item => "item",
            SourceKind::Query => "query",
            SourceKind::HitScore => "hit_score",
            SourceKind::QueryTokens => "query_tokens",
            SourceKind::Eq => "eq",
            SourceKind::Ratio => "ratio",
            SourceKind::AbsDiff => "abs_diff",
            SourceKind::Log1p => "log1p",
            SourceKind::Age => "age",
            SourceKind::Categorical => "categorical",
        })
    }
}

impl SourceKind {
    fn is_binary(self) -> bool {
        matches!(
            self,
            SourceKind::Eq | SourceKind::Ratio | SourceKind::AbsDiff
        )
    }
    fn reads_key(self) -> bool {
        matches!(
            self,
            SourceKind::Auto | SourceKind::Hit | SourceKind::Item | SourceKind::Query
        )
    }
    fn reads_input(self) -> bool {
        matches!(
            self,
            SourceKind::Log1p | SourceKind::Age | SourceKind::Categorical
        )
    }
}

/// Unit of an `age` feature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgeUnit {
    Seconds,
    Minutes,
    Hours,
    #[default]
    Days,
}

impl AgeUnit {
    fn seconds(self) -> f64 {
        match self {
            AgeUnit::Seconds => 1.0,
            AgeUnit::Minutes => 60.0,
            AgeUnit::Hours => 3600.0,
            AgeUnit::Days => 86_400.0,
        }
    }
}

/// One `[features.<name>]` table of a manifest.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureDecl {
    #[serde(default)]
    pub source: SourceKind,
    /// For `auto`/`hit`/`item`/`query`: read this name instead of the feature's own.
    pub key: Option<String>,
    /// For `eq`/`ratio`/`abs_diff`: two names, each resolved through the `auto` order.
    pub args: Option<Vec<String>>,
    /// For `log1p`/`age`: a value reference (`hit_score`, `query_tokens`, `hit.<name>`,
    /// `item.<name>`, `query.<name>` or a bare name resolved hit → item → query); for
    /// `categorical`: a string of the request (`query.text`, `query.user_id`,
    /// `query.attributes.<name>`).
    pub input: Option<String>,
    /// For `age`: the output unit (default days).
    pub unit: Option<AgeUnit>,
    /// For `age`: a value reference holding "now" (seconds since the epoch); default: the
    /// sidecar's clock when the request is assembled.
    pub now: Option<String>,
    /// For `categorical`: string value → integer id.
    pub mapping: Option<BTreeMap<String, i64>>,
    /// For `categorical`: the id of a string not in `mapping` (default: missing).
    pub unknown: Option<i64>,
    /// Used when the source yields a missing value.
    pub default: Option<f64>,
    /// The seller sets this value (price, condition, popularity he can buy...): scored by the
    /// item suspicion HBOS (`[suspicion]`, docs/monitoring.md). Only for item-store sources.
    #[serde(default)]
    pub seller_controlled: bool,
}

impl FeatureDecl {
    /// The item-store key a seller-controlled feature reads.
    fn item_key<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        matches!(self.source, SourceKind::Auto | SourceKind::Item)
            .then(|| self.key.as_deref().unwrap_or(name))
    }
}

/// The item-store keys of the features marked `seller_controlled`, in name order.
pub fn seller_controlled_keys(
    decls: &BTreeMap<String, FeatureDecl>,
) -> Result<Vec<String>, SpecError> {
    decls
        .iter()
        .filter(|(_, d)| d.seller_controlled)
        .map(|(name, d)| {
            d.item_key(name)
                .map(str::to_string)
                .ok_or_else(|| SpecError::Invalid {
                    feature: name.clone(),
                    problem: format!(
                        "`seller_controlled` needs an item-store source (auto or item), not `{}`",
                        d.source
                    ),
                })
        })
        .collect()
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("manifest declares feature `{0}`, which the model does not have")]
    UnknownFeature(String),
    #[error("feature `{feature}`: {problem}")]
    Invalid { feature: String, problem: String },
}

/// A number of the request or of the item store.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ValueRef {
    Auto(String),
    Hit(String),
    Item(String),
    Query(String),
    HitScore,
    QueryTokens,
}

impl ValueRef {
    fn parse(text: &str) -> Result<Self, String> {
        let named = |prefix: &str, rest: &str, make: fn(String) -> ValueRef| {
            if rest.is_empty() {
                Err(format!("`{text}`: no name after `{prefix}.`"))
            } else {
                Ok(make(rest.to_string()))
            }
        };
        match text.split_once('.') {
            None if text == "hit_score" => Ok(ValueRef::HitScore),
            None if text == "query_tokens" => Ok(ValueRef::QueryTokens),
            None if text.is_empty() => Err("an empty name".into()),
            None => Ok(ValueRef::Auto(text.to_string())),
            Some(("hit", rest)) => named("hit", rest, ValueRef::Hit),
            Some(("item", rest)) => named("item", rest, ValueRef::Item),
            Some(("query", rest)) => named("query", rest, ValueRef::Query),
            Some(_) => Err(format!(
                "unknown request field `{text}` (a value is `hit_score`, `query_tokens`, \
                 `hit.<name>`, `item.<name>`, `query.<name>` or a name without a dot)"
            )),
        }
    }

    pub(crate) fn item_key(&self) -> Option<&str> {
        match self {
            ValueRef::Auto(k) | ValueRef::Item(k) => Some(k),
            _ => None,
        }
    }
}

/// A string of the request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StringRef {
    QueryText,
    UserId,
    Attribute(String),
}

impl StringRef {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "query.text" => Ok(StringRef::QueryText),
            "query.user_id" => Ok(StringRef::UserId),
            _ => match text.strip_prefix("query.attributes.") {
                Some(name) if !name.is_empty() => Ok(StringRef::Attribute(name.to_string())),
                _ => Err(format!(
                    "unknown request field `{text}` (a categorical input is `query.text`, \
                     `query.user_id` or `query.attributes.<name>`)"
                )),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resolve {
    Value(ValueRef),
    Binary(SourceKind, String, String),
    Log1p(ValueRef),
    Age {
        input: ValueRef,
        now: Option<ValueRef>,
        unit_secs: f64,
    },
    Categorical {
        input: StringRef,
        mapping: HashMap<String, f64>,
        unknown: Option<f64>,
    },
}

impl Resolve {
    /// Item keys read by this source (at most two), for column resolution per request.
    pub(crate) fn item_keys(&self) -> [Option<&str>; 2] {
        match self {
            Resolve::Value(v) | Resolve::Log1p(v) => [v.item_key(), None],
            Resolve::Binary(_, a, b) => [Some(a), Some(b)],
            Resolve::Age { input, now, .. } => {
                [input.item_key(), now.as_ref().and_then(ValueRef::item_key)]
            }
            Resolve::Categorical { .. } => [None, None],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Slot {
    pub(crate) resolve: Resolve,
    pub(crate) default: Option<f64>,
}

/// How each of a model's features is filled, in model order.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSpec {
    names: Vec<String>,
    pub(crate) slots: Vec<Slot>,
    pub(crate) needs_items: bool,
}

/// The first string whose id differs between two mappings, for an error message.
fn first_difference(declared: &BTreeMap<String, i64>, model: &BTreeMap<String, i64>) -> String {
    let names: std::collections::BTreeSet<&String> = declared.keys().chain(model.keys()).collect();
    names
        .into_iter()
        .find_map(|k| match (declared.get(k), model.get(k)) {
            (a, b) if a == b => None,
            (Some(a), Some(b)) => Some(format!(": `{k}` is {a} in the manifest, {b} in the model")),
            (Some(a), None) => Some(format!(": `{k}` ({a}) is not a category of the model")),
            (None, Some(b)) => Some(format!(": the model's category `{k}` ({b}) is missing")),
            (None, None) => None,
        })
        .unwrap_or_default()
}

/// Largest categorical id: LightGBM reads categories as non-negative 32-bit integers.
const MAX_CATEGORY: i64 = i32::MAX as i64;

impl FeatureSpec {
    /// Builds the spec for a model's features from the manifest's declarations. Every
    /// problem names the feature and, for inputs, the field that cannot exist.
    pub fn new(
        feature_names: &[String],
        decls: &BTreeMap<String, FeatureDecl>,
    ) -> Result<Self, SpecError> {
        Self::with_model_categories(feature_names, decls, &BTreeMap::new())
    }

    /// Like [`Self::new`], for a model that carries its own category lists (LightGBM's
    /// `pandas_categorical`: feature name → its categories, in the model's order). A
    /// `categorical` feature with such a list maps a request string to its position in the
    /// list and an unlisted string to missing, as `predict(DataFrame)` does; its manifest
    /// `mapping` may be left out, and if given must be exactly that, and `unknown` is refused.
    pub fn with_model_categories(
        feature_names: &[String],
        decls: &BTreeMap<String, FeatureDecl>,
        model_categories: &BTreeMap<String, Vec<String>>,
    ) -> Result<Self, SpecError> {
        if let Some(unknown) = decls.keys().find(|k| !feature_names.contains(k)) {
            return Err(SpecError::UnknownFeature(unknown.clone()));
        }
        let mut slots = Vec::with_capacity(feature_names.len());
        for name in feature_names {
            let decl = decls.get(name).cloned().unwrap_or_default();
            let invalid = |problem: String| SpecError::Invalid {
                feature: name.clone(),
                problem,
            };
            let source = decl.source;
            if decl.seller_controlled && decl.item_key(name).is_none() {
                return Err(invalid(format!(
                    "`seller_controlled` needs an item-store source (auto or item), not `{source}`"
                )));
            }
            if let Some(d) = decl.default {
                if !d.is_finite() {
                    return Err(invalid(format!("default {d} is not a finite number")));
                }
            }
            let not_allowed =
                |field: &str| invalid(format!("`{field}` is not allowed with source `{source}`"));
            if decl.key.is_some() && !source.reads_key() {
                return Err(not_allowed("key"));
            }
            if decl.args.is_some() && !source.is_binary() {
                return Err(not_allowed("args"));
            }
            if decl.input.is_some() && !source.reads_input() {
                return Err(not_allowed("input"));
            }
            if (decl.unit.is_some() || decl.now.is_some()) && source != SourceKind::Age {
                return Err(not_allowed(if decl.unit.is_some() {
                    "unit"
                } else {
                    "now"
                }));
            }
            if (decl.mapping.is_some() || decl.unknown.is_some())
                && source != SourceKind::Categorical
            {
                return Err(not_allowed(if decl.mapping.is_some() {
                    "mapping"
                } else {
                    "unknown"
                }));
            }
            let input = || -> Result<&str, SpecError> {
                decl.input.as_deref().ok_or_else(|| {
                    invalid(format!(
                        "source `{source}` needs `input`: the value it transforms"
                    ))
                })
            };
            let key = decl.key.clone().unwrap_or_else(|| name.clone());
            let resolve = match source {
                SourceKind::Auto => Resolve::Value(ValueRef::Auto(key)),
                SourceKind::Hit => Resolve::Value(ValueRef::Hit(key)),
                SourceKind::Item => Resolve::Value(ValueRef::Item(key)),
                SourceKind::Query => Resolve::Value(ValueRef::Query(key)),
                SourceKind::HitScore => Resolve::Value(ValueRef::HitScore),
                SourceKind::QueryTokens => Resolve::Value(ValueRef::QueryTokens),
                kind @ (SourceKind::Eq | SourceKind::Ratio | SourceKind::AbsDiff) => {
                    match decl.args.as_deref() {
                        Some([a, b]) => Resolve::Binary(kind, a.clone(), b.clone()),
                        _ => {
                            return Err(invalid(format!(
                                "source `{kind}` needs `args` with exactly two names"
                            )))
                        }
                    }
                }
                SourceKind::Log1p => Resolve::Log1p(
                    ValueRef::parse(input()?).map_err(|p| invalid(format!("input: {p}")))?,
                ),
                SourceKind::Age => Resolve::Age {
                    input: ValueRef::parse(input()?).map_err(|p| invalid(format!("input: {p}")))?,
                    now: decl
                        .now
                        .as_deref()
                        .map(ValueRef::parse)
                        .transpose()
                        .map_err(|p| invalid(format!("now: {p}")))?,
                    unit_secs: decl.unit.unwrap_or_default().seconds(),
                },
                SourceKind::Categorical => {
                    let input =
                        StringRef::parse(input()?).map_err(|p| invalid(format!("input: {p}")))?;
                    let from_model: Option<BTreeMap<String, i64>> =
                        model_categories.get(name).map(|list| {
                            list.iter()
                                .enumerate()
                                .map(|(i, c)| (c.clone(), i as i64))
                                .collect()
                        });
                    if let Some(model_mapping) = &from_model {
                        if decl.unknown.is_some() {
                            return Err(invalid(
                                "`unknown` is not allowed: the model's pandas categories map a string they do not list to missing, as LightGBM's predict(DataFrame)".into(),
                            ));
                        }
                        if let Some(declared) = &decl.mapping {
                            if declared != model_mapping {
                                return Err(invalid(format!(
                                    "`mapping` differs from the model's pandas categories {:?} (id = position in that list, as LightGBM's predict(DataFrame) codes them){}; leave `mapping` out to use the model's",
                                    model_categories[name],
                                    first_difference(declared, model_mapping)
                                )));
                            }
                        }
                    }
                    let Some(mapping) = from_model
                        .as_ref()
                        .or(decl.mapping.as_ref())
                        .filter(|m| !m.is_empty())
                    else {
                        return Err(invalid(
                            "source `categorical` needs a non-empty `mapping` (string → integer id)".into(),
                        ));
                    };
                    let check = |what: &str, id: i64| {
                        if (0..=MAX_CATEGORY).contains(&id) {
                            Ok(id as f64)
                        } else {
                            Err(invalid(format!(
                                "{what}: id {id} is outside 0..={MAX_CATEGORY}"
                            )))
                        }
                    };
                    Resolve::Categorical {
                        input,
                        mapping: mapping
                            .iter()
                            .map(|(k, v)| Ok((k.clone(), check(&format!("mapping.{k}"), *v)?)))
                            .collect::<Result<_, SpecError>>()?,
                        unknown: decl.unknown.map(|u| check("unknown", u)).transpose()?,
                    }
                }
            };
            slots.push(Slot {
                resolve,
                default: decl.default,
            });
        }
        let needs_items = slots
            .iter()
            .any(|s| s.resolve.item_keys().iter().any(Option::is_some));
        Ok(FeatureSpec {
            names: feature_names.to_vec(),
            slots,
            needs_items,
        })
    }

    pub fn feature_names(&self) -> &[String] {
        &self.names
    }

    /// Whether any feature reads the item store (else requests skip item lookups).
    pub fn needs_items(&self) -> bool {
        self.needs_items
    }

    /// Per feature, whether its declared source gives every hit of a request the same value
    /// (`query`, `query_tokens`, `categorical`, and `log1p`/`age` of such a value): drift
    /// monitoring counts these once per request. An `auto` feature is per hit even when a
    /// request fills it from the query (a hit or the item may carry it).
    pub fn per_request(&self) -> Vec<bool> {
        let of_request = |v: &ValueRef| matches!(v, ValueRef::Query(_) | ValueRef::QueryTokens);
        self.slots
            .iter()
            .map(|slot| match &slot.resolve {
                Resolve::Value(v) | Resolve::Log1p(v) => of_request(v),
                Resolve::Age { input, now, .. } => {
                    of_request(input) && now.as_ref().is_none_or(of_request)
                }
                Resolve::Categorical { .. } => true,
                Resolve::Binary(..) => false,
            })
            .collect()
    }

    /// Per feature, the name of the hit's inline feature that fills it when the hit carries
    /// a value for it (`auto` and `hit` sources); `None` for the other sources.
    pub fn hit_keys(&self) -> Vec<Option<&str>> {
        self.slots
            .iter()
            .map(|slot| match &slot.resolve {
                Resolve::Value(ValueRef::Auto(key) | ValueRef::Hit(key)) => Some(key.as_str()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    pub(crate) fn decls(text: &str) -> BTreeMap<String, FeatureDecl> {
        #[derive(Deserialize)]
        struct M {
            features: BTreeMap<String, FeatureDecl>,
        }
        toml::from_str::<M>(text).expect("valid toml").features
    }

    #[test]
    fn invalid_declarations_name_the_feature() {
        let model = names(&["a", "b"]);
        let err = FeatureSpec::new(&model, &decls("[features.zzz]\ndefault = 1.0\n"))
            .expect_err("unknown feature");
        assert_eq!(err, SpecError::UnknownFeature("zzz".into()));
        for bad in [
            "[features.a]\nsource = \"eq\"\nargs = [\"x\"]\n",
            "[features.a]\nsource = \"ratio\"\n",
            "[features.a]\nsource = \"hit_score\"\nkey = \"x\"\n",
            "[features.a]\nargs = [\"x\", \"y\"]\n",
            "[features.a]\ndefault = inf\n",
        ] {
            let err = FeatureSpec::new(&model, &decls(bad)).expect_err(bad);
            assert!(err.to_string().contains("`a`"), "{err}");
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct M {
            features: BTreeMap<String, FeatureDecl>,
        }
        assert!(toml::from_str::<M>("[features.a]\nsorce = \"item\"\n").is_err());
        assert!(toml::from_str::<M>("[features.a]\nsource = \"redis\"\n").is_err());
    }

    #[test]
    fn sources_that_cannot_exist_fail_the_load_naming_them() {
        let model = names(&["f"]);
        for (bad, names_it) in [
            ("source = \"log1p\"", "needs `input`"),
            (
                "source = \"age\"\ninput = \"hits.listed_at\"",
                "`hits.listed_at`",
            ),
            (
                "source = \"age\"\ninput = \"item.t\"\nnow = \"request.now\"",
                "`request.now`",
            ),
            (
                "source = \"log1p\"\ninput = \"item.\"",
                "no name after `item.`",
            ),
            (
                "source = \"categorical\"\ninput = \"query.usr_id\"\nmapping = { a = 1 }",
                "`query.usr_id`",
            ),
            (
                "source = \"categorical\"\ninput = \"query.user_id\"",
                "needs a non-empty `mapping`",
            ),
            (
                "source = \"categorical\"\ninput = \"query.user_id\"\nmapping = { a = -1 }",
                "mapping.a",
            ),
            (
                "source = \"item\"\ninput = \"item.x\"",
                "`input` is not allowed",
            ),
            (
                "source = \"log1p\"\ninput = \"x\"\nmapping = { a = 1 }",
                "`mapping` is not allowed",
            ),
            ("source = \"hit\"\nunit = \"days\"", "`unit` is not allowed"),
            (
                "source = \"hit_score\"\nseller_controlled = true",
                "`seller_controlled` needs an item-store source",
            ),
        ] {
            let text = format!("[features.f]\n{bad}\n");
            let err = FeatureSpec::new(&model, &decls(&text)).expect_err(bad);
            let msg = err.to_string();
            assert!(
                msg.contains("`f`") && msg.contains(names_it),
                "{bad}: {msg}"
            );
        }
    }

    #[test]
    fn per_request_features_are_those_no_hit_can_change() {
        let spec = FeatureSpec::new(
            &names(&[
                "q",
                "tokens",
                "cat",
                "log_q",
                "age_q",
                "age_clock",
                "auto",
                "item",
                "eq",
                "age_item",
            ]),
            &decls(
                r#"
                [features.q]
                source = "query"
                [features.tokens]
                source = "query_tokens"
                [features.cat]
                source = "categorical"
                input = "query.user_id"
                mapping = { a = 1 }
                [features.log_q]
                source = "log1p"
                input = "query.budget"
                [features.age_q]
                source = "age"
                input = "query.since"
                now = "query.now"
                [features.age_clock]
                source = "age"
                input = "query.since"
                [features.item]
                source = "item"
                [features.eq]
                source = "eq"
                args = ["a", "b"]
                [features.age_item]
                source = "age"
                input = "query.since"
                now = "item.now"
                "#,
            ),
        )
        .expect("valid");
        assert_eq!(
            spec.per_request(),
            [true, true, true, true, true, true, false, false, false, false]
        );
    }

    #[test]
    fn model_categories_map_strings_as_predict_dataframe() {
        let names = names(&["x", "color"]);
        let model: BTreeMap<String, Vec<String>> = [(
            "color".to_string(),
            vec!["red".into(), "green".into(), "blue".into()],
        )]
        .into();
        let without_mapping = decls(
            r#"
            [features.color]
            source = "categorical"
            input = "query.attributes.color"
            "#,
        );
        let spec = FeatureSpec::with_model_categories(&names, &without_mapping, &model)
            .expect("the model's list is the mapping");
        let Resolve::Categorical {
            mapping, unknown, ..
        } = &spec.slots[1].resolve
        else {
            panic!("categorical")
        };
        assert_eq!(mapping["red"], 0.0);
        assert_eq!(mapping["green"], 1.0);
        assert_eq!(mapping["blue"], 2.0);
        assert_eq!(*unknown, None, "an unlisted string is missing");
        // Without the model's list, a mapping is required as before.
        assert!(FeatureSpec::new(&names, &without_mapping).is_err());
        // A manifest mapping in another order is refused, naming the first difference.
        let sorted = decls(
            r#"
            [features.color]
            source = "categorical"
            input = "query.attributes.color"
            mapping = { blue = 0, green = 1, red = 2 }
            "#,
        );
        let err = FeatureSpec::with_model_categories(&names, &sorted, &model)
            .expect_err("mismatch")
            .to_string();
        assert!(
            err.contains("feature `color`")
                && err.contains("`blue` is 0 in the manifest, 2 in the model"),
            "{err}"
        );
        let same = decls(
            r#"
            [features.color]
            source = "categorical"
            input = "query.attributes.color"
            mapping = { red = 0, green = 1, blue = 2 }
            "#,
        );
        FeatureSpec::with_model_categories(&names, &same, &model).expect("equal mapping");
        let with_unknown = decls(
            r#"
            [features.color]
            source = "categorical"
            input = "query.attributes.color"
            unknown = 0
            "#,
        );
        let err = FeatureSpec::with_model_categories(&names, &with_unknown, &model)
            .expect_err("unknown")
            .to_string();
        assert!(err.contains("`unknown` is not allowed"), "{err}");
    }
}

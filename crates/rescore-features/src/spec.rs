//! Per-model feature specification: for each feature of the model (in model order), where its
//! value comes from. Declared in `manifest.toml` under `[features.<name>]`; a feature that is
//! not declared resolves through the contract's order (hit → item store → query → missing).

use std::collections::BTreeMap;

use rescore_api::{FeatureMap, RescoreRequest};
use serde::Deserialize;

use crate::{CachedItems, Columns, ItemRecord};

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
    /// Used when the source yields a missing value.
    pub default: Option<f64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("manifest declares feature `{0}`, which the model does not have")]
    UnknownFeature(String),
    #[error("feature `{feature}`: {problem}")]
    Invalid { feature: String, problem: String },
}

#[derive(Debug, Clone, PartialEq)]
enum Resolve {
    Auto(String),
    Hit(String),
    Item(String),
    Query(String),
    HitScore,
    QueryTokens,
    Binary(SourceKind, String, String),
}

#[derive(Debug, Clone, PartialEq)]
struct Slot {
    resolve: Resolve,
    default: Option<f64>,
}

/// How each of a model's features is filled, in model order.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSpec {
    names: Vec<String>,
    slots: Vec<Slot>,
    needs_items: bool,
}

impl FeatureSpec {
    /// Builds the spec for a model's features from the manifest's declarations.
    pub fn new(
        feature_names: &[String],
        decls: &BTreeMap<String, FeatureDecl>,
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
            if let Some(d) = decl.default {
                if !d.is_finite() {
                    return Err(invalid(format!("default {d} is not a finite number")));
                }
            }
            if decl.key.is_some() && !decl.source.reads_key() {
                return Err(invalid(format!(
                    "`key` is not allowed with source `{}`",
                    decl.source
                )));
            }
            if decl.args.is_some() && !decl.source.is_binary() {
                return Err(invalid(format!(
                    "`args` is not allowed with source `{}`",
                    decl.source
                )));
            }
            let key = decl.key.clone().unwrap_or_else(|| name.clone());
            let resolve = match decl.source {
                SourceKind::Auto => Resolve::Auto(key),
                SourceKind::Hit => Resolve::Hit(key),
                SourceKind::Item => Resolve::Item(key),
                SourceKind::Query => Resolve::Query(key),
                SourceKind::HitScore => Resolve::HitScore,
                SourceKind::QueryTokens => Resolve::QueryTokens,
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
            };
            slots.push(Slot {
                resolve,
                default: decl.default,
            });
        }
        let needs_items = slots.iter().any(|s| {
            matches!(
                s.resolve,
                Resolve::Auto(_) | Resolve::Item(_) | Resolve::Binary(..)
            )
        });
        Ok(FeatureSpec {
            names: feature_names.to_vec(),
            slots,
            needs_items,
        })
    }

    pub fn feature_names(&self) -> &[String] {
        &self.names
    }

    /// Assembles the row-major feature matrix of a request (NaN = missing) and counts, per
    /// feature, how many hits ended up missing it.
    pub fn assemble(&self, request: &RescoreRequest, items: Option<&CachedItems>) -> Assembled {
        let width = self.slots.len();
        let mut rows = Vec::with_capacity(width * request.hits.len());
        let mut missing = vec![0u64; width];
        let empty = FeatureMap::new();
        let query_features = request.query.as_ref().map_or(&empty, |q| &q.features);
        let query_tokens = request
            .query
            .as_ref()
            .and_then(|q| q.text.as_deref())
            .map(|t| t.split_whitespace().count() as f64);
        // Item columns of every key, resolved once per request rather than once per hit.
        let no_columns = Columns::default();
        let columns = items.map_or(&no_columns, |i| i.columns());
        let slot_columns: Vec<[Option<u32>; 2]> = self
            .slots
            .iter()
            .map(|slot| match &slot.resolve {
                Resolve::Auto(k) | Resolve::Item(k) => [columns.column(k), None],
                Resolve::Binary(_, a, b) => [columns.column(a), columns.column(b)],
                _ => [None, None],
            })
            .collect();
        for hit in &request.hits {
            let item = match (self.needs_items, items) {
                (true, Some(items)) => items.get(&hit.id),
                _ => None,
            };
            let ctx = Context {
                hit: &hit.features,
                item: item.as_deref(),
                query: query_features,
            };
            for (i, (slot, [col_a, col_b])) in self.slots.iter().zip(&slot_columns).enumerate() {
                let value = match &slot.resolve {
                    Resolve::Auto(key) => ctx.auto(key, *col_a),
                    Resolve::Hit(key) => lookup(ctx.hit, key),
                    Resolve::Item(_) => ctx.item_value(*col_a),
                    Resolve::Query(key) => lookup(ctx.query, key),
                    Resolve::HitScore => Some(hit.score),
                    Resolve::QueryTokens => query_tokens,
                    Resolve::Binary(kind, a, b) => {
                        binary(*kind, ctx.auto(a, *col_a), ctx.auto(b, *col_b))
                    }
                };
                let value = value.or(slot.default).unwrap_or(f64::NAN);
                if value.is_nan() {
                    missing[i] += 1;
                }
                rows.push(value);
            }
        }
        Assembled { rows, missing }
    }
}

/// A request's feature matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembled {
    /// Row-major, one row per hit, NaN for missing.
    pub rows: Vec<f64>,
    /// Per model feature: hits for which it was missing.
    pub missing: Vec<u64>,
}

struct Context<'a> {
    hit: &'a FeatureMap,
    item: Option<&'a ItemRecord>,
    query: &'a FeatureMap,
}

impl Context<'_> {
    fn auto(&self, key: &str, item_column: Option<u32>) -> Option<f64> {
        lookup(self.hit, key)
            .or_else(|| self.item_value(item_column))
            .or_else(|| lookup(self.query, key))
    }

    fn item_value(&self, column: Option<u32>) -> Option<f64> {
        self.item.zip(column).and_then(|(it, c)| it.value(c))
    }
}

/// `null` and an absent key both mean "not here".
fn lookup(map: &FeatureMap, key: &str) -> Option<f64> {
    if map.is_empty() {
        return None; // the common case with an item store: skip hashing the key
    }
    map.get(key).copied().flatten()
}

fn binary(kind: SourceKind, a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    match kind {
        SourceKind::Eq => Some(if a == b { 1.0 } else { 0.0 }),
        SourceKind::Ratio => (b != 0.0).then(|| a / b),
        SourceKind::AbsDiff => Some((a - b).abs()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EmbeddedStore, ItemStore};
    use rescore_api::{Hit, QueryContext};
    use std::sync::Arc;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn decls(text: &str) -> BTreeMap<String, FeatureDecl> {
        #[derive(Deserialize)]
        struct M {
            features: BTreeMap<String, FeatureDecl>,
        }
        toml::from_str::<M>(text).expect("valid toml").features
    }

    fn fm(pairs: &[(&str, Option<f64>)]) -> FeatureMap {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn items() -> CachedItems {
        let store = EmbeddedStore::from_jsonl(
            "{\"id\":\"a\",\"features\":{\"price\":10,\"category\":3}}\n\
             {\"id\":\"b\",\"features\":{\"price\":0,\"category\":4}}\n"
                .as_bytes(),
        )
        .expect("valid snapshot");
        assert_eq!(store.len(), 2);
        CachedItems::new(Arc::new(store) as Arc<dyn ItemStore>, 100)
    }

    #[test]
    fn resolution_order_is_hit_then_item_then_query_then_default() {
        let spec = FeatureSpec::new(
            &names(&["price", "category", "hour", "color"]),
            &decls("[features.color]\ndefault = 7.5\n"),
        )
        .expect("valid spec");
        let request = RescoreRequest {
            query: Some(QueryContext {
                features: fm(&[("hour", Some(21.0)), ("price", Some(99.0))]),
                ..Default::default()
            }),
            hits: vec![
                Hit {
                    id: "a".into(),
                    score: 1.0,
                    features: fm(&[("price", Some(5.0))]),
                },
                // null in the hit falls through to the item store
                Hit {
                    id: "b".into(),
                    score: 2.0,
                    features: fm(&[("price", None)]),
                },
                // unknown item: query features, then defaults, then missing
                Hit {
                    id: "zzz".into(),
                    score: 3.0,
                    features: FeatureMap::new(),
                },
            ],
            ..Default::default()
        };
        let out = spec.assemble(&request, Some(&items()));
        let expect = [
            5.0,
            3.0,
            21.0,
            7.5, //
            0.0,
            4.0,
            21.0,
            7.5, //
            99.0,
            f64::NAN,
            21.0,
            7.5,
        ];
        assert_eq!(out.rows.len(), expect.len());
        for (got, want) in out.rows.iter().zip(expect) {
            assert!(
                got == &want || (got.is_nan() && want.is_nan()),
                "{:?}",
                out.rows
            );
        }
        assert_eq!(out.missing, vec![0, 1, 0, 0]);
    }

    #[test]
    fn derived_sources() {
        let spec = FeatureSpec::new(
            &names(&["bm25", "ntok", "cat_match", "ratio", "diff", "only_item"]),
            &decls(
                r#"
                [features.bm25]
                source = "hit_score"
                [features.ntok]
                source = "query_tokens"
                [features.cat_match]
                source = "eq"
                args = ["intent", "category"]
                [features.ratio]
                source = "ratio"
                args = ["price", "budget"]
                [features.diff]
                source = "abs_diff"
                args = ["price", "budget"]
                [features.only_item]
                source = "item"
                key = "category"
                "#,
            ),
        )
        .expect("valid spec");
        let mut request = RescoreRequest {
            query: Some(QueryContext {
                text: Some("  cool toys  for boys ".into()),
                features: fm(&[("intent", Some(3.0)), ("budget", Some(20.0))]),
                ..Default::default()
            }),
            hits: vec![
                Hit {
                    id: "a".into(),
                    score: 12.5,
                    features: FeatureMap::new(),
                },
                Hit {
                    id: "b".into(),
                    score: 0.5,
                    features: fm(&[("category", Some(3.0))]),
                },
            ],
            ..Default::default()
        };
        let out = spec.assemble(&request, Some(&items()));
        assert_eq!(&out.rows[..6], &[12.5, 4.0, 1.0, 0.5, 10.0, 3.0]);
        // hit b overrides its category inline for `auto` args, but `item` reads the store
        assert_eq!(&out.rows[6..], &[0.5, 4.0, 1.0, 0.0, 20.0, 4.0]);

        // no budget: ratio and diff are missing; divisor 0 is missing too
        request.query = Some(QueryContext {
            features: fm(&[("budget", Some(0.0))]),
            ..Default::default()
        });
        let out = spec.assemble(&request, Some(&items()));
        assert!(out.rows[1].is_nan() && out.rows[2].is_nan() && out.rows[3].is_nan());
        assert_eq!(out.rows[4], 10.0);
        assert_eq!(out.missing, vec![0, 2, 2, 2, 0, 0]);
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
}

//! Per-request evaluation of a [`FeatureSpec`]: each hit's value of each model feature (hit →
//! item store → query → default, or the feature's declared source) assembled into row-major
//! rows, with the per-feature missing counts monitoring reads.

use rescore_api::{AttributeMap, FeatureMap, RescoreRequest};

use crate::spec::{Resolve, Slot, StringRef, ValueRef};
use crate::{Columns, FeatureSpec, ItemRef, RequestItems, SourceKind};

/// How one feature is filled for a hit without inline features, decided once per request
/// (see [`FeatureSpec::sources`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SlotSource {
    /// The item's value in `column`, else `or`.
    Item { column: usize, or: f64 },
    /// The same for every such hit.
    Const(f64),
    /// The hit's score.
    Score,
    /// Derived sources: computed per hit.
    General,
}

impl Slot {
    /// The feature's value for one hit (NaN = missing), `[col_a, col_b]` the item columns of
    /// its item keys.
    fn value(&self, ctx: &Context<'_>, [col_a, col_b]: [Option<u32>; 2]) -> f64 {
        let request_ctx = ctx.request;
        let value = match &self.resolve {
            Resolve::Value(v) => ctx.value(v, col_a),
            Resolve::Binary(kind, a, b) => binary(*kind, ctx.auto(a, col_a), ctx.auto(b, col_b)),
            Resolve::Log1p(v) => ctx
                .value(v, col_a)
                .map(f64::ln_1p)
                .filter(|x| x.is_finite()),
            Resolve::Age {
                input,
                now,
                unit_secs,
            } => {
                let now = match now {
                    Some(r) => ctx.value(r, col_b),
                    None => Some(request_ctx.now),
                };
                ctx.value(input, col_a)
                    .zip(now)
                    .map(|(t, now)| (now - t) / unit_secs)
                    .filter(|x| x.is_finite())
            }
            Resolve::Categorical {
                input,
                mapping,
                unknown,
            } => {
                let s = match input {
                    StringRef::QueryText => request_ctx.text,
                    StringRef::UserId => request_ctx.user_id,
                    StringRef::Attribute(k) => request_ctx
                        .attributes
                        .and_then(|a| a.get(k))
                        .and_then(|v| v.as_deref()),
                };
                s.and_then(|s| mapping.get(s).copied().or(*unknown))
            }
        };
        value.or(self.default).unwrap_or(f64::NAN)
    }
}

/// `len` model slots from `slot` on that read item columns `column..column + len`.
#[derive(Debug, Clone, Copy)]
struct Run {
    slot: usize,
    column: usize,
    len: usize,
}

impl FeatureSpec {
    /// For each feature, how it is filled for this request's hits that have no inline
    /// features: every source but the derived ones is either the item's column or a constant
    /// of the request (query value, default, missing). [`Self::assemble`] fills rows by it.
    pub fn sources(
        &self,
        request: &RescoreRequest,
        items: Option<&RequestItems>,
    ) -> Vec<SlotSource> {
        let empty = FeatureMap::new();
        let query_features = request.query.as_ref().map_or(&empty, |q| &q.features);
        self.plan(
            query_features,
            &request_ctx(request),
            &self.slot_columns(items),
        )
    }

    /// The item records of the request's hits, in hit order (`None`: unknown), or none at
    /// all when no feature reads the item store: one batched cache look-up, misses read in
    /// key order.
    pub fn records<'i>(
        &self,
        request: &RescoreRequest,
        items: Option<&'i RequestItems>,
    ) -> Vec<Option<ItemRef<'i>>> {
        match (self.needs_items, items) {
            (true, Some(items)) => items.get_many(request.hits.iter().map(|h| h.id.as_str())),
            _ => Vec::new(),
        }
    }

    /// The rows of some of a request's hits (`hits`: indices into `request.hits`), row-major
    /// in that order: exactly the rows [`Self::assemble`] makes for them. Monitoring reads
    /// the few hits it samples this way when the request was scored from cached bins.
    pub fn assemble_hits(
        &self,
        request: &RescoreRequest,
        items: Option<&RequestItems>,
        hits: &[usize],
    ) -> Vec<f64> {
        let records = match (self.needs_items, items) {
            (true, Some(items)) => {
                items.get_many(hits.iter().map(|&h| request.hits[h].id.as_str()))
            }
            _ => Vec::new(),
        };
        self.assemble_rows(request, items, hits.iter().copied(), hits.len(), &records)
            .rows
    }

    /// Item columns of every key, resolved once per request rather than once per hit.
    fn slot_columns(&self, items: Option<&RequestItems>) -> Vec<[Option<u32>; 2]> {
        let no_columns = Columns::default();
        let columns = items.map_or(&no_columns, |i| i.columns());
        self.slots
            .iter()
            .map(|slot| {
                slot.resolve
                    .item_keys()
                    .map(|k| k.and_then(|k| columns.column(k)))
            })
            .collect()
    }

    fn plan(
        &self,
        query_features: &FeatureMap,
        request_ctx: &RequestCtx<'_>,
        slot_columns: &[[Option<u32>; 2]],
    ) -> Vec<SlotSource> {
        self.slots
            .iter()
            .zip(slot_columns)
            .map(|(slot, [col_a, _])| {
                let or = |v: Option<f64>| v.or(slot.default).unwrap_or(f64::NAN);
                let item = |or: f64| match col_a {
                    Some(c) => SlotSource::Item {
                        column: *c as usize,
                        or,
                    },
                    None => SlotSource::Const(or),
                };
                match &slot.resolve {
                    Resolve::Value(ValueRef::Auto(key)) => item(or(lookup(query_features, key))),
                    Resolve::Value(ValueRef::Item(_)) => item(or(None)),
                    Resolve::Value(ValueRef::Hit(_)) => SlotSource::Const(or(None)),
                    Resolve::Value(ValueRef::Query(key)) => {
                        SlotSource::Const(or(lookup(query_features, key)))
                    }
                    Resolve::Value(ValueRef::QueryTokens) => {
                        SlotSource::Const(or(request_ctx.query_tokens))
                    }
                    Resolve::Value(ValueRef::HitScore) => SlotSource::Score,
                    _ => SlotSource::General,
                }
            })
            .collect()
    }

    /// Assembles the row-major feature matrix of a request (NaN = missing) and counts, per
    /// feature, how many hits ended up missing it.
    pub fn assemble(&self, request: &RescoreRequest, items: Option<&RequestItems>) -> Assembled {
        let records = self.records(request, items);
        let hits = request.hits.len();
        self.assemble_rows(request, items, 0..hits, hits, &records)
    }

    /// The rows of the hits `selected` (`count` of them); `records[i]` is the item of the
    /// i-th selected hit.
    fn assemble_rows(
        &self,
        request: &RescoreRequest,
        items: Option<&RequestItems>,
        selected: impl Iterator<Item = usize>,
        count: usize,
        records: &[Option<crate::ItemRef<'_>>],
    ) -> Assembled {
        let width = self.slots.len();
        let mut missing = vec![0u64; width];
        let empty = FeatureMap::new();
        let query = request.query.as_ref();
        let query_features = query.map_or(&empty, |q| &q.features);
        let request_ctx = request_ctx(request);
        let slot_columns = self.slot_columns(items);
        let fast = self.plan(query_features, &request_ctx, &slot_columns);
        // Item features in consecutive model slots that read consecutive item columns (the
        // usual case when the snapshot lists features in model order) are copied as one slice;
        // the other slots are filled one by one.
        let mut runs: Vec<Run> = Vec::new();
        let mut singles: Vec<usize> = Vec::new();
        for (i, f) in fast.iter().enumerate() {
            match (*f, runs.last_mut()) {
                (SlotSource::Item { column, .. }, Some(run))
                    if run.slot + run.len == i && run.column + run.len == column =>
                {
                    run.len += 1
                }
                (SlotSource::Item { column, .. }, _) => runs.push(Run {
                    slot: i,
                    column,
                    len: 1,
                }),
                _ => singles.push(i),
            }
        }
        let mut rows = vec![0.0; width * count];
        let no_values: &[f64] = &[];
        for (h, (hit, row)) in selected
            .map(|i| &request.hits[i])
            .zip(rows.chunks_exact_mut(width.max(1)))
            .enumerate()
        {
            let item = records.get(h).copied().flatten();
            let ctx = Context {
                hit: &hit.features,
                score: hit.score,
                item,
                query: query_features,
                request: &request_ctx,
            };
            if hit.features.is_empty() {
                let values = item.map_or(no_values, |i| i.values());
                for run in &runs {
                    let out = &mut row[run.slot..run.slot + run.len];
                    let have = values.len().saturating_sub(run.column).min(run.len);
                    if have > 0 {
                        out[..have].copy_from_slice(&values[run.column..run.column + have]);
                    }
                    out[have..].fill(f64::NAN);
                }
                for &i in &singles {
                    row[i] = match fast[i] {
                        SlotSource::Const(v) => v,
                        SlotSource::Score => hit.score,
                        _ => self.slots[i].value(&ctx, slot_columns[i]),
                    };
                }
                // Missing item values take the request's fallback; what is still NaN is
                // missing. Most rows have none: one branch-free scan finds out.
                if row.iter().fold(false, |any, v| any | v.is_nan()) {
                    for ((out, miss), f) in row.iter_mut().zip(missing.iter_mut()).zip(&fast) {
                        if out.is_nan() {
                            if let SlotSource::Item { or, .. } = f {
                                *out = *or;
                            }
                            *miss += u64::from(out.is_nan());
                        }
                    }
                }
            } else {
                let cells = row.iter_mut().zip(missing.iter_mut());
                for ((out, miss), (slot, cols)) in cells.zip(self.slots.iter().zip(&slot_columns)) {
                    let value = slot.value(&ctx, *cols);
                    *out = value;
                    *miss += u64::from(value.is_nan());
                }
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

fn request_ctx(request: &RescoreRequest) -> RequestCtx<'_> {
    let query = request.query.as_ref();
    RequestCtx {
        query_tokens: query
            .and_then(|q| q.text.as_deref())
            .map(|t| t.split_whitespace().count() as f64),
        text: query.and_then(|q| q.text.as_deref()),
        user_id: query.and_then(|q| q.user_id.as_deref()),
        attributes: query.map(|q| &q.attributes),
        now: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(f64::NAN, |d| d.as_secs_f64()),
    }
}

struct RequestCtx<'a> {
    query_tokens: Option<f64>,
    text: Option<&'a str>,
    user_id: Option<&'a str>,
    attributes: Option<&'a AttributeMap>,
    now: f64,
}

struct Context<'a> {
    hit: &'a FeatureMap,
    score: f64,
    item: Option<ItemRef<'a>>,
    query: &'a FeatureMap,
    request: &'a RequestCtx<'a>,
}

impl Context<'_> {
    fn value(&self, v: &ValueRef, item_column: Option<u32>) -> Option<f64> {
        match v {
            ValueRef::Auto(key) => self.auto(key, item_column),
            ValueRef::Hit(key) => lookup(self.hit, key),
            ValueRef::Item(_) => self.item_value(item_column),
            ValueRef::Query(key) => lookup(self.query, key),
            ValueRef::HitScore => Some(self.score),
            ValueRef::QueryTokens => self.request.query_tokens,
        }
    }

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
    use crate::spec::tests::{decls, names};
    use crate::{CacheConfig, CachedItems, DataDir};
    use rescore_api::{Hit, QueryContext};
    use std::sync::Arc;

    fn fm(pairs: &[(&str, Option<f64>)]) -> FeatureMap {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    /// A real embedded store of two items, and a request's view of it.
    fn items() -> (tempfile::TempDir, RequestItems) {
        let tmp = tempfile::tempdir().expect("tmp");
        let snapshot = tmp.path().join("items.jsonl");
        std::fs::write(
            &snapshot,
            "{\"id\":\"a\",\"features\":{\"price\":10,\"category\":3,\"listed_at\":1000}}\n\
             {\"id\":\"b\",\"features\":{\"price\":0,\"category\":4}}\n",
        )
        .expect("write");
        let dir = DataDir::open(&tmp.path().join("data")).expect("data dir");
        let (generation, _) = dir.ensure_snapshot(&snapshot, 1 << 20).expect("build");
        assert_eq!(generation.len(), 2);
        let cached = Arc::new(CachedItems::embedded(generation, &CacheConfig::default()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        let view = runtime.block_on(cached.for_request(["a", "b"], deadline));
        (tmp, view)
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
        let out = spec.assemble(&request, Some(&items().1));
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
    fn hits_without_inline_features_get_the_same_values_as_with_them() {
        // The per-request plan (hits without inline features) against the per-hit resolution
        // (an unrelated inline feature forces it), bit for bit, over every source kind.
        let spec = FeatureSpec::new(
            &names(&[
                "price",
                "category",
                "listed_at",
                "hour",
                "color",
                "bm25",
                "ntok",
                "only_item",
                "hit_only",
                "q",
                "ratio",
                "log_price",
                "nothing",
            ]),
            &decls(
                r#"
                [features.color]
                default = 7.5
                [features.bm25]
                source = "hit_score"
                [features.ntok]
                source = "query_tokens"
                [features.only_item]
                source = "item"
                key = "price"
                default = -3.0
                [features.hit_only]
                source = "hit"
                key = "price"
                default = 1.25
                [features.q]
                source = "query"
                key = "hour"
                [features.ratio]
                source = "ratio"
                args = ["price", "hour"]
                [features.log_price]
                source = "log1p"
                input = "item.price"
                "#,
            ),
        )
        .expect("valid spec");
        let request = |inline: bool| RescoreRequest {
            query: Some(QueryContext {
                text: Some("red shoes".into()),
                features: fm(&[("hour", Some(21.0)), ("listed_at", Some(5.0))]),
                ..Default::default()
            }),
            hits: ["a", "b", "zzz", "a"]
                .iter()
                .enumerate()
                .map(|(i, id)| Hit {
                    id: id.to_string(),
                    score: 0.1 + i as f64,
                    features: if inline {
                        fm(&[("unrelated", Some(1.0))])
                    } else {
                        FeatureMap::new()
                    },
                })
                .collect(),
            ..Default::default()
        };
        let items = items().1;
        let planned = spec.assemble(&request(false), Some(&items));
        let per_hit = spec.assemble(&request(true), Some(&items));
        let bits = |rows: &[f64]| rows.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&planned.rows), bits(&per_hit.rows));
        assert_eq!(planned.missing, per_hit.missing);
        assert_eq!(&planned.rows[..4], &[10.0, 3.0, 1000.0, 21.0]);
        assert_eq!(planned.missing, vec![1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 4]);
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
        let out = spec.assemble(&request, Some(&items().1));
        assert_eq!(&out.rows[..6], &[12.5, 4.0, 1.0, 0.5, 10.0, 3.0]);
        // hit b overrides its category inline for `auto` args, but `item` reads the store
        assert_eq!(&out.rows[6..], &[0.5, 4.0, 1.0, 0.0, 20.0, 4.0]);

        // no budget: ratio and diff are missing; divisor 0 is missing too
        request.query = Some(QueryContext {
            features: fm(&[("budget", Some(0.0))]),
            ..Default::default()
        });
        let out = spec.assemble(&request, Some(&items().1));
        assert!(out.rows[1].is_nan() && out.rows[2].is_nan() && out.rows[3].is_nan());
        assert_eq!(out.rows[4], 10.0);
        assert_eq!(out.missing, vec![0, 2, 2, 2, 0, 0]);
    }

    #[test]
    fn transforms_and_categorical_ids() {
        let spec = FeatureSpec::new(
            &names(&[
                "log_price",
                "age_h",
                "age_q",
                "device",
                "country",
                "user",
                "log_neg",
            ]),
            &decls(
                r#"
                [features.log_price]
                source = "log1p"
                input = "item.price"
                [features.age_h]
                source = "age"
                input = "listed_at"
                unit = "hours"
                now = "query.now"
                [features.age_q]
                source = "age"
                input = "item.listed_at"
                [features.device]
                source = "categorical"
                input = "query.attributes.device"
                mapping = { mobile = 0, desktop = 1 }
                [features.country]
                source = "categorical"
                input = "query.attributes.country"
                mapping = { de = 3 }
                unknown = 99
                [features.user]
                source = "categorical"
                input = "query.user_id"
                mapping = { u1 = 7 }
                default = -1
                [features.log_neg]
                source = "log1p"
                input = "query.x"
                "#,
            ),
        )
        .expect("valid spec");
        assert!(spec.needs_items());
        let request = RescoreRequest {
            query: Some(QueryContext {
                user_id: Some("u2".into()),
                features: fm(&[("now", Some(1000.0 + 7200.0)), ("x", Some(-1.0))]),
                attributes: [
                    ("device".to_string(), Some("desktop".to_string())),
                    ("country".to_string(), Some("fr".to_string())),
                ]
                .into_iter()
                .collect(),
                ..Default::default()
            }),
            hits: vec![Hit {
                id: "a".into(),
                score: 1.0,
                features: FeatureMap::new(),
            }],
            ..Default::default()
        };
        let out = spec.assemble(&request, Some(&items().1));
        assert_eq!(out.rows[0], 11f64.ln());
        assert_eq!(out.rows[1], 2.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        assert!(
            (out.rows[2] - (now - 1000.0) / 86_400.0).abs() < 1e-3,
            "{}",
            out.rows[2]
        );
        assert_eq!(&out.rows[3..6], &[1.0, 99.0, -1.0]);
        assert!(out.rows[6].is_nan(), "log1p(-1) is missing, not -inf");
    }
}

//! Scoring from item bins kept with the item records. When a request's hits carry no inline
//! features, every model feature is the item's value (or the request's fallback when the item
//! has none), a constant of the request, or the hit's score (`FeatureSpec::sources`). The
//! native evaluator's bin of an item value depends only on that value and the model version,
//! so it is computed once per (record, model version) and kept with the record
//! (`record_bins`, in the record's attached slot): a request then copies ~one byte per feature and hit instead of
//! assembling an f64 matrix and binning it. A hit's inline features (the bridge's doc-value
//! fields) then replace the bins of the features they fill (`auto` and `hit` sources). The
//! bins are the ones the f64 path computes, so the scores are bit-identical (tests below);
//! requests this path does not cover (derived sources, categorical models) take the f64 path.
//! A monitored version is scored here too: its monitor asks for the f64 rows of only the hits
//! it samples (`FeatureSpec::assemble_hits`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rescore_api::RescoreRequest;
use rescore_features::{FeatureSpec, ItemOrigin, RequestItems, SlotSource};
use rescore_model::NativeModel;

use crate::record_bins::{record_bins, BinKey, NOT_ITEM};
use crate::row_bins::RowBins;

/// Column lists a layout interns (a list changes only when a store's columns do).
const MAX_INTERNED: usize = 16;

/// A loaded model version's bin columns, for the binned path.
#[derive(Debug)]
pub(crate) struct BinLayout {
    /// Model feature of each bin column.
    features: Vec<usize>,
    /// Bin columns of each model feature.
    columns_of: Vec<Vec<usize>>,
    /// Inline hit feature name → the model features it fills (`auto` and `hit` sources).
    by_hit_key: HashMap<String, Vec<usize>>,
    /// Unique per loaded version (never reused): part of the key of the records' bins.
    id: u64,
    /// The item column lists of the keys made so far, so that equal keys share one list.
    interned: Mutex<Vec<Arc<[u32]>>>,
    /// Bins of embedded-store rows for the latest key (a key changes only when the store's
    /// columns do).
    row_bins: Mutex<Option<Arc<RowBins>>>,
}

impl BinLayout {
    /// `None` when the model is not served natively, reads raw values (categorical), or has
    /// derived sources (computed per hit from f64 values; whether a feature is derived does
    /// not depend on the request).
    pub(crate) fn of(native: Option<&NativeModel>, spec: &FeatureSpec) -> Option<Self> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let features = native?.bin_features()?;
        if spec
            .sources(&RescoreRequest::default(), None)
            .contains(&SlotSource::General)
        {
            return None;
        }
        let hit_keys = spec.hit_keys();
        let mut columns_of = vec![Vec::new(); hit_keys.len()];
        for (c, &slot) in features.iter().enumerate() {
            columns_of[slot].push(c);
        }
        let mut by_hit_key: HashMap<String, Vec<usize>> = HashMap::new();
        for (slot, key) in hit_keys.into_iter().enumerate() {
            if let Some(key) = key {
                by_hit_key.entry(key.to_string()).or_default().push(slot);
            }
        }
        Some(BinLayout {
            features,
            columns_of,
            by_hit_key,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            interned: Mutex::new(Vec::new()),
            row_bins: Mutex::new(None),
        })
    }

    /// The key of the records' bins for a request's sources: this layout and the item column
    /// each feature reads.
    fn key(&self, sources: &[SlotSource]) -> BinKey {
        let columns: Vec<u32> = sources
            .iter()
            .map(|source| match source {
                // Item columns are below `rescore_features::MAX_COLUMNS`.
                SlotSource::Item { column, .. } => *column as u32,
                _ => NOT_ITEM,
            })
            .collect();
        let mut interned = self.interned.lock().unwrap_or_else(|e| e.into_inner());
        let columns = match interned.iter().find(|c| ***c == *columns) {
            Some(found) => found.clone(),
            None => {
                let columns: Arc<[u32]> = columns.into();
                if interned.len() < MAX_INTERNED {
                    interned.push(columns.clone());
                }
                columns
            }
        };
        BinKey::new(self.id, columns)
    }

    /// The table of row bins for `key` (`width` bytes a row), made anew when the key changed.
    fn row_bins(&self, key: &BinKey, width: usize) -> Arc<RowBins> {
        let mut current = self.row_bins.lock().unwrap_or_else(|e| e.into_inner());
        match current.as_ref() {
            Some(table) if table.key() == key && table.width() == width => table.clone(),
            _ => {
                let table = Arc::new(RowBins::new(key.clone(), width));
                *current = Some(table.clone());
                table
            }
        }
    }

    /// Bin columns: the bytes of one binned row.
    pub(crate) fn width(&self) -> usize {
        self.features.len()
    }
}

/// A request's rows as bins (row-major, one byte per bin column) and, per model feature, how
/// many hits ended up missing it (as `Assembled::missing`).
pub(crate) struct Binned {
    pub(crate) rows: Vec<u8>,
    pub(crate) missing: Vec<u64>,
}

/// How a bin column is filled for each hit.
#[derive(Clone, Copy)]
enum Fill {
    /// From the record's bins; `absent` (the request's fallback) where the item has no value
    /// for model feature `slot`.
    Item {
        slot: usize,
        absent: u8,
    },
    Const(u8),
    Score,
}

/// The request's binned rows, or `None` when the binned path does not cover it.
pub(crate) fn assemble(
    native: &NativeModel,
    layout: &BinLayout,
    spec: &FeatureSpec,
    request: &RescoreRequest,
    items: Option<&RequestItems>,
) -> Option<Binned> {
    let sources = spec.sources(request, items);
    if sources.contains(&SlotSource::General) {
        return None;
    }
    // Besides a record's values, its bins depend on the version and on the item column of
    // each feature (a store's columns can grow): both make the key.
    let key = layout.key(&sources);
    let fills: Vec<Fill> = layout
        .features
        .iter()
        .enumerate()
        .map(|(c, &slot)| match sources[slot] {
            SlotSource::Item { or, .. } => Fill::Item {
                slot,
                absent: native.bin(c, or),
            },
            SlotSource::Const(v) => Fill::Const(native.bin(c, v)),
            SlotSource::Score | SlotSource::General => Fill::Score,
        })
        .collect();
    // Columns the records' bins do not hold: the same for every hit, or the hit's score.
    let patches: Vec<(usize, Fill)> = fills
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, f)| !matches!(f, Fill::Item { .. }))
        .collect();
    // Item features whose fallback is missing too: missing for hits whose item lacks them.
    let missing_when_absent: Vec<usize> = sources
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, SlotSource::Item { or, .. } if or.is_nan()))
        .map(|(slot, _)| slot)
        .collect();

    let score_slots: Vec<usize> = sources
        .iter()
        .enumerate()
        .filter(|(_, s)| **s == SlotSource::Score)
        .map(|(slot, _)| slot)
        .collect();

    let n_bins = layout.features.len();
    let width = sources.len();
    let hits = request.hits.len();
    let mut missing = vec![0u64; width];
    for (slot, source) in sources.iter().enumerate() {
        if matches!(source, SlotSource::Const(v) if v.is_nan()) {
            missing[slot] = hits as u64;
        }
    }
    let records = spec.records(request, items);
    let derived_width = n_bins + width.div_ceil(8) + 1;
    let row_bins = records
        .iter()
        .any(|r| matches!(r.map(|r| r.origin()), Some(ItemOrigin::Row { .. })))
        .then(|| layout.row_bins(&key, derived_width));
    // One buffer for every hit's bins: no allocation per item.
    let mut scratch: Vec<u8> = Vec::with_capacity(derived_width);
    let mut rows = vec![0u8; n_bins * hits];
    for (h, (hit, row)) in request
        .hits
        .iter()
        .zip(rows.chunks_exact_mut(n_bins.max(1)))
        .enumerate()
    {
        let derived: Option<&[u8]> = match records.get(h).copied().flatten() {
            None => None,
            Some(item) => {
                let values = item.values();
                let make = |out: &mut Vec<u8>| derive_into(native, layout, &sources, values, out);
                match (item.origin(), &row_bins) {
                    (ItemOrigin::Row { serial, row }, Some(table)) => {
                        table.get_into(serial, row, &mut scratch, make);
                    }
                    (ItemOrigin::Record(record), _) => {
                        let kept = record_bins(record, &key, |_| {
                            let mut out = Vec::with_capacity(derived_width);
                            make(&mut out);
                            out.into()
                        });
                        scratch.clear();
                        scratch.extend_from_slice(&kept);
                    }
                    (ItemOrigin::Row { .. }, None) => make({
                        scratch.clear();
                        &mut scratch
                    }),
                }
                Some(&scratch)
            }
        };
        // [bins of the bin columns][bit per feature: the item lacks it][any lacking]
        let absent = |slot: usize| {
            derived
                .as_ref()
                .is_none_or(|d| (d[n_bins + slot / 8] >> (slot % 8)) & 1 == 1)
        };
        match &derived {
            Some(derived) => {
                row.copy_from_slice(&derived[..n_bins]);
                if derived[n_bins + width.div_ceil(8)] != 0 {
                    fill_absent(row, &fills, absent);
                    for &slot in &missing_when_absent {
                        missing[slot] += u64::from(absent(slot));
                    }
                }
            }
            None => {
                fill_absent(row, &fills, |_| true);
                for &slot in &missing_when_absent {
                    missing[slot] += 1;
                }
            }
        }
        for &(c, fill) in &patches {
            row[c] = match fill {
                Fill::Const(bin) => bin,
                _ => native.bin(c, hit.score),
            };
        }
        // A hit's own value comes first (`auto`: hit, item, query, default; `hit`: hit,
        // default), so it replaces what was filled above, missing included.
        for (key, value) in &hit.features {
            let (Some(value), Some(slots)) = (value, layout.by_hit_key.get(key.as_str())) else {
                continue;
            };
            for &slot in slots {
                for &c in &layout.columns_of[slot] {
                    row[c] = native.bin(c, *value);
                }
                let was_missing = match sources[slot] {
                    SlotSource::Item { or, .. } => or.is_nan() && absent(slot),
                    SlotSource::Const(v) => v.is_nan(),
                    _ => false,
                };
                // (JSON cannot carry a NaN; were one here, it would be missing, as in f64.)
                match (was_missing, value.is_nan()) {
                    (true, false) => missing[slot] -= 1,
                    (false, true) => missing[slot] += 1,
                    _ => {}
                }
            }
        }
        if hit.score.is_nan() {
            for &slot in &score_slots {
                missing[slot] += 1;
            }
        }
    }
    Some(Binned { rows, missing })
}

/// Item columns whose item value is absent take the request's fallback bin.
fn fill_absent(row: &mut [u8], fills: &[Fill], absent: impl Fn(usize) -> bool) {
    for (bin, fill) in row.iter_mut().zip(fills) {
        if let Fill::Item { slot, absent: or } = *fill {
            if absent(slot) {
                *bin = or;
            }
        }
    }
}

/// A record's bytes for the binned path: the bin of its value for each item-filled bin column
/// (0 elsewhere), then a bit per model feature set if the item lacks it, then 1 if it lacks
/// any. With 300 features and 200 bin columns: 239 bytes per record and model version.
fn derive_into(
    native: &NativeModel,
    layout: &BinLayout,
    sources: &[SlotSource],
    values: &[f64],
    out: &mut Vec<u8>,
) {
    let value = |column: usize| values.get(column).copied().filter(|v| !v.is_nan());
    let n_bins = layout.features.len();
    for (c, &slot) in layout.features.iter().enumerate() {
        out.push(match sources[slot] {
            SlotSource::Item { column, .. } => value(column).map_or(0, |x| native.bin(c, x)),
            _ => 0,
        });
    }
    out.resize(n_bins + sources.len().div_ceil(8), 0);
    let mut any = 0u8;
    for (slot, source) in sources.iter().enumerate() {
        if let SlotSource::Item { column, .. } = source {
            let absent = u8::from(value(*column).is_none());
            out[n_bins + slot / 8] |= absent << (slot % 8);
            any |= absent;
        }
    }
    out.push(any);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rescore_api::{Hit, QueryContext};
    use rescore_features::{CacheConfig, CachedItems, DataDir, FeatureDecl};
    use rescore_model::{EnginePreference, Model};
    use std::collections::BTreeMap;

    const ITEMS: usize = 300;

    /// A real embedded store of `ITEMS` items over the model's features: LETOR-like values,
    /// zeros, negative zeros, tiny values LightGBM reads as zero, the model's own thresholds,
    /// and absent keys.
    fn store(features: &[String], thresholds: &[f64]) -> (tempfile::TempDir, RequestItems) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let tmp = tempfile::tempdir().expect("tmp");
        let snapshot = tmp.path().join("items.jsonl");
        let mut lines = String::new();
        for i in 0..ITEMS {
            let mut values = serde_json::Map::new();
            for name in features {
                let v = match rng.gen_range(0..10) {
                    0 => continue,
                    1 => 0.0,
                    2 => -0.0,
                    3 => 1e-36,
                    4 => thresholds[rng.gen_range(0..thresholds.len())],
                    _ => f64::from(rng.gen_range(0..100u32)) / 100.0,
                };
                values.insert(name.clone(), serde_json::json!(v));
            }
            let line = serde_json::json!({"id": format!("i{i}"), "features": values});
            lines.push_str(&format!("{line}\n"));
        }
        std::fs::write(&snapshot, lines).expect("write");
        let dir = DataDir::open(&tmp.path().join("data")).expect("data dir");
        let (generation, _) = dir.ensure_snapshot(&snapshot, 1 << 24).expect("build");
        let cached =
            std::sync::Arc::new(CachedItems::embedded(generation, &CacheConfig::default()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let ids: Vec<String> = (0..ITEMS).map(|i| format!("i{i}")).collect();
        let view = runtime.block_on(cached.for_request(ids.iter().map(String::as_str), deadline));
        (tmp, view)
    }

    /// Every native-served golden model, sources of every kind the binned path covers (item,
    /// item with a query fallback, query, default, hit score, inline hit features), items
    /// lacking values, unknown ids: the binned rows score bit-identically to the f64 rows, and
    /// count the same missing values, on a record's first read (bins made) and on its second
    /// (bins reused).
    #[test]
    fn binned_rows_score_exactly_like_f64_rows() {
        let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/golden/models");
        let mut covered = 0;
        for kind in [
            "regression",
            "missing_nan",
            "zero_as_missing",
            "lambdarank",
            "binary",
            "poisson",
            "huber",
            "regression_sqrt",
            "cross_entropy",
            "tweedie",
            "rank_xendcg",
            "random_forest",
            "cross_entropy_lambda",
        ] {
            let text =
                std::fs::read_to_string(golden.join(kind).join("1/model.txt")).expect("fixture");
            let model = Model::from_text(&text, EnginePreference::Auto).expect("model");
            let Some(native) = model.native() else {
                continue;
            };
            let names = model.feature_names().to_vec();
            let thresholds: Vec<f64> = text
                .lines()
                .filter_map(|l| l.strip_prefix("threshold="))
                .flat_map(|l| l.split(' ').filter_map(|t| t.parse().ok()))
                .collect();
            let (_tmp, items) = store(&names, &thresholds);
            let mut decls: BTreeMap<String, FeatureDecl> = BTreeMap::new();
            let decl = |text: &str| toml::from_str::<FeatureDecl>(text).expect("decl");
            decls.insert(names[0].clone(), decl("source = \"hit_score\""));
            decls.insert(names[1].clone(), decl("source = \"query\"\nkey = \"q1\""));
            decls.insert(names[2].clone(), decl("source = \"item\"\ndefault = 0.25"));
            decls.insert(
                names[3].clone(),
                decl("source = \"query\"\nkey = \"absent\""),
            );
            decls.insert(names[4].clone(), decl("source = \"hit\"\nkey = \"hk\""));
            let spec = FeatureSpec::new(&names, &decls).expect("spec");
            let layout = BinLayout::of(Some(native), &spec).expect("numerical splits only");
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
            for query in [None, Some(0.5), Some(f64::NAN)] {
                let features = query
                    .map(|v| {
                        let v = (!v.is_nan()).then_some(v);
                        // q1, and a fallback for every item feature (auto order: item first).
                        names[4..]
                            .iter()
                            .map(|n| (n.clone(), v))
                            .chain([("q1".to_string(), v)])
                            .collect()
                    })
                    .unwrap_or_default();
                let request = RescoreRequest {
                    query: Some(QueryContext {
                        features,
                        ..Default::default()
                    }),
                    hits: (0..ITEMS + 20)
                        .map(|i| Hit {
                            // Ids past the store are unknown items.
                            id: format!("i{i}"),
                            score: rng.gen_range(-3.0..3.0),
                            // Every third hit carries inline features: an `auto` one (wins
                            // over the item), a null (not here), a `hit` one, and names
                            // that the item, hit-score and unknown sources ignore.
                            features: if i % 3 == 0 {
                                let v = f64::from(rng.gen_range(0..100u32)) / 100.0;
                                [
                                    (names[5].clone(), Some(v)),
                                    (names[6].clone(), None),
                                    ("hk".to_string(), Some(thresholds[i % thresholds.len()])),
                                    (names[2].clone(), Some(9.0)),
                                    (names[0].clone(), Some(5.0)),
                                    ("other".to_string(), Some(1.0)),
                                ]
                                .into_iter()
                                .collect()
                            } else {
                                Default::default()
                            },
                        })
                        .collect(),
                    ..Default::default()
                };
                let assembled = spec.assemble(&request, Some(&items));
                let want = native.predict(&assembled.rows);
                for read in ["first", "second"] {
                    let binned =
                        assemble(native, &layout, &spec, &request, Some(&items)).expect("covered");
                    let got = native.predict_binned(&binned.rows, request.hits.len());
                    assert_eq!(got, want, "{kind} ({read} read, query {query:?})");
                    assert_eq!(binned.missing, assembled.missing, "{kind} ({read} read)");
                }
            }
            covered += 1;
        }
        assert!(covered >= 10, "only {covered} golden models were native");
    }

    /// A version with a drift sketch and a feature log is scored from the cached bins (its
    /// records carry bins afterwards, which only the binned path makes), with the scores of
    /// the f64 rows and of the same version unmonitored; what the monitor counted and logged
    /// are exactly the f64 rows of the hits it sampled.
    #[test]
    fn a_monitored_version_scores_from_cached_bins() {
        use crate::LoadedVersion;
        use rescore_monitor::{DriftSketch, Monitor, MonitorConfig, ReferenceBuilder};
        let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/golden/models/regression/1");
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("regression/1");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::copy(golden.join("model.txt"), dir.join("model.txt")).expect("copy");
        let text = std::fs::read_to_string(dir.join("model.txt")).expect("model");
        let plain =
            LoadedVersion::load("regression", 1, &dir, EnginePreference::Auto).expect("loads");
        let native = plain.model.native().expect("served natively");
        let names = plain.model.feature_names().to_vec();
        let thresholds: Vec<f64> = text
            .lines()
            .filter_map(|l| l.strip_prefix("threshold="))
            .flat_map(|l| l.split(' ').filter_map(|t| t.parse().ok()))
            .collect();
        let (_store, items) = store(&names, &thresholds);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let request = RescoreRequest {
            hits: (0..ITEMS)
                .map(|i| Hit {
                    id: format!("i{i}"),
                    score: rng.gen_range(-3.0..3.0),
                    features: Default::default(),
                })
                .collect(),
            ..Default::default()
        };
        let f64_rows = plain.spec.assemble(&request, Some(&items)).rows;
        let want = native.predict(&f64_rows);
        let width = names.len();
        let mut reference = ReferenceBuilder::new(names.clone(), vec![false; width]);
        for (row, score) in f64_rows.chunks(width).zip(&want) {
            reference.push(row, *score);
        }
        let reference = reference.finish(10, "test".into());
        std::fs::write(
            dir.join(rescore_monitor::REFERENCE_FILE),
            serde_json::to_string(&reference).expect("json"),
        )
        .expect("write reference");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);

        // One day in one bucket: the sketches compared below share it.
        let drift_config = |row_sample_rate: f64| rescore_monitor::DriftConfig {
            row_sample_rate,
            min_rows: 1,
            window_secs: 86_400,
            buckets: 1,
            ..Default::default()
        };
        for (rate, logged) in [(1.0, true), (0.5, false)] {
            let mut config = MonitorConfig {
                drift: drift_config(rate),
                ..Default::default()
            };
            let log_dir = tmp.path().join(format!("log-{rate}"));
            if logged {
                config.feature_log.enabled = true;
                config.feature_log.dir = Some(log_dir.clone());
                config.feature_log.sample_rate = 1.0;
            }
            let monitor = Monitor::new(config).expect("monitor");
            let mut version =
                LoadedVersion::load("regression", 1, &dir, EnginePreference::Auto).expect("loads");
            version.monitor = monitor
                .attach("regression", 1, &dir, &names, &vec![false; names.len()])
                .expect("reference fits");
            assert!(version.monitor.is_some());
            let (_fresh, fresh_items) = store(&names, &thresholds);
            let got = version
                .score(&request, Some(&fresh_items), deadline, Some("live"))
                .expect("scored");
            assert_eq!(got, want, "monitored, rate {rate}");
            // The table of row bins is made only by the binned path's assembly.
            let layout = version.bin_layout.as_ref().expect("binned layout");
            assert!(
                layout
                    .row_bins
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_some(),
                "the monitored version was scored from its items' bins"
            );
            let unmonitored = plain
                .score(&request, Some(&fresh_items), deadline, Some("live"))
                .expect("scored");
            assert_eq!(unmonitored, want);

            // The window holds what a sketch fed the f64 rows holds, at one of the offsets.
            let report = monitor.report();
            let counted = report.models[0].drift.clone().expect("drift");
            let from_f64: Vec<_> = (0..2)
                .map(|offset| {
                    let sketch = DriftSketch::new(reference.clone(), &drift_config(rate));
                    let now = rescore_monitor::drift::unix_secs();
                    sketch.observe_at(&f64_rows, &want, offset, now);
                    sketch.report_at(now)
                })
                .collect();
            assert!(
                from_f64.contains(&counted),
                "rate {rate}: {} rows counted",
                counted.window_rows
            );
            assert_eq!(counted.window_rows, (ITEMS as f64 * rate) as u64);
            monitor.close();
            if logged {
                let files = rescore_monitor::feature_log::log_files(&log_dir).expect("log");
                let text = std::fs::read_to_string(&files[0]).expect("read log");
                let record: serde_json::Value =
                    serde_json::from_str(text.lines().next().expect("a record")).expect("json");
                let logged_rows: Vec<f64> = record["hits"]
                    .as_array()
                    .expect("hits")
                    .iter()
                    .flat_map(|h| h["features"].as_array().expect("features").clone())
                    .map(|v| v.as_f64().unwrap_or(f64::NAN))
                    .collect();
                assert_eq!(logged_rows.len(), f64_rows.len());
                for (a, b) in logged_rows.iter().zip(&f64_rows) {
                    assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
                }
            }
        }
    }
}

//! The native evaluator against LightGBM's own predictions (golden fixtures) and against the
//! `lightgbm3` engine on the same rows.

use std::path::PathBuf;

use rescore_model::{EnginePreference, Model, ModelError, ModelHeader, NativeModel};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

#[derive(serde::Deserialize)]
struct Case {
    model: String,
    rows: Vec<Vec<Option<f64>>>,
    expected: Vec<f64>,
}

#[test]
fn native_matches_lightgbm_on_every_golden_kind_or_refuses_it() {
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures().join("golden/cases")).expect("cases") {
        let path = entry.expect("entry").path();
        let case: Case =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let text = std::fs::read_to_string(
            fixtures().join(format!("golden/models/{}/1/model.txt", case.model)),
        )
        .expect("model");
        let header = ModelHeader::parse(&text).expect("header");
        let native = match NativeModel::from_text(&text, &header) {
            Ok(n) => n,
            Err(ModelError::Unsupported(why)) => {
                assert_eq!(case.model, "linear_tree", "{}: refused: {why}", case.model);
                continue;
            }
            Err(e) => panic!("{}: {e}", case.model),
        };
        let rows: Vec<f64> = case
            .rows
            .iter()
            .flatten()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect();
        let got = native.predict(&rows);
        let reference = Model::from_text(&text, EnginePreference::LightGbm)
            .expect("lightgbm3")
            .predict(&rows)
            .expect("predict");
        for (i, ((g, want), r)) in got.iter().zip(&case.expected).zip(&reference).enumerate() {
            assert!(
                (g - want).abs() <= 1e-9,
                "{} row {i}: native {g}, LightGBM {want}",
                case.model
            );
            assert!(
                (g - r).abs() <= 1e-9,
                "{} row {i}: native {g}, lightgbm3 {r}",
                case.model
            );
        }
        checked += 1;
    }
    assert_eq!(
        checked, 14,
        "every golden kind but linear_tree is scored natively"
    );
}

#[test]
fn multiclass_is_refused() {
    let text = std::fs::read_to_string(fixtures().join("unservable/models/multiclass/1/model.txt"))
        .expect("model");
    let header = ModelHeader::parse(&text).expect("header");
    assert!(matches!(
        NativeModel::from_text(&text, &header),
        Err(ModelError::Unsupported(_))
    ));
}

#[test]
fn auto_engine_is_native_wherever_it_is_exact() {
    for entry in std::fs::read_dir(fixtures().join("golden/models")).expect("models") {
        let dir = entry.expect("entry").path();
        let name = dir.file_name().expect("name").to_string_lossy().to_string();
        let model = Model::load(&dir.join("1/model.txt"), EnginePreference::Auto).expect("load");
        if name == "linear_tree" {
            assert_eq!(model.engine_kind().as_str(), "lightgbm3");
            assert_eq!(
                model.native_refusal().map(|r| r.reason()),
                Some("unsupported")
            );
        } else {
            assert_eq!(
                model.engine_kind().as_str(),
                "native",
                "{name}: {:?}",
                model.native_refusal()
            );
            assert!(model.memory_bytes().is_some_and(|b| b > 0));
        }
        let forced =
            Model::load(&dir.join("1/model.txt"), EnginePreference::LightGbm).expect("load");
        assert_eq!(forced.engine_kind().as_str(), "lightgbm3");
        assert_eq!(forced.native_refusal().map(|r| r.reason()), Some("forced"));
    }
}

/// Models trained on the fly on random data (NaNs, zeros, several objectives and shapes):
/// the native evaluator equals lightgbm3 on random rows and on its own probe rows.
#[test]
fn randomised_models_match_lightgbm() {
    use rand::{Rng, SeedableRng};
    let objectives = [
        "regression",
        "binary",
        "poisson",
        "huber",
        "cross_entropy",
        "tweedie",
    ];
    for seed in 0..12u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let features = rng.gen_range(3..12usize);
        // Feature 0 holds small integer categories in half of the runs.
        let categorical = seed % 2 == 1;
        let n = 600;
        let mut x = Vec::with_capacity(n * features);
        for i in 0..n * features {
            if categorical && i % features == 0 {
                x.push(rng.gen_range(0..8) as f64);
                continue;
            }
            let v: f64 = match rng.gen_range(0..10) {
                0 => f64::NAN,
                1 | 2 => 0.0,
                3 => rng.gen_range(0..5) as f64,
                _ => rng.gen_range(-3.0..3.0),
            };
            x.push(v);
        }
        let objective = objectives[seed as usize % objectives.len()];
        let labels: Vec<f32> = x
            .chunks(features)
            .map(|r| {
                let s = r
                    .iter()
                    .map(|v| if v.is_nan() { 0.5 } else { *v })
                    .sum::<f64>();
                match objective {
                    "binary" | "cross_entropy" => f32::from(s > 0.0),
                    "poisson" | "tweedie" => (s.abs() as f32).floor(),
                    _ => s as f32,
                }
            })
            .collect();
        let dataset =
            lightgbm3::Dataset::from_slice(&x, &labels, features as i32, true).expect("dataset");
        let params = serde_json::json!({
            "objective": objective, "num_iterations": rng.gen_range(5..40),
            "num_leaves": rng.gen_range(2..40), "min_data_in_leaf": rng.gen_range(1..20),
            "learning_rate": 0.2, "seed": seed, "deterministic": true, "num_threads": 1, "verbose": -1,
            // Every missing-value rule: NaN, zero-as-missing, none.
            "zero_as_missing": seed % 3 == 0, "use_missing": seed % 4 != 2,
            "categorical_feature": if categorical { "0" } else { "" },
            "min_data_per_group": 5, "cat_smooth": 1.0,
        });
        let booster = lightgbm3::Booster::train(dataset, &params).expect("train");
        let text = booster.save_string().expect("save");
        let header = ModelHeader::parse(&text).expect("header");
        let native = NativeModel::from_text(&text, &header).expect("native");
        let reference = Model::from_text(&text, EnginePreference::LightGbm).expect("reference");
        let mut rows = native.probe_rows();
        rows.extend(&x);
        let want = reference.predict(&rows).expect("predict");
        // Batches across the evaluator's modes and block edges (walk below 4 rows, one
        // 64-row word up to 64 rows, 256-row blocks above).
        for batch in [1, 3, 4, 5, 63, 64, 65, 255, 256, 257, 600] {
            let got = native.predict(&rows[..batch * features]);
            assert_eq!(got.len(), batch);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-9,
                    "seed {seed} ({objective}) batch {batch} row {i}: native {g}, LightGBM {w}"
                );
            }
            // Rows binned one value at a time (the sidecar's cached item bins) score the same.
            if let Some(bin_features) = native.bin_features() {
                let binned: Vec<u8> = rows[..batch * features]
                    .chunks_exact(features)
                    .flat_map(|row| {
                        bin_features
                            .iter()
                            .enumerate()
                            .map(|(c, &f)| native.bin(c, row[f]))
                    })
                    .collect();
                let from_bins = native.predict_binned(&binned, batch);
                assert_eq!(
                    from_bins, got,
                    "seed {seed} batch {batch}: binned rows differ"
                );
            } else {
                assert!(categorical, "only categorical splits read raw values");
            }
        }
        assert_eq!(
            Model::from_text(&text, EnginePreference::Auto)
                .expect("auto")
                .engine_kind()
                .as_str(),
            "native"
        );
    }
}

/// The native evaluator bins each feature by the model's own thresholds in one byte; a
/// feature split at more than 254 distinct thresholds is refused, and lightgbm3 serves it.
#[test]
fn features_with_too_many_thresholds_are_left_to_lightgbm() {
    // LightGBM's default max_bin (255) keeps a feature below 255 thresholds; larger max_bin
    // values allow more. Stumps trained here get 300 distinct thresholds on one feature
    // (`tree_sizes` dropped, so that LightGBM re-reads the edited tree blocks).
    let x: Vec<f64> = (0..400).map(f64::from).collect();
    let labels: Vec<f32> = x.iter().map(|v| (v * 0.37).sin() as f32).collect();
    let dataset = lightgbm3::Dataset::from_slice(&x, &labels, 1, true).expect("dataset");
    let params = serde_json::json!({
        "objective": "regression", "num_iterations": 300, "num_leaves": 2,
        "min_data_in_leaf": 1, "learning_rate": 0.5, "seed": 1, "deterministic": true,
        "num_threads": 1, "verbose": -1,
    });
    let booster = lightgbm3::Booster::train(dataset, &params).expect("train");
    let mut tree = 0;
    let text: String = booster
        .save_string()
        .expect("save")
        .lines()
        .filter(|l| !l.starts_with("tree_sizes="))
        .map(|l| {
            if l.starts_with("threshold=") {
                tree += 1;
                format!("threshold={}.5\n", tree)
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_eq!(tree, 300);
    let header = ModelHeader::parse(&text).expect("header");
    match NativeModel::from_text(&text, &header) {
        Err(rescore_model::ModelError::Unsupported(why)) => {
            assert!(why.contains("distinct thresholds"), "{why}")
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    let model = Model::from_text(&text, EnginePreference::Auto).expect("auto");
    assert_eq!(model.engine_kind().as_str(), "lightgbm3");
    assert_eq!(
        model.native_refusal().map(|r| r.reason()),
        Some("unsupported")
    );
    let scores = model.predict(&[10.0, 150.0, 299.0]).expect("predict");
    assert!(scores.iter().all(|s| s.is_finite()));
}

/// Models LightGBM would load but that are not trees (a cycle, a shared subtree, a leaf used
/// twice) or whose bitset table is inconsistent are refused, not compiled or served.
#[test]
fn malformed_trees_are_refused() {
    let text = std::fs::read_to_string(fixtures().join("golden/models/regression/1/model.txt"))
        .expect("model");
    let tree0 = text.split("\nTree=1").next().expect("tree 0");
    let left = tree0
        .lines()
        .find(|l| l.starts_with("left_child="))
        .expect("left_child");
    let values: Vec<&str> = left["left_child=".len()..].split(' ').collect();
    // node 0's left child pointing at node 0 itself: a cycle
    let cyclic = format!("left_child=0 {}", values[1..].join(" "));
    let broken = text.replacen(left, &cyclic, 1);
    match Model::from_text(&broken, EnginePreference::Auto) {
        Err(ModelError::Format(why)) => assert!(why.contains("tree"), "{why}"),
        other => panic!("cyclic tree accepted: {other:?}"),
    }
    let with_nul = text.replacen("version=v4", "version=v4\0", 1);
    assert!(matches!(
        Model::from_text(&with_nul, EnginePreference::Auto),
        Err(ModelError::Format(_))
    ));

    let cat = std::fs::read_to_string(fixtures().join("golden/models/categorical/1/model.txt"))
        .expect("model");
    let bounds = cat
        .lines()
        .find(|l| l.starts_with("cat_boundaries="))
        .expect("cat_boundaries");
    let mut b: Vec<u64> = bounds["cat_boundaries=".len()..]
        .split(' ')
        .map(|v| v.parse().expect("n"))
        .collect();
    b.swap(1, 2); // no longer ascending
    let swapped = format!(
        "cat_boundaries={}",
        b.iter().map(u64::to_string).collect::<Vec<_>>().join(" ")
    );
    let broken = cat.replacen(bounds, &swapped, 1);
    let header = ModelHeader::parse(&broken).expect("header");
    assert!(matches!(
        NativeModel::from_text(&broken, &header),
        Err(ModelError::Format(_))
    ));
}

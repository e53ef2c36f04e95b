//! The native evaluator against LightGBM's own predictions (golden fixtures) and against the
//! `lightgbm3` engine on the same rows.

use std::path::PathBuf;

use rescore_model::{Model, ModelError, ModelHeader, NativeModel};

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
        let reference = Model::from_text(&text)
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

//! LightGBM text models for the sidecar: parsing what serving needs from the header, and the
//! scoring engines. Every engine returns LightGBM's standard prediction (output transform
//! included) for row-major feature rows where NaN means missing.

mod header;
mod lightgbm;
mod native;

use std::path::Path;

pub use header::ModelHeader;
pub use lightgbm::LightGbmEngine;
pub use native::NativeModel;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid model: {0}")]
    Format(String),
    #[error("unsupported model: {0}")]
    Unsupported(String),
    #[error("LightGBM: {0}")]
    Engine(String),
    #[error("expected {expected} values ({rows} rows x {features} features), got {got}")]
    Shape {
        expected: usize,
        rows: usize,
        features: usize,
        got: usize,
    },
}

/// Which implementation scores a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// The native evaluator (exact, faster), after passing its self-check.
    Native,
    /// LightGBM's C API through `lightgbm3`.
    LightGbm,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Native => "native",
            EngineKind::LightGbm => "lightgbm3",
        }
    }
}

/// Which engine a model may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EnginePreference {
    /// The native evaluator when it can score the model exactly (self-checked), else lightgbm3.
    #[default]
    Auto,
    /// Always lightgbm3.
    LightGbm,
}

/// Why a model is served by lightgbm3 rather than the native evaluator.
#[derive(Debug, Clone, PartialEq)]
pub enum NativeRefusal {
    /// Configuration asked for lightgbm3.
    Forced,
    /// The native evaluator does not implement something in the model (linear trees, ...).
    Unsupported(String),
    /// The native evaluator disagreed with LightGBM on a probe row.
    SelfCheck(String),
}

impl NativeRefusal {
    /// Low-cardinality label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            NativeRefusal::Forced => "forced",
            NativeRefusal::Unsupported(_) => "unsupported",
            NativeRefusal::SelfCheck(_) => "self_check",
        }
    }
}

impl std::fmt::Display for NativeRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NativeRefusal::Forced => f.write_str("lightgbm3 forced by configuration"),
            NativeRefusal::Unsupported(why) => write!(f, "not supported natively: {why}"),
            NativeRefusal::SelfCheck(why) => write!(f, "native self-check failed: {why}"),
        }
    }
}

/// Probe rows scored by both engines at load; one difference above this refuses the native one.
pub const PARITY_TOLERANCE: f64 = 1e-9;
/// The batch sizes the self-check scores its probe rows in: each kernel and the edges between
/// them (a walk below 4 rows, one 64-row word of row sets, 256-row blocks).
pub const SELF_CHECK_BATCHES: [usize; 6] = [1, 3, 64, 65, 256, 257];

enum Engine {
    Native(Box<NativeModel>),
    LightGbm(LightGbmEngine),
}

/// A loaded model, ready to score from any thread.
pub struct Model {
    header: ModelHeader,
    engine: Engine,
    refusal: Option<NativeRefusal>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("header", &self.header)
            .field("engine", &self.engine_kind().as_str())
            .finish()
    }
}

impl Model {
    pub fn load(path: &Path, preference: EnginePreference) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_text(&text, preference)
    }

    /// Loads with lightgbm3 (the reference: a model it refuses is refused), then compiles the
    /// native evaluator and keeps it only if it agrees with lightgbm3 on probe rows built from
    /// the model's own thresholds, categories, NaN and zeros.
    pub fn from_text(text: &str, preference: EnginePreference) -> Result<Self, ModelError> {
        Self::from_text_altered(text, preference, |_| {})
    }

    /// [`Self::from_text`] with `alter` applied to the native evaluator's compiled form before
    /// its self-check: the tests' way of making the native engine wrong.
    fn from_text_altered(
        text: &str,
        preference: EnginePreference,
        alter: impl FnOnce(&mut NativeModel),
    ) -> Result<Self, ModelError> {
        if text.contains('\0') {
            return Err(ModelError::Format(
                "the model text contains a NUL byte".into(),
            ));
        }
        let header = ModelHeader::parse(text)?;
        if header.num_class != 1 || header.num_tree_per_iteration != 1 {
            return Err(ModelError::Unsupported(format!(
                "{} classes: a rescorer needs exactly one score per hit",
                header.num_class
            )));
        }
        native::check_complete(text)?;
        let reference = match LightGbmEngine::from_model_text(text, header.num_features) {
            Ok(reference) => reference,
            // LightGBM names a failed internal check (`Check failed: (strs.size()) == ...`);
            // the native parser names the line at fault, e.g. of a truncated file.
            Err(error) => {
                return Err(match NativeModel::from_text(text, &header) {
                    Err(ModelError::Format(at)) => ModelError::Format(at),
                    _ => error,
                })
            }
        };
        let refusal = match preference {
            EnginePreference::LightGbm => NativeRefusal::Forced,
            EnginePreference::Auto => match NativeModel::from_text(text, &header) {
                Err(ModelError::Unsupported(why)) => NativeRefusal::Unsupported(why),
                // A structurally broken model (bad indices, not a tree) is refused outright:
                // LightGBM does not bounds-check and could crash the process scoring it.
                Err(e) => return Err(e),
                Ok(mut native) => {
                    alter(&mut native);
                    match self_check(&native, &reference) {
                        Ok(()) => {
                            return Ok(Model {
                                header,
                                engine: Engine::Native(Box::new(native)),
                                refusal: None,
                            })
                        }
                        Err(why) => {
                            tracing::warn!(%why, "native evaluator refused by its self-check; lightgbm3 serves the model");
                            NativeRefusal::SelfCheck(why)
                        }
                    }
                }
            },
        };
        Ok(Model {
            header,
            engine: Engine::LightGbm(reference),
            refusal: Some(refusal),
        })
    }

    pub fn header(&self) -> &ModelHeader {
        &self.header
    }

    pub fn feature_names(&self) -> &[String] {
        &self.header.feature_names
    }

    pub fn num_features(&self) -> usize {
        self.header.num_features
    }

    pub fn engine_kind(&self) -> EngineKind {
        match self.engine {
            Engine::Native(_) => EngineKind::Native,
            Engine::LightGbm(_) => EngineKind::LightGbm,
        }
    }

    /// Why lightgbm3 serves this model, if it does.
    pub fn native_refusal(&self) -> Option<&NativeRefusal> {
        self.refusal.as_ref()
    }

    /// Bytes held by the native evaluator's compiled form (None for lightgbm3, whose memory
    /// lives in LightGBM's C++ heap).
    /// The native evaluator, when it serves this model.
    pub fn native(&self) -> Option<&NativeModel> {
        match &self.engine {
            Engine::Native(native) => Some(native),
            Engine::LightGbm(_) => None,
        }
    }

    pub fn memory_bytes(&self) -> Option<usize> {
        match &self.engine {
            Engine::Native(n) => Some(n.memory_bytes()),
            Engine::LightGbm(_) => None,
        }
    }

    /// Scores `rows.len() / num_features` row-major rows.
    pub fn predict(&self, rows: &[f64]) -> Result<Vec<f64>, ModelError> {
        let features = self.num_features();
        let n = rows.len() / features;
        if n * features != rows.len() {
            return Err(ModelError::Shape {
                expected: (n + 1) * features,
                rows: n + 1,
                features,
                got: rows.len(),
            });
        }
        let scores = match &self.engine {
            Engine::Native(native) => native.predict(rows),
            Engine::LightGbm(engine) => engine.predict(rows)?,
        };
        if scores.len() != n {
            return Err(ModelError::Engine(format!(
                "returned {} scores for {n} rows",
                scores.len()
            )));
        }
        Ok(scores)
    }
}

/// Scores the native evaluator's probe rows (every threshold and its neighbours, NaN and zero
/// at every split, every category of every bitset and one outside it) in each batch size of
/// [`SELF_CHECK_BATCHES`], and again binned value by value through `bin` + `predict_binned`
/// (the path of bins cached with the items), against lightgbm3 on the same rows.
fn self_check(native: &NativeModel, reference: &LightGbmEngine) -> Result<(), String> {
    let rows = native.probe_rows();
    let width = native.num_features().max(1);
    let n_rows = rows.len() / width;
    let want = reference.predict(&rows).map_err(|e| e.to_string())?;
    let compare = |got: &[f64], how: &str| -> Result<(), String> {
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let agree = (g - w).abs() <= PARITY_TOLERANCE || (g.is_nan() && w.is_nan());
            if !agree {
                return Err(format!(
                    "probe row {i} of {n_rows} ({how}): native {g}, LightGBM {w}"
                ));
            }
        }
        if got.len() != want.len() {
            return Err(format!("{how}: {} scores for {n_rows} rows", got.len()));
        }
        Ok(())
    };
    for batch in SELF_CHECK_BATCHES {
        let got: Vec<f64> = rows
            .chunks(batch * width)
            .flat_map(|chunk| native.predict(chunk))
            .collect();
        compare(&got, &format!("{batch}-row batches"))?;
    }
    if let Some(features) = native.bin_features() {
        let bins: Vec<u8> = rows
            .chunks_exact(width)
            .flat_map(|row| {
                features
                    .iter()
                    .enumerate()
                    .map(|(column, &feature)| native.bin(column, row[feature]))
            })
            .collect();
        let n_bins = features.len();
        for batch in SELF_CHECK_BATCHES {
            let mut got = Vec::with_capacity(n_rows);
            for start in (0..n_rows).step_by(batch) {
                let end = (start + batch).min(n_rows);
                got.extend(native.predict_binned(&bins[start * n_bins..end * n_bins], end - start));
            }
            compare(&got, &format!("binned, {batch}-row batches"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use native::testing::trained_model_text;

    /// A native model that disagrees with LightGBM (one threshold moved) fails the self-check.
    #[test]
    fn self_check_catches_a_disagreeing_evaluator() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/golden/models/regression/1/model.txt");
        let text = std::fs::read_to_string(path).expect("fixture");
        let header = ModelHeader::parse(&text).expect("header");
        let reference = LightGbmEngine::from_model_text(&text, header.num_features).expect("lgbm");
        let native = NativeModel::from_text(&text, &header).expect("native");
        assert_eq!(self_check(&native, &reference), Ok(()));

        let line = text
            .lines()
            .find(|l| l.starts_with("threshold="))
            .expect("threshold line");
        let first = line["threshold=".len()..].split(' ').next().expect("value");
        let moved: f64 = first.parse::<f64>().expect("number").next_up();
        let altered = text.replacen(line, &line.replacen(first, &format!("{moved:?}"), 1), 1);
        let wrong = NativeModel::from_text(&altered, &header).expect("native");
        let err = self_check(&wrong, &reference).expect_err("must disagree");
        assert!(err.contains("probe row"), "{err}");
    }

    /// A file cut in the middle of a tree is refused with the line at fault, not LightGBM's
    /// internal check.
    #[test]
    fn a_truncated_model_file_names_the_line() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/golden/models/regression/1/model.txt");
        let text = std::fs::read_to_string(path).expect("fixture");
        let (at, line) = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with("threshold="))
            .nth(3)
            .expect("a fourth tree");
        // Cut after the third value of that line.
        let offset =
            text.find(line).expect("line") + line.match_indices(' ').nth(2).expect("values").0;
        let truncated = &text[..offset];
        for preference in [EnginePreference::Auto, EnginePreference::LightGbm] {
            let err = Model::from_text(truncated, preference).expect_err("truncated");
            let message = err.to_string();
            let want = format!(
                "line {}: the file ends inside tree 3, before `end of trees`",
                at + 1
            );
            assert!(message.contains(&want), "{message}");
        }
    }

    /// Faults injected into the native engine's compiled form (LightGBM, reading the same
    /// model text, is unaffected): each is refused by the self-check, and the model is served
    /// by lightgbm3 with LightGBM's scores.
    #[test]
    fn self_check_refuses_each_injected_fault() {
        let text = trained_model_text();
        let exact = Model::from_text(&text, EnginePreference::Auto).expect("model");
        assert_eq!(
            exact.engine_kind(),
            EngineKind::Native,
            "{:?}",
            exact.native_refusal()
        );
        let reference = Model::from_text(&text, EnginePreference::LightGbm).expect("model");
        let want = reference.predict(&rows_of(&text)).expect("scores");

        type Inject = Box<dyn Fn(&mut NativeModel)>;
        let faults: [(&str, Inject); 4] = [
            (
                "threshold moved one ulp in a deep split",
                Box::new(|m: &mut NativeModel| {
                    let (tree, depth) = m.move_deep_threshold();
                    assert!(depth >= 8, "split depth {depth}");
                    assert!(tree > 0);
                }),
            ),
            (
                "one bit of a categorical bitset flipped",
                Box::new(NativeModel::flip_category_bit),
            ),
            (
                "default direction of missing values flipped",
                Box::new(NativeModel::flip_default_direction),
            ),
            (
                "a leaf of the last tree changed",
                Box::new(NativeModel::change_last_leaf),
            ),
        ];
        let categorical = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures/golden/models/categorical/1/model.txt"),
        )
        .expect("fixture");
        for (fault, inject) in faults {
            // The golden categorical model has the bitsets (the trained one has none).
            let (text, want) = if fault.contains("bitset") {
                let reference =
                    Model::from_text(&categorical, EnginePreference::LightGbm).expect("model");
                let want = reference.predict(&rows_of(&categorical)).expect("scores");
                (categorical.as_str(), want)
            } else {
                (text.as_str(), want.clone())
            };
            let model = Model::from_text_altered(text, EnginePreference::Auto, |m| inject(m))
                .expect("model");
            assert_eq!(model.engine_kind(), EngineKind::LightGbm, "{fault}");
            let refusal = model.native_refusal().expect("refused");
            assert_eq!(refusal.reason(), "self_check", "{fault}: {refusal}");
            assert_eq!(
                model.predict(&rows_of(text)).expect("scores"),
                want,
                "{fault}"
            );
        }
    }

    /// The probe rows of a model's unaltered native form.
    fn rows_of(text: &str) -> Vec<f64> {
        let header = ModelHeader::parse(text).expect("header");
        NativeModel::from_text(text, &header)
            .expect("native")
            .probe_rows()
    }
}

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
const SELF_CHECK_ROWS: usize = 512;

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
        let reference = LightGbmEngine::from_model_text(text, header.num_features)?;
        let refusal = match preference {
            EnginePreference::LightGbm => NativeRefusal::Forced,
            EnginePreference::Auto => match NativeModel::from_text(text, &header) {
                Err(ModelError::Unsupported(why)) => NativeRefusal::Unsupported(why),
                // A structurally broken model (bad indices, not a tree) is refused outright:
                // LightGBM does not bounds-check and could crash the process scoring it.
                Err(e) => return Err(e),
                Ok(native) => match self_check(&native, &reference) {
                    Ok(()) => {
                        return Ok(Model {
                            header,
                            engine: Engine::Native(Box::new(native)),
                            refusal: None,
                        })
                    }
                    Err(why) => NativeRefusal::SelfCheck(why),
                },
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

fn self_check(native: &NativeModel, reference: &LightGbmEngine) -> Result<(), String> {
    let rows = native.probe_rows(SELF_CHECK_ROWS);
    let want = reference.predict(&rows).map_err(|e| e.to_string())?;
    let got = native.predict(&rows);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let agree = (g - w).abs() <= PARITY_TOLERANCE || (g.is_nan() && w.is_nan());
        if !agree {
            return Err(format!("probe row {i}: native {g}, LightGBM {w}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

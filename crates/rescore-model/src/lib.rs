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
    LightGbm,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::LightGbm => "lightgbm3",
        }
    }
}

/// A loaded model, ready to score from any thread.
pub struct Model {
    header: ModelHeader,
    engine: LightGbmEngine,
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
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_text(&text)
    }

    pub fn from_text(text: &str) -> Result<Self, ModelError> {
        let header = ModelHeader::parse(text)?;
        if header.num_class != 1 || header.num_tree_per_iteration != 1 {
            return Err(ModelError::Unsupported(format!(
                "{} classes: a rescorer needs exactly one score per hit",
                header.num_class
            )));
        }
        let engine = LightGbmEngine::from_model_text(text, header.num_features)?;
        Ok(Model { header, engine })
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
        EngineKind::LightGbm
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
        let scores = self.engine.predict(rows)?;
        if scores.len() != n {
            return Err(ModelError::Engine(format!(
                "returned {} scores for {n} rows",
                scores.len()
            )));
        }
        Ok(scores)
    }
}

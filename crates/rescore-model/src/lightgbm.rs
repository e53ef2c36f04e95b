//! The reference engine: LightGBM's own C API through `lightgbm3`.

use lightgbm3::Booster;

use crate::ModelError;

pub struct LightGbmEngine {
    booster: Booster,
    num_features: usize,
}

// SAFETY: `Booster` only holds LightGBM's opaque handle. LightGBM's C API booster takes a shared
// lock around prediction (`Booster::Predict` in c_api.cpp) and a unique lock around anything that
// mutates it; we never mutate after loading, and the handle is freed once, on drop.
#[allow(unsafe_code)]
unsafe impl Send for LightGbmEngine {}
// SAFETY: see above; `predict` takes `&self` and the C side synchronises concurrent predictions.
#[allow(unsafe_code)]
unsafe impl Sync for LightGbmEngine {}

impl LightGbmEngine {
    pub fn from_model_text(text: &str, num_features: usize) -> Result<Self, ModelError> {
        let booster = Booster::from_string(text).map_err(|e| ModelError::Engine(e.to_string()))?;
        if booster.num_features() as usize != num_features {
            return Err(ModelError::Format(format!(
                "LightGBM reports {} features, the header {num_features}",
                booster.num_features()
            )));
        }
        Ok(LightGbmEngine {
            booster,
            num_features,
        })
    }

    /// Standard prediction (output transform included) for row-major `rows`.
    /// One OpenMP thread per call: the sidecar parallelises across requests, and several shards
    /// call at once, so per-call threads would only oversubscribe the cores.
    pub fn predict(&self, rows: &[f64]) -> Result<Vec<f64>, ModelError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        self.booster
            .predict_with_params(rows, self.num_features as i32, true, "num_threads=1")
            .map_err(|e| ModelError::Engine(e.to_string()))
    }
}

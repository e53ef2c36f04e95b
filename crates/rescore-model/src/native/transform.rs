//! The objective's output transform (LightGBM's `ConvertOutput`) and `average_output`,
//! applied to a row's raw sum.

use super::NativeModel;
use crate::ModelError;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Transform {
    Identity,
    SignedSquare,
    Sigmoid(f64),
    Log1pExp,
    Exp,
}

pub(super) fn transform_of(objective: &str) -> Result<Transform, ModelError> {
    let mut parts = objective.split_whitespace();
    let name = parts.next().unwrap_or("");
    let params: Vec<&str> = parts.collect();
    Ok(match name {
        "lambdarank" | "rank_xendcg" => Transform::Identity,
        "regression" | "regression_l1" | "huber" | "fair" | "quantile" | "mape" => {
            if params.contains(&"sqrt") {
                Transform::SignedSquare
            } else {
                Transform::Identity
            }
        }
        "binary" => {
            let sigmoid = params
                .iter()
                .find_map(|p| p.strip_prefix("sigmoid:"))
                .map(|v| {
                    v.parse::<f64>()
                        .map_err(|_| ModelError::Format(format!("objective `{objective}`")))
                })
                .transpose()?
                .unwrap_or(1.0);
            Transform::Sigmoid(sigmoid)
        }
        "cross_entropy" => Transform::Sigmoid(1.0),
        "cross_entropy_lambda" => Transform::Log1pExp,
        "poisson" | "gamma" | "tweedie" => Transform::Exp,
        other => {
            return Err(ModelError::Unsupported(format!(
                "objective `{other}` has no exact native output transform"
            )))
        }
    })
}

impl NativeModel {
    /// A row's sum of leaf values as LightGBM's standard prediction.
    pub(super) fn output(&self, sum: f64) -> f64 {
        let sum = if self.average_output {
            sum / self.trees.len() as f64
        } else {
            sum
        };
        match self.transform {
            Transform::Identity => sum,
            Transform::SignedSquare => sum.signum() * sum * sum,
            Transform::Sigmoid(s) => 1.0 / (1.0 + (-s * sum).exp()),
            Transform::Log1pExp => sum.exp().ln_1p(),
            Transform::Exp => sum.exp(),
        }
    }
}

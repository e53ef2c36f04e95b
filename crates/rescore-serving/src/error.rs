//! The serving core's errors: refused requests (4xx), admin calls not applied, start-up
//! configuration that cannot serve.

use rescore_api::{ErrorCode, ReloadReport};

/// A request the sidecar refuses (4xx); everything else is answered, with the baseline if need be.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RescoreError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("no `model` given and {0}")]
    ModelRequired(String),
    #[error("model `{0}` is not configured")]
    UnknownModel(String),
}

impl RescoreError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RescoreError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            RescoreError::ModelRequired(_) => ErrorCode::ModelRequired,
            RescoreError::UnknownModel(_) => ErrorCode::UnknownModel,
        }
    }
}

/// An admin call that was not applied; the previous state keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("model `{0}` is not configured")]
    UnknownModel(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{}", .0.errors.join("; "))]
    NotApplied(Box<ReloadReport>),
}

impl AdminError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AdminError::UnknownModel(_) => ErrorCode::UnknownModel,
            AdminError::Invalid(_) => ErrorCode::InvalidRequest,
            AdminError::NotApplied(_) => ErrorCode::ReloadFailed,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("serving.default_model `{0}` is not among the models found under --models ({1})")]
    UnknownDefaultModel(String, String),
    #[error("{0}")]
    Config(String),
}

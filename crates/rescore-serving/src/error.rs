//! The serving core's errors: refused requests (4xx), admin calls not applied, start-up
//! configuration that cannot serve.

use rescore_api::{ErrorCode, ReloadReport};

/// At most this many bytes of a name a client sent are quoted back in an error message.
pub const MAX_ECHOED_NAME_BYTES: usize = 128;

/// `name` as an error message quotes it: whole up to [`MAX_ECHOED_NAME_BYTES`], else its
/// first bytes up to that bound (cut at a character boundary) and its length.
pub fn echoed(name: &str) -> String {
    if name.len() <= MAX_ECHOED_NAME_BYTES {
        return name.to_string();
    }
    let end = (0..=MAX_ECHOED_NAME_BYTES)
        .rev()
        .find(|&i| name.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}... ({} bytes)", &name[..end], name.len())
}

/// A request the sidecar refuses (4xx); everything else is answered, with the baseline if need be.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RescoreError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("no `model` given and {0}")]
    ModelRequired(String),
    #[error("model `{}` is not configured", echoed(.0))]
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
    #[error("model `{}` is not configured", echoed(.0))]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_echoed_up_to_128_bytes() {
        let short = RescoreError::UnknownModel("nope".into());
        assert_eq!(short.to_string(), "model `nope` is not configured");
        let long = RescoreError::UnknownModel("x".repeat(100_000));
        let message = long.to_string();
        assert_eq!(
            message,
            format!(
                "model `{}... (100000 bytes)` is not configured",
                "x".repeat(128)
            )
        );
        // A cut never splits a character: after 127 one-byte characters, a 3-byte '€' does
        // not fit in 128 bytes and is left out whole.
        let accents = format!("{}€€", "a".repeat(127));
        assert_eq!(
            echoed(&accents),
            format!("{}... (133 bytes)", "a".repeat(127))
        );
        let admin = AdminError::UnknownModel("y".repeat(1000));
        assert!(admin.to_string().len() < 200, "{admin}");
    }
}

//! The HTTP API v1 (docs/api.md): `app(state) -> Router`, testable without a socket, and the
//! admin API (`admin::app`) served on its own loopback listener behind a token.

pub mod admin;
mod body;
pub mod listener;

pub(crate) use body::parse_json;
pub use body::{decode_rescore_body, decode_rescore_scores};

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use rescore_api::{ErrorBody, ErrorCode};
use rescore_monitor as mon;
use rescore_serving::{RescoreError, Rescorer};

/// Default request body limit: 16 MiB (1,000 hits x 300 inline features is about 4 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// Default deadline for receiving a whole request body.
pub const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Clone)]
pub struct AppState {
    pub rescorer: Arc<Rescorer>,
    /// `None` in tests that install no recorder: `/metrics` then answers empty.
    pub metrics: Option<PrometheusHandle>,
    pub body_limit: usize,
    /// The whole body must arrive within this (a deadline, not an idle timeout).
    pub body_timeout: std::time::Duration,
}

pub fn app(state: AppState) -> Router {
    let body_limit = state.body_limit;
    Router::new()
        .route("/v1/rescore", post(rescore))
        .route("/v1/models", get(models))
        .route("/v1/drift", get(drift))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::new(ErrorCode::Internal, "internal error").into_response()
            },
        ))
        .with_state(state)
}

/// The one place an error becomes an HTTP response.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
}

impl ApiError {
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(ErrorBody::new(self.code, self.message))).into_response()
    }
}

impl From<RescoreError> for ApiError {
    fn from(e: RescoreError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

/// The budget starts here, when the request's headers have been read: reading and parsing
/// the body count against it, as they count against the caller's wait.
async fn rescore(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let arrived = std::time::Instant::now();
    let decoded = match body::read_body(req, &state).await {
        Ok(bytes) => body::decode_rescore(&state.rescorer, bytes, arrived).await,
        Err(e) => Err(e),
    };
    let request = match decoded {
        Ok(body::Decoded::Request(request)) => request,
        Ok(body::Decoded::Refused(answer)) => return Ok(Json(answer).into_response()),
        Err(e) => {
            metrics::counter!(mon::REQUESTS, "model" => "", "variant" => "",
                "outcome" => mon::outcome::REJECTED)
            .increment(1);
            return Err(e);
        }
    };
    let response = state.rescorer.rescore_since(request, arrived).await?;
    Ok(Json(response).into_response())
}

async fn models(State(state): State<AppState>) -> Response {
    Json(state.rescorer.models()).into_response()
}

/// Drift and outlier measures of every monitored model version, computed now.
async fn drift(State(state): State<AppState>) -> Response {
    Json(state.rescorer.monitor().report()).into_response()
}

async fn healthz() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let ready = state.rescorer.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(serde_json::json!({"ready": ready}))).into_response()
}

/// The exporter's text without the series of versions no longer loaded (the exporter cannot
/// forget a series; see `rescore_monitor::exposition`).
async fn metrics_text(State(state): State<AppState>) -> Response {
    let body = match &state.metrics {
        Some(handle) => {
            let loaded = state.rescorer.loaded_versions();
            mon::exposition::retain_loaded_versions(&handle.render(), |model, version| {
                loaded
                    .iter()
                    .any(|(m, v)| m == model && version.parse() == Ok(*v))
            })
        }
        None => String::new(),
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

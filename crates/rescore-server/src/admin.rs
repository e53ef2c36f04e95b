//! The admin API (docs/operations.md): reload, routing changes, promotion and rollback.
//! Served on its own listener (loopback by default) and only with a bearer token configured;
//! every call is counted and logged. Changes are applied off the async workers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rescore_api::ErrorCode;
use rescore_monitor as mon;
use rescore_serving::{AdminError, ModelRouting, Rescorer, RoutingFile};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::{parse_json, ApiError};

#[derive(Clone)]
pub struct AdminState {
    pub rescorer: Arc<Rescorer>,
    /// The bearer token every call must carry.
    pub token: Arc<str>,
}

pub fn app(state: AdminState) -> Router {
    Router::new()
        .route("/admin/v1/reload", post(reload))
        .route("/admin/v1/models", get(models))
        .route("/admin/v1/routing", get(routing).put(put_routing))
        .route("/admin/v1/models/{name}/routing", put(put_model_routing))
        .route("/admin/v1/models/{name}/live", post(pin_live))
        .route("/admin/v1/models/{name}/rollback", post(rollback))
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such admin route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "method not allowed on this route",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        .with_state(state)
}

async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !bool::from(presented.as_bytes().ct_eq(state.token.as_bytes())) {
        metrics::counter!(mon::ADMIN_REQUESTS, "outcome" => "unauthorized").increment(1);
        tracing::warn!(path = %request.uri().path(), "admin call without a valid token");
        return ApiError::new(
            ErrorCode::Unauthorized,
            "admin calls need the header `Authorization: Bearer <token>` with the configured admin token",
        )
        .into_response();
    }
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let outcome = if response.status().is_success() {
        "ok"
    } else {
        "refused"
    };
    metrics::counter!(mon::ADMIN_REQUESTS, "outcome" => outcome).increment(1);
    tracing::info!(%path, status = response.status().as_u16(), "admin call");
    response
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

/// Runs a blocking admin operation off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AdminError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "admin operation panicked"))?
        .map_err(ApiError::from)
}

fn report_response(report: rescore_api::ReloadReport) -> Response {
    Json(report).into_response()
}

async fn reload(State(state): State<AdminState>) -> Result<Response, ApiError> {
    let rescorer = state.rescorer.clone();
    let report = blocking(move || Ok(rescorer.reload(mon::reload_trigger::ADMIN))).await?;
    if report.result == mon::reload_result::SUCCESS {
        Ok(report_response(report))
    } else {
        Err(ApiError::new(
            ErrorCode::ReloadFailed,
            format!(
                "reload did not fully apply (what failed keeps its previous state): {}",
                report.errors.join("; ")
            ),
        ))
    }
}

async fn models(State(state): State<AdminState>) -> Response {
    Json(state.rescorer.models()).into_response()
}

async fn routing(State(state): State<AdminState>) -> Response {
    Json(state.rescorer.routing()).into_response()
}

async fn put_routing(State(state): State<AdminState>, body: Bytes) -> Result<Response, ApiError> {
    let routing: RoutingFile = parse_json(&body)?;
    let rescorer = state.rescorer.clone();
    blocking(move || rescorer.apply_routing(routing))
        .await
        .map(report_response)
}

async fn put_model_routing(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let section: ModelRouting = parse_json(&body)?;
    let rescorer = state.rescorer.clone();
    blocking(move || {
        let mut routing = rescorer.routing();
        if !rescorer.models().models.iter().any(|m| m.name == name) {
            return Err(AdminError::UnknownModel(name));
        }
        if section == ModelRouting::default() {
            routing.models.remove(&name);
        } else {
            routing.models.insert(name, section);
        }
        rescorer.apply_routing(routing)
    })
    .await
    .map(report_response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionBody {
    version: u64,
}

async fn pin_live(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let VersionBody { version } = parse_json(&body)?;
    let rescorer = state.rescorer.clone();
    blocking(move || rescorer.pin_live(&name, version))
        .await
        .map(report_response)
}

async fn rollback(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let rescorer = state.rescorer.clone();
    blocking(move || rescorer.rollback(&name))
        .await
        .map(report_response)
}

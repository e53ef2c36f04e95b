//! The HTTP API v1 (docs/api.md): `app(state) -> Router`, testable without a socket, and the
//! admin API (`admin::app`) served on its own loopback listener behind a token.

pub mod admin;
pub mod listener;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use rescore_api::{ErrorBody, ErrorCode, RescoreRequest};
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

/// A JSON body whose every rejection (too large, not JSON, wrong shape) is an [`ApiError`]
/// naming the problem and where it is.
pub struct ApiJson<T>(pub T);

impl<T> FromRequest<AppState> for ApiJson<T>
where
    T: serde::de::DeserializeOwned + Send + 'static,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let too_large = || {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "request body is over the limit of {} bytes (server.body_limit_bytes)",
                    state.body_limit
                ),
            )
        };
        // Refuse an announced oversized body before reading any of it.
        let announced = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > state.body_limit as u64) {
            return Err(too_large());
        }
        let read = tokio::time::timeout(state.body_timeout, Bytes::from_request(req, state));
        let bytes = read
            .await
            .map_err(|_| {
                ApiError::new(
                    ErrorCode::RequestTimeout,
                    format!(
                        "the request body did not arrive within {} ms (server.body_timeout_ms)",
                        state.body_timeout.as_millis()
                    ),
                )
            })?
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::new(ErrorCode::MalformedJson, rejection.body_text())
                }
            })?;
        if bytes.len() <= INLINE_PARSE_BYTES {
            return parse_json(&bytes).map(ApiJson);
        }
        // Large bodies take milliseconds to parse: do it off the async workers so that
        // timers (other requests' deadlines) and accepts are not delayed behind it.
        tokio::task::spawn_blocking(move || parse_json(&bytes))
            .await
            .map_err(|_| ApiError::new(ErrorCode::Internal, "request parsing panicked"))?
            .map(ApiJson)
    }
}

/// Bodies up to this size are parsed on the async worker (a few tens of microseconds).
const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// Deepest nesting of arrays and objects accepted in a body. The contract's deepest value is
/// at depth 4 (`hits[i].features`); serde_json stops at 128 for what it parses, but skips
/// unknown fields without a limit, so the bound is checked before parsing.
pub const MAX_JSON_DEPTH: usize = 32;

/// The body of `POST /v1/rescore` decoded as the server decodes it (the request fuzz target's
/// entry point, fuzz/).
pub fn decode_rescore_body(bytes: &[u8]) -> Result<RescoreRequest, ApiError> {
    parse_json(bytes)
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::new(
            ErrorCode::MalformedJson,
            "request body must be a JSON object",
        ));
    }
    if let Some(offset) = too_deep(bytes, MAX_JSON_DEPTH) {
        return Err(ApiError::new(
            ErrorCode::MalformedJson,
            format!("JSON nested deeper than {MAX_JSON_DEPTH} levels at byte {offset}"),
        ));
    }
    // The common case, a valid body, parses without tracking the path (serde_path_to_error
    // keeps an owned copy of every map key it passes). Only a failure is parsed again, with the
    // path, to name the field: the same deserializer, so the same verdict and message.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let classify = |inner: serde_json::Error, path: String| {
        match inner.classify() {
        serde_json::error::Category::Data => {
            ApiError::new(ErrorCode::InvalidRequest, format!("{path}: {inner}"))
        }
        _ => ApiError::new(
            ErrorCode::MalformedJson,
            match lone_surrogate(bytes) {
                // serde_json calls it "unexpected end of hex escape" or names the low half.
                Some(code) => format!(
                    "invalid JSON: \\u{code:04X} is a lone UTF-16 surrogate (a \\uD800-\\uDBFF escape must be followed by a \\uDC00-\\uDFFF one) near line {} column {}",
                    inner.line(),
                    inner.column()
                ),
                None => format!("invalid JSON: {inner}"),
            },
        ),
    }
    };
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        // The root path prints as "."; a missing top-level field already names itself.
        let path = match e.path().to_string() {
            root if root == "." => "request".to_string(),
            path => path,
        };
        classify(e.into_inner(), path)
    })?;
    de.end().map_err(|e| classify(e, String::new()))?;
    Ok(value)
}

/// The first `\\uXXXX` escape that is half of a UTF-16 surrogate pair without its other half.
fn lone_surrogate(bytes: &[u8]) -> Option<u16> {
    let hex = |at: usize| -> Option<u16> {
        let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
        u16::from_str_radix(digits, 16).ok()
    };
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        if bytes[i + 1] != b'u' {
            i += 2; // `\"`, `\\` and the other one-character escapes
            continue;
        }
        let code = hex(i + 2)?;
        match code {
            0xD800..=0xDBFF => {
                let low = (bytes.get(i + 6..i + 8) == Some(&b"\\u"[..]))
                    .then(|| hex(i + 8))
                    .flatten();
                if !matches!(low, Some(0xDC00..=0xDFFF)) {
                    return Some(code);
                }
                i += 12;
            }
            0xDC00..=0xDFFF => return Some(code),
            _ => i += 6,
        }
    }
    None
}

/// The byte offset where nesting first exceeds `max`, ignoring brackets inside strings.
/// String contents are skipped with `memchr` (most of a request's bytes are ids and feature
/// names): under overload this scan is a tenth of the sidecar's CPU when done byte by byte.
fn too_deep(bytes: &[u8], max: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                i += 1;
                // To the closing quote; an escape skips the character after the backslash.
                loop {
                    let k = memchr::memchr2(b'"', b'\\', bytes.get(i..)?)?;
                    let escape = bytes[i + k] == b'\\';
                    i += k + if escape { 2 } else { 1 };
                    if !escape {
                        break;
                    }
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The budget starts here, when the request's headers have been read: reading and parsing
/// the body count against it, as they count against the caller's wait.
async fn rescore(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let arrived = std::time::Instant::now();
    let request = match ApiJson::<RescoreRequest>::from_request(req, &state).await {
        Ok(ApiJson(request)) => request,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_depth_scan_skips_strings_and_escapes() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(too_deep(nested(32).as_bytes(), 32), None);
        assert_eq!(too_deep(nested(33).as_bytes(), 32), Some(32));
        // Brackets inside strings do not nest, whatever the escapes before the closing quote.
        let in_string = format!(r#"{{"a": "{}\"\\", "b": [1]}}"#, "[".repeat(40));
        assert_eq!(too_deep(in_string.as_bytes(), 2), None, "{in_string}");
        let after_string = format!(r#"{{"a": "x\\", "b": {}}}"#, nested(3));
        let third = after_string.rfind('[').expect("a bracket");
        assert_eq!(
            too_deep(after_string.as_bytes(), 3),
            Some(third),
            "{after_string}"
        );
        // An unterminated string or a trailing backslash ends the scan; the parser names it.
        assert_eq!(too_deep(br#"{"a": "[[[["#, 1), None);
        assert_eq!(too_deep(br#"{"a": "x\"#, 1), None);
    }

    #[test]
    fn a_lone_surrogate_is_named() {
        #[derive(Debug, serde::Deserialize)]
        struct Body {
            #[allow(dead_code)]
            id: String,
        }
        for (body, code) in [
            (r#"{"id": "a\ud800"}"#, "D800"),
            (r#"{"id": "a\ud800\u0041"}"#, "D800"),
            (r#"{"id": "\udc00b"}"#, "DC00"),
        ] {
            let err = parse_json::<Body>(body.as_bytes()).expect_err(body);
            assert!(
                err.message
                    .contains(&format!("\\u{code} is a lone UTF-16 surrogate")),
                "{body}: {}",
                err.message
            );
        }
        let pair: Body =
            parse_json(r#"{"id": "\ud83d\ude00 \\ud800"}"#.as_bytes()).expect("a pair");
        assert_eq!(pair.id, "\u{1F600} \\ud800");
        let other = parse_json::<Body>(br#"{"id": 1"#).expect_err("truncated");
        assert!(!other.message.contains("surrogate"), "{}", other.message);
    }
}

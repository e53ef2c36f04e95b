//! The router without a socket (`oneshot`): every kind of bad input gets a 4xx with the
//! contract's JSON error body; good input gets scores or a counted fallback.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use rescore_server::{app, AppState};
use rescore_serving::{Discovery, Registry, Rescorer, ServingConfig};
use tower::ServiceExt;

fn golden_models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/golden/models")
}

fn state(loaded: bool, body_limit: usize, default_model: Option<&str>) -> AppState {
    let discovery = Discovery::scan(&golden_models()).expect("fixtures present");
    let config = ServingConfig {
        default_model: default_model.map(str::to_string),
        ..ServingConfig::default()
    };
    let rescorer = Rescorer::new(config, &discovery).expect("valid config");
    if loaded {
        let registry = Registry::load(&discovery, rescorer.config());
        rescorer.set_loaded(registry, None);
    }
    AppState {
        rescorer: Arc::new(rescorer),
        metrics: None,
        body_limit,
        body_timeout: rescore_server::DEFAULT_BODY_TIMEOUT,
    }
}

async fn call(
    state: AppState,
    method: Method,
    uri: &str,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let response = app(state)
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .header("content-type", "application/json")
                .body(Body::from(body))
                .expect("request"),
        )
        .await
        .expect("infallible service");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{status}: body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, json)
}

async fn rescore(state: AppState, body: impl Into<Vec<u8>>) -> (StatusCode, serde_json::Value) {
    call(state, Method::POST, "/v1/rescore", body.into()).await
}

fn assert_error(
    status: StatusCode,
    body: &serde_json::Value,
    want: StatusCode,
    code: &str,
    mentions: &str,
) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"]
        .as_str()
        .expect("message is a string");
    assert!(
        message.contains(mentions),
        "message {message:?} should mention {mentions:?}"
    );
}

#[tokio::test]
async fn scores_a_valid_request() {
    let (status, body) = rescore(
        state(true, 1 << 20, Some("regression")),
        r#"{"hits":[{"id":"a","score":3.5,"features":{"f012":0.5}},{"id":"b","score":1.0}]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["model"], "regression");
    assert_eq!(body["version"], "1");
    assert_eq!(body["variant"], "live");
    assert!(body["fallback"].is_null());
    let scores = body["scores"].as_array().expect("scores");
    assert_eq!(scores.len(), 2);
    assert!(scores
        .iter()
        .all(|s| s.as_f64().is_some_and(f64::is_finite)));
}

#[tokio::test]
async fn malformed_and_non_object_json_is_400() {
    for body in [
        "",
        "{",
        "{\"hits\": [",
        "not json",
        "{\"hits\":[]}}",
        "{\"hits\":[]} x",
        "\u{0}",
    ] {
        let (status, json) = rescore(state(true, 1 << 20, Some("binary")), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}: {json}");
        assert_eq!(json["error"]["code"], "malformed_json", "{body:?}");
    }
    for body in ["[]", "[{\"hits\":[]}]", "\"x\"", "42", "null", "true"] {
        let (status, json) = rescore(state(true, 1 << 20, Some("binary")), body).await;
        assert_error(
            status,
            &json,
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "JSON object",
        );
    }
}

#[tokio::test]
async fn missing_and_mistyped_fields_name_their_place() {
    let cases = [
        (r#"{}"#, "hits"),
        (r#"{"hits":{}}"#, "hits"),
        (r#"{"hits":[{"score":1}]}"#, "hits[0]"),
        (r#"{"hits":[{"id":"a"}]}"#, "hits[0]"),
        (r#"{"hits":[{"id":7,"score":1}]}"#, "hits[0].id"),
        (r#"{"hits":[{"id":"a","score":"1"}]}"#, "hits[0].score"),
        (
            r#"{"hits":[{"id":"a","score":1},{"id":"b","score":1,"features":{"x":"1"}}]}"#,
            "hits[1].features.x",
        ),
        (
            r#"{"hits":[{"id":"a","score":1,"features":{"x":[1]}}]}"#,
            "hits[0].features.x",
        ),
        (
            r#"{"hits":[{"id":"a","score":1,"features":{"x":true}}]}"#,
            "hits[0].features.x",
        ),
        (
            r#"{"hits":[{"id":"a","score":1,"features":[1,2]}]}"#,
            "hits[0].features",
        ),
        (r#"{"hits":[],"model":5}"#, "model"),
        (r#"{"hits":[],"timeout_ms":-1}"#, "timeout_ms"),
        (r#"{"hits":[],"timeout_ms":1.5}"#, "timeout_ms"),
        (
            r#"{"hits":[],"query":{"features":{"hour":"21"}}}"#,
            "query.features.hour",
        ),
        (r#"{"hits":[],"query":{"text":5}}"#, "query.text"),
        (r#"{"hits":[],"query":[]}"#, "query"),
        (r#"{"hits":[["a",1.0]]}"#, "hits[0]"),
    ];
    for (body, place) in cases {
        let (status, json) = rescore(state(true, 1 << 20, Some("binary")), body).await;
        assert_error(
            status,
            &json,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            place,
        );
    }
}

#[tokio::test]
async fn non_finite_numbers_are_refused() {
    for (body, code) in [
        (
            r#"{"hits":[{"id":"a","score":1,"features":{"x":1e999}}]}"#,
            "malformed_json",
        ),
        (r#"{"hits":[{"id":"a","score":-1e400}]}"#, "malformed_json"),
        (
            r#"{"hits":[{"id":"a","score":1,"features":{"x":NaN}}]}"#,
            "malformed_json",
        ),
        (
            r#"{"hits":[{"id":"a","score":1,"features":{"x":Infinity}}]}"#,
            "malformed_json",
        ),
        (r#"{"hits":[{"id":"a","score":-inf}]}"#, "malformed_json"),
    ] {
        let (status, json) = rescore(state(true, 1 << 20, Some("binary")), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {json}");
        assert_eq!(json["error"]["code"], code, "{body}: {json}");
    }
}

/// Nesting is bounded by the types, not by a scan: every field the request reads has a fixed
/// shape at most 4 levels deep, so a deeper value in one is a type error, and an unknown field
/// is skipped by a loop at any depth. Neither recurses per level of the body.
#[tokio::test]
async fn absurd_nesting_is_answered_without_a_stack_overflow() {
    let depth = 100_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    for (body, status, code) in [
        (
            format!(r#"{{"hits":[{{"id":"a","score":1,"features":{{"x":{nested}}}}}]}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            format!(r#"{{"hits":{nested}}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            format!(r#"{{"hits":[],"context":{objects}}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            format!(r#"{{"hits":[],"unknown":{nested}}}"#),
            StatusCode::OK,
            "",
        ),
        (
            format!(r#"{{"hits":[{{"id":"a","score":1,"q":{objects}}}]}}"#),
            StatusCode::OK,
            "",
        ),
    ] {
        let (got, json) = rescore(state(true, 1 << 20, Some("binary")), body).await;
        assert_eq!(got, status, "{json}");
        if status == StatusCode::OK {
            assert!(json["scores"].is_array(), "{json}");
        } else {
            assert_eq!(json["error"]["code"], code, "{json}");
        }
    }
}

#[tokio::test]
async fn oversized_body_is_413_with_json() {
    let hits: Vec<String> = (0..2000)
        .map(|i| format!(r#"{{"id":"item-{i}","score":{i}.5}}"#))
        .collect();
    let body = format!(r#"{{"hits":[{}]}}"#, hits.join(","));
    assert!(body.len() > 16 * 1024);
    let (status, json) = rescore(state(true, 16 * 1024, Some("binary")), body.clone()).await;
    assert_error(
        status,
        &json,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "limit",
    );
    let (status, json) = rescore(state(true, 1 << 20, Some("binary")), body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
}

#[tokio::test]
async fn model_choice_unknown_required_and_default() {
    let (status, json) = rescore(state(true, 1 << 20, None), r#"{"model":"nope","hits":[]}"#).await;
    assert_error(
        status,
        &json,
        StatusCode::NOT_FOUND,
        "unknown_model",
        "nope",
    );
    let (status, json) = rescore(state(true, 1 << 20, None), r#"{"hits":[]}"#).await;
    assert_error(
        status,
        &json,
        StatusCode::BAD_REQUEST,
        "model_required",
        "default_model",
    );
    let (status, json) = rescore(state(true, 1 << 20, Some("poisson")), r#"{"hits":[]}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["model"], "poisson");
    assert_eq!(json["scores"], serde_json::json!([]));
}

#[tokio::test]
async fn bad_budgets_and_too_many_hits() {
    let (status, json) = rescore(
        state(true, 1 << 20, Some("binary")),
        r#"{"hits":[],"timeout_ms":0}"#,
    )
    .await;
    assert_error(
        status,
        &json,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "timeout_ms",
    );
    let hits: Vec<String> = (0..10_001)
        .map(|i| format!(r#"{{"id":"{i}","score":1}}"#))
        .collect();
    let body = format!(r#"{{"hits":[{}]}}"#, hits.join(","));
    let (status, json) = rescore(state(true, 1 << 20, Some("binary")), body).await;
    assert_error(
        status,
        &json,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "max_hits",
    );
}

#[tokio::test]
async fn before_loading_finishes_the_baseline_is_returned() {
    let s = state(false, 1 << 20, Some("binary"));
    let (status, json) = call(s.clone(), Method::GET, "/readyz", Vec::new()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["ready"], false);
    let (status, json) = rescore(
        s.clone(),
        r#"{"hits":[{"id":"a","score":2.5},{"id":"b","score":-1}]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["fallback"], "model_unavailable");
    assert_eq!(json["scores"], serde_json::json!([2.5, -1.0]));
    // unknown names are still refused while loading
    let (status, _) = rescore(s, r#"{"model":"nope","hits":[]}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn other_routes() {
    let s = state(true, 1 << 20, None);
    let (status, json) = call(s.clone(), Method::GET, "/healthz", Vec::new()).await;
    assert_eq!(
        (status, &json["status"]),
        (StatusCode::OK, &serde_json::json!("ok"))
    );
    let (status, json) = call(s.clone(), Method::GET, "/readyz", Vec::new()).await;
    assert_eq!(
        (status, &json["ready"]),
        (StatusCode::OK, &serde_json::json!(true))
    );
    let (status, json) = call(s.clone(), Method::GET, "/v1/models", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    let models = json["models"].as_array().expect("models");
    assert_eq!(models.len(), 15, "{json}");
    for m in models {
        assert_eq!(m["live_version"], "1", "{m}");
        // every golden kind is scored natively except linear trees
        let engine = if m["name"] == "linear_tree" {
            "lightgbm3"
        } else {
            "native"
        };
        assert_eq!(m["versions"][0]["engine"], engine, "{m}");
    }
    let (status, json) = call(s.clone(), Method::GET, "/v1/nothing", Vec::new()).await;
    assert_error(status, &json, StatusCode::NOT_FOUND, "not_found", "route");
    let (status, json) = call(s, Method::GET, "/v1/rescore", Vec::new()).await;
    assert_error(
        status,
        &json,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method",
    );
}

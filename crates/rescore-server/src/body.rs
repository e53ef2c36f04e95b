//! Reading and decoding request bodies: the body deadline and size limit, the check before
//! parsing (a JSON object), error messages that name the field, and the
//! decoding of `POST /v1/rescore`, which under overload decodes for refusal first
//! (`rescore_serving::Rescorer::refuse_early`, ADR 0010).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use rescore_api::{ErrorCode, HitScore, RescoreRequest, RescoreResponse};
use rescore_serving::Rescorer;

use crate::{ApiError, AppState};

/// The whole body of a request, within `server.body_limit_bytes` and `server.body_timeout_ms`;
/// every rejection is an [`ApiError`] naming the problem.
pub(crate) async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
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
    read.await
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
        })
}

/// A `POST /v1/rescore` body: a request to serve, or the answer of one refused from its
/// scores alone.
pub(crate) enum Decoded {
    Request(RescoreRequest),
    Refused(RescoreResponse),
}

/// Decodes a `POST /v1/rescore` body that arrived at `arrived`. Large bodies take
/// milliseconds to decode: that is done off the async workers so that timers (other
/// requests' deadlines) and accepts are not delayed behind it.
pub(crate) async fn decode_rescore(
    rescorer: &std::sync::Arc<Rescorer>,
    bytes: Bytes,
    arrived: std::time::Instant,
) -> Result<Decoded, ApiError> {
    if bytes.len() <= INLINE_PARSE_BYTES {
        return decode_or_refuse(rescorer, &bytes, arrived);
    }
    let rescorer = rescorer.clone();
    tokio::task::spawn_blocking(move || decode_or_refuse(&rescorer, &bytes, arrived))
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "request parsing panicked"))?
}

/// While admission is refusing, the body is decoded for refusal first (scores only, every
/// field checked); a body that decoding refuses, or a request admission would take, is
/// decoded in full, which names any problem.
fn decode_or_refuse(
    rescorer: &Rescorer,
    bytes: &[u8],
    arrived: std::time::Instant,
) -> Result<Decoded, ApiError> {
    check_shape(bytes)?;
    if rescorer.refusing() {
        if let Ok(scores_only) = decode_checked_scores(bytes) {
            if let Some(answer) = rescorer.refuse_early(&scores_only, arrived) {
                return Ok(Decoded::Refused(answer));
            }
        }
    }
    parse_checked(bytes).map(Decoded::Request)
}

/// Bodies up to this size are parsed on the async worker (a few tens of microseconds).
const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// The body of `POST /v1/rescore` decoded for refusal (scores only), as the server does while
/// admission is refusing: `Ok` only for a body [`decode_rescore_body`] accepts too, with the
/// same scores (the request fuzz target checks this on every input).
pub fn decode_rescore_scores(bytes: &[u8]) -> Result<RescoreRequest<HitScore>, ApiError> {
    check_shape(bytes)?;
    decode_checked_scores(bytes)
}

/// No second parse for the field's path on failure: a failed decode for refusal is decoded in
/// full, which names the problem.
fn decode_checked_scores(bytes: &[u8]) -> Result<RescoreRequest<HitScore>, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(ErrorCode::MalformedJson, format!("invalid JSON: {e}")))
}

/// The body of `POST /v1/rescore` decoded as the server decodes it (the request fuzz target's
/// entry point, fuzz/).
pub fn decode_rescore_body(bytes: &[u8]) -> Result<RescoreRequest, ApiError> {
    parse_json(bytes)
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    check_shape(bytes)?;
    parse_checked(bytes)
}

/// A JSON object, checked before any parsing. Nesting needs no bound of its own: serde_json
/// refuses values nested deeper than 128 levels where it builds them, and skips unknown
/// fields with a loop, not recursion, whatever their depth (a scan for the depth cost as much
/// CPU as serde_json skipping the whole body).
fn check_shape(bytes: &[u8]) -> Result<(), ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::new(
            ErrorCode::MalformedJson,
            "request body must be a JSON object",
        ));
    }
    Ok(())
}

/// Parses a body [`check_shape`] accepted; an error names the field and where it is.
fn parse_checked<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

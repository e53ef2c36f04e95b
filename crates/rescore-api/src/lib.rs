//! Wire types of the HTTP contract (`docs/api.md`): requests, responses, error bodies and the
//! error codes every other crate maps its failures to. Serde only: no HTTP, no async.

use std::collections::HashMap;

use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Feature values sent inline: `null` (or an absent key) means missing. Non-numbers and
/// non-finite numbers are rejected while deserialising (JSON has no NaN or infinity and
/// serde_json refuses numbers that overflow f64).
pub type FeatureMap = HashMap<String, Option<f64>>;
/// String-valued query attributes (`name → string or null`), read by categorical features.
pub type AttributeMap = HashMap<String, Option<String>>;

/// `POST /v1/rescore` body. Unknown fields are ignored so that newer clients keep working
/// against older sidecars.
///
/// `H` is how each hit is decoded: [`Hit`] for scoring; [`HitScore`] under overload, where a
/// request that admission refuses needs only its hits' scores (the baseline answer) and the
/// rest of the body is validated exactly as for `Hit`, without keeping it (ADR 0010).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "H: Serialize", deserialize = "H: Deserialize<'de>"))]
pub struct RescoreRequest<H = Hit> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_object"
    )]
    pub query: Option<QueryContext>,
    #[serde(deserialize_with = "seq_of_objects")]
    pub hits: Vec<H>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Routing attributes (index, category, query type, ...): string values matched by the
    /// routing file's rules. Never a label or a feature.
    #[serde(
        default,
        skip_serializing_if = "HashMap::is_empty",
        deserialize_with = "nullable_strings"
    )]
    pub context: HashMap<String, String>,
    /// The caller's id for this request (e.g. the search's id), written to the feature log so
    /// that clicks can be joined to the logged features. At most [`MAX_REQUEST_ID_LEN`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Opt-in details of the gamed-listing guard (`flags` in the response), and for
    /// evaluations a policy overriding the model's (docs/api.md).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_object"
    )]
    pub guard: Option<GuardRequest>,
}

impl<H> Default for RescoreRequest<H> {
    fn default() -> Self {
        RescoreRequest {
            model: None,
            query: None,
            hits: Vec::new(),
            timeout_ms: None,
            context: HashMap::new(),
            request_id: None,
            guard: None,
        }
    }
}

/// A hit's first-pass score: the baseline every fallback answers with.
pub trait BaselineScore {
    fn baseline(&self) -> f64;
}

impl BaselineScore for Hit {
    fn baseline(&self) -> f64 {
        self.score
    }
}

/// A hit decoded for a refusal: `id` and `features` are checked as [`Hit`] checks them (a
/// string; `null` or an object of numbers and nulls) but not kept, so decoding allocates
/// nothing per hit. A body this type accepts is accepted by `Hit` with the same scores
/// (tested, and fuzzed against each other).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct HitScore {
    #[serde(rename = "id")]
    _id: CheckedString,
    pub score: f64,
    #[serde(default, rename = "features")]
    _features: Option<CheckedFeatures>,
}

impl BaselineScore for HitScore {
    fn baseline(&self) -> f64 {
        self.score
    }
}

/// A JSON string, checked and dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CheckedString;

impl<'de> Deserialize<'de> for CheckedString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StringVisitor;
        impl Visitor<'_> for StringVisitor {
            type Value = CheckedString;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, _: &str) -> Result<CheckedString, E> {
                Ok(CheckedString)
            }
        }
        d.deserialize_str(StringVisitor)
    }
}

/// A [`FeatureMap`] (an object of numbers and nulls), checked and dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CheckedFeatures;

impl<'de> Deserialize<'de> for CheckedFeatures {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FeaturesVisitor;
        impl<'de> Visitor<'de> for FeaturesVisitor {
            type Value = CheckedFeatures;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CheckedFeatures, A::Error> {
                while map.next_entry::<CheckedString, Option<f64>>()?.is_some() {}
                Ok(CheckedFeatures)
            }
        }
        d.deserialize_map(FeaturesVisitor)
    }
}

/// `"guard": {"flags": true, "policy": "cap"}` of a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuardRequest {
    /// Answer with `flags`: per hit, what the guard found.
    #[serde(default)]
    pub flags: bool,
    /// Use this policy instead of the model's `[guard] policy` (evaluations, debugging).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<GuardPolicy>,
}

/// What the gamed-listing guard does with a lifted suspicious hit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardPolicy {
    /// Nothing (the default).
    #[default]
    Off,
    /// Counted and reported in `flags`; scores unchanged.
    Flag,
    /// Flagged, and its score limited to the model version's `cap_score`.
    Cap,
}

impl GuardPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardPolicy::Off => "off",
            GuardPolicy::Flag => "flag",
            GuardPolicy::Cap => "cap",
        }
    }
}

/// Longest accepted `request_id`, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 256;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Alternative key for sticky A/B assignment (experiments with `key = "session_id"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "FeatureMap::is_empty",
        deserialize_with = "nullable_map"
    )]
    pub features: FeatureMap,
    /// String attributes of the query (country, device, ...), mapped to integer ids by a
    /// manifest's `categorical` features.
    #[serde(
        default,
        skip_serializing_if = "AttributeMap::is_empty",
        deserialize_with = "nullable_attributes"
    )]
    pub attributes: AttributeMap,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub id: String,
    /// First-pass score (e.g. BM25): the baseline returned on any fallback.
    pub score: f64,
    #[serde(
        default,
        skip_serializing_if = "FeatureMap::is_empty",
        deserialize_with = "nullable_map"
    )]
    pub features: FeatureMap,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RescoreResponse {
    pub scores: Vec<f64>,
    /// The model that answered, or the requested/default one on a fallback (null if none).
    pub model: Option<String>,
    pub version: Option<String>,
    pub variant: Option<String>,
    pub fallback: Option<FallbackReason>,
    pub took_us: u64,
    /// Only when the request asked (`"guard": {"flags": true}`) and the model was scored: per
    /// hit, the guard's findings (a rule name, then `capped` if its score was limited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<Vec<String>>>,
}

/// Serde's derived structs also accept JSON arrays (fields by position); the contract's
/// objects must be objects, so a mistyped `[...]` is refused instead of silently read.
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(ObjectVisitor(PhantomData))
            .map(ObjectOnly)
    }
}

/// `"features": null` means the same as no `features`.
fn nullable_map<'de, D: Deserializer<'de>>(d: D) -> Result<FeatureMap, D::Error> {
    Ok(Option::<FeatureMap>::deserialize(d)?.unwrap_or_default())
}

/// `"context": null` means the same as no `context`.
fn nullable_strings<'de, D: Deserializer<'de>>(d: D) -> Result<HashMap<String, String>, D::Error> {
    Ok(Option::<HashMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

fn nullable_attributes<'de, D: Deserializer<'de>>(d: D) -> Result<AttributeMap, D::Error> {
    Ok(Option::<AttributeMap>::deserialize(d)?.unwrap_or_default())
}

fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(Option::<ObjectOnly<T>>::deserialize(d)?.map(|o| o.0))
}

fn seq_of_objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Vec::<ObjectOnly<T>>::deserialize(d)?
        .into_iter()
        .map(|o| o.0)
        .collect())
}

/// Why the baseline (the hits' incoming scores) was returned instead of model scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackReason {
    /// Scoring did not finish within the request's budget.
    Timeout,
    /// The model is configured but has no loaded version (failed load, still loading).
    ModelUnavailable,
    /// The engine returned an error or panicked while scoring.
    ScoringError,
    /// All scoring slots stayed busy for the whole budget.
    Overloaded,
    /// The item store failed (error or timeout, not unknown ids) for more than
    /// `serving.max_store_failure_share` of the hits.
    FeatureStore,
}

impl FallbackReason {
    pub const ALL: [FallbackReason; 5] = [
        FallbackReason::Timeout,
        FallbackReason::ModelUnavailable,
        FallbackReason::ScoringError,
        FallbackReason::Overloaded,
        FallbackReason::FeatureStore,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::Timeout => "timeout",
            FallbackReason::ModelUnavailable => "model_unavailable",
            FallbackReason::ScoringError => "scoring_error",
            FallbackReason::Overloaded => "overloaded",
            FallbackReason::FeatureStore => "feature_store",
        }
    }
}

/// Every error the API can answer with. The HTTP status of each lives here, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not JSON, or not a JSON object.
    MalformedJson,
    /// JSON, but not a valid request: missing or mistyped field, bad feature value.
    InvalidRequest,
    /// No `model` given and no default model can be chosen.
    ModelRequired,
    /// `model` names a model that is not configured.
    UnknownModel,
    PayloadTooLarge,
    /// The request body did not arrive within `server.body_timeout_ms`.
    RequestTimeout,
    /// Not an HTTP/1.x request the server can frame: a TLS handshake on the plain port, a bad
    /// request line or header, an invalid `Content-Length`.
    MalformedHttp,
    /// The request head is larger than the server reads (64 KiB).
    HeadersTooLarge,
    /// `server.max_connections` connections are open: this one is answered and closed.
    TooManyConnections,
    NotFound,
    MethodNotAllowed,
    /// Admin API: missing or wrong bearer token.
    Unauthorized,
    /// Admin API: a reload or routing change was not applied (the previous state keeps serving).
    ReloadFailed,
    /// A bug: never caused by input.
    Internal,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::MalformedJson
            | ErrorCode::InvalidRequest
            | ErrorCode::ModelRequired
            | ErrorCode::MalformedHttp => 400,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::HeadersTooLarge => 431,
            ErrorCode::TooManyConnections => 503,
            ErrorCode::UnknownModel | ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Unauthorized => 401,
            ErrorCode::ReloadFailed => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Internal => 500,
        }
    }
}

/// `{"error": {"code": "...", "message": "..."}}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code,
                message: message.into(),
            },
        }
    }
}

/// `GET /v1/models`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelsResponse {
    pub default_model: Option<String>,
    /// Why there is no default model although models are loaded (several, none configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_model_note: Option<String>,
    pub models: Vec<ModelStatus>,
    /// The routing file and the last reload (absent before start-up loading ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelStatus {
    pub name: String,
    /// The version that serves requests, if any loaded.
    pub live_version: Option<String>,
    /// The live version the routing file pins (absent: the highest version that loads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_version: Option<String>,
    /// The version that was live before the current one (the target of a rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_live_version: Option<String>,
    /// The A/B experiment splitting this model's traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentStatus>,
    /// Versions scored in the shadow of the served one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shadow_versions: Vec<String>,
    /// Rules sending requests for this name elsewhere: `[{"when": {...}, "model": "..."}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleStatus>,
    pub versions: Vec<VersionStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentStatus {
    pub salt: String,
    /// `user_id` or `session_id`.
    pub key: String,
    pub variants: Vec<VariantStatus>,
    /// The share left to the live version (the control).
    pub live_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantStatus {
    pub name: String,
    pub version: String,
    pub share: f64,
    /// False when the version failed to load: its traffic goes to the live version.
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleStatus {
    pub when: std::collections::BTreeMap<String, Vec<String>>,
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingStatus {
    /// The routing file (absent when none is configured).
    pub path: Option<String>,
    /// Whether that file exists (without it, the highest loadable version of each model is live).
    pub present: bool,
    pub last_reload: Option<ReloadReport>,
}

/// What a reload did: also the body of `POST /admin/v1/reload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// `startup`, `watch`, `sighup`, `admin`.
    pub trigger: String,
    /// `success`, or `failure` when the routing file was refused or a version it needs failed
    /// to load (what could not be applied keeps its previous state).
    pub result: String,
    pub finished_unix_ms: u64,
    pub duration_ms: u64,
    /// Versions loaded by this reload (`name/version`); unchanged ones are reused, not reloaded.
    pub loaded: Vec<String>,
    /// Versions no longer held in memory after this reload.
    pub unloaded: Vec<String>,
    /// Every problem, each naming the file, model or version.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionStatus {
    pub version: String,
    /// `live` (serving), `candidate` (an A/B variant, see `variant`), `shadow`, `standby`
    /// (loaded and warm: the previous live version, ready for an instant rollback),
    /// `available` (found, not loaded) or `failed` (see `error`).
    pub role: String,
    /// The A/B variant name of a candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub engine: Option<String>,
    pub objective: Option<String>,
    pub num_features: Option<usize>,
    pub num_trees: Option<usize>,
    pub description: Option<String>,
    /// Size of the native evaluator's compiled model (absent for lightgbm3).
    pub memory_bytes: Option<u64>,
    /// Why lightgbm3 serves this version instead of the native evaluator.
    pub engine_note: Option<String>,
    /// Why the version could not be loaded.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scores-only decoding accepts a body only when the full one does, with the same
    /// scores and top-level fields; it refuses whatever the full one refuses.
    #[test]
    fn a_scores_only_decode_agrees_with_the_full_one() {
        let bodies = [
            (
                r#"{"hits":[{"id":"a","score":1.5,"features":{"x":null,"y":2}}],"extra":[1,{"z":2}]}"#,
                true,
            ),
            (
                r#"{"model":"m","timeout_ms":20,"hits":[{"id":"a\u00e9\n","score":-3e2,"features":null},{"score":0,"id":"b","more":{"k":[1]}}],"context":{"c":"v"},"query":{"user_id":"u","features":{"q":1}},"request_id":"r","guard":{"flags":true}}"#,
                true,
            ),
            (
                r#"{"hits":[{"id":"a","score":1,"features":{"x":1,"x":2}}]}"#,
                true,
            ),
            (r#"{"hits":[]}"#, true),
            (r#"{"hits":[{"id":1,"score":1}]}"#, false),
            (r#"{"hits":[{"id":null,"score":1}]}"#, false),
            (r#"{"hits":[{"score":1}]}"#, false),
            (r#"{"hits":[{"id":"a"}]}"#, false),
            (r#"{"hits":[{"id":"a","score":"1"}]}"#, false),
            (r#"{"hits":[{"id":"a","score":1e999}]}"#, false),
            (r#"{"hits":[{"id":"a","score":1,"features":[1]}]}"#, false),
            (
                r#"{"hits":[{"id":"a","score":1,"features":{"x":"1"}}]}"#,
                false,
            ),
            (
                r#"{"hits":[{"id":"a","score":1,"features":{"x":[1]}}]}"#,
                false,
            ),
            (
                r#"{"hits":[{"id":"a","score":1,"features":{"x":true}}]}"#,
                false,
            ),
            (r#"{"hits":[{"id":"a","id":"b","score":1}]}"#, false),
            (
                r#"{"hits":[{"id":"a","score":1,"features":{},"features":{}}]}"#,
                false,
            ),
            (r#"{"hits":[["a",1]]}"#, false),
            (r#"{"hits":{"id":"a","score":1}}"#, false),
            (r#"{"hits":[{"id":"a","score":1}],"timeout_ms":-1}"#, false),
            (r#"{"hits":[{"id":"a","score":1}],"query":[]}"#, false),
            (
                r#"{"hits":[{"id":"a","score":1}],"context":{"c":1}}"#,
                false,
            ),
            (r#"{"hits":[{"id":"a","score":1}]"#, false),
            (r#"{"hits":[{"id":"a","score":1}]} x"#, false),
            (r#"{"hits":[{"id":"\ud800","score":1}]}"#, false),
        ];
        for (body, valid) in bodies {
            let full = serde_json::from_str::<RescoreRequest>(body);
            let scores_only = serde_json::from_str::<RescoreRequest<HitScore>>(body);
            assert_eq!(full.is_ok(), valid, "{body}: {full:?}");
            assert_eq!(scores_only.is_ok(), valid, "{body}: {scores_only:?}");
            if let (Ok(full), Ok(scores_only)) = (full, scores_only) {
                let baseline = |hits: &[Hit]| hits.iter().map(|h| h.score).collect::<Vec<_>>();
                assert_eq!(
                    baseline(&full.hits),
                    scores_only.hits.iter().map(|h| h.score).collect::<Vec<_>>()
                );
                assert_eq!(
                    (
                        full.model,
                        full.timeout_ms,
                        full.context,
                        full.query,
                        full.request_id,
                        full.guard
                    ),
                    (
                        scores_only.model,
                        scores_only.timeout_ms,
                        scores_only.context,
                        scores_only.query,
                        scores_only.request_id,
                        scores_only.guard
                    )
                );
            }
        }
    }

    #[test]
    fn minimal_request_parses_and_nulls_are_missing() {
        let r: RescoreRequest = serde_json::from_str(
            r#"{"hits":[{"id":"a","score":1.5,"features":{"x":null,"y":2}}],"extra":1}"#,
        )
        .expect("valid request");
        assert_eq!(r.hits[0].features["x"], None);
        assert_eq!(r.hits[0].features["y"], Some(2.0));
        assert!(r.model.is_none() && r.query.is_none() && r.timeout_ms.is_none());
        let r: RescoreRequest =
            serde_json::from_str(r#"{"hits":[],"query":null}"#).expect("null query is absent");
        assert!(r.query.is_none());
        let r: RescoreRequest = serde_json::from_str(
            r#"{"hits":[{"id":"a","score":1,"features":null}],"query":{"features":null}}"#,
        )
        .expect("null features are absent");
        assert!(r.hits[0].features.is_empty());
    }

    #[test]
    fn non_numeric_and_overflowing_features_are_rejected() {
        for body in [
            r#"{"hits":[{"id":"a","score":1,"features":{"x":"1"}}]}"#,
            r#"{"hits":[{"id":"a","score":1,"features":{"x":1e999}}]}"#,
            r#"{"hits":[{"id":"a","score":1,"features":{"x":NaN}}]}"#,
            r#"{"hits":[{"id":"a","score":1,"features":{"x":[1]}}]}"#,
            r#"{"hits":[{"id":1,"score":1}]}"#,
            r#"{"hits":[{"id":"a"}]}"#,
            r#"{"model":"m"}"#,
            r#"{"hits":[["a",1.0]]}"#,
            r#"{"hits":[],"query":["text"]}"#,
        ] {
            assert!(
                serde_json::from_str::<RescoreRequest>(body).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn guard_is_opt_in_and_its_policy_is_checked() {
        let r: RescoreRequest =
            serde_json::from_str(r#"{"hits":[],"guard":{"flags":true,"policy":"cap","future":1}}"#)
                .expect("guard");
        assert_eq!(
            r.guard,
            Some(GuardRequest {
                flags: true,
                policy: Some(GuardPolicy::Cap)
            })
        );
        let r: RescoreRequest = serde_json::from_str(r#"{"hits":[],"guard":null}"#).expect("null");
        assert!(r.guard.is_none());
        for bad in [
            r#"{"hits":[],"guard":{"policy":"block"}}"#,
            r#"{"hits":[],"guard":{"flags":"yes"}}"#,
            r#"{"hits":[],"guard":[true]}"#,
        ] {
            assert!(
                serde_json::from_str::<RescoreRequest>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn response_round_trips_and_fallback_is_snake_case() {
        let resp = RescoreResponse {
            scores: vec![0.1, 0.30000000000000004],
            model: Some("m".into()),
            version: Some("3".into()),
            variant: Some("live".into()),
            fallback: Some(FallbackReason::ModelUnavailable),
            took_us: 7,
            flags: None,
        };
        let text = serde_json::to_string(&resp).expect("serialise");
        assert!(text.contains(r#""fallback":"model_unavailable""#), "{text}");
        // Clients that did not ask for flags see the response they always saw.
        assert!(!text.contains("flags"), "{text}");
        let back: RescoreResponse = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, resp);
    }

    #[test]
    fn input_errors_are_4xx_and_only_a_bug_or_a_full_server_is_5xx() {
        for code in [
            ErrorCode::MalformedJson,
            ErrorCode::InvalidRequest,
            ErrorCode::ModelRequired,
            ErrorCode::UnknownModel,
            ErrorCode::PayloadTooLarge,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::Unauthorized,
            ErrorCode::ReloadFailed,
            ErrorCode::RequestTimeout,
            ErrorCode::MalformedHttp,
            ErrorCode::HeadersTooLarge,
        ] {
            assert!((400..500).contains(&code.http_status()), "{code:?}");
        }
        assert_eq!(ErrorCode::Internal.http_status(), 500);
        // not the request's fault: the server is at its connection limit, retry
        assert_eq!(ErrorCode::TooManyConnections.http_status(), 503);
        let body = serde_json::to_string(&ErrorBody::new(ErrorCode::MalformedHttp, "x"))
            .expect("serialise");
        assert_eq!(body, r#"{"error":{"code":"malformed_http","message":"x"}}"#);
        let body = serde_json::to_string(&ErrorBody::new(ErrorCode::UnknownModel, "x"))
            .expect("serialise");
        assert_eq!(body, r#"{"error":{"code":"unknown_model","message":"x"}}"#);
    }
}

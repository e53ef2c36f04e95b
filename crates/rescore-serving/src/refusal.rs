//! Refusal from the scores alone (ADR 0010). Under overload most requests are refused, and a
//! refusal's answer needs only the hits' scores, so while admission is refusing the server
//! decodes a body as `RescoreRequest<HitScore>` first: every field is checked as for scoring,
//! but ids and feature maps are not kept (no allocation per hit, about half the decoding time).
//! A request admission would still refuse is answered from that; any other is decoded in full
//! and takes the ordinary path, where admission decides again.

use std::time::Instant;

use rescore_api::{FallbackReason, HitScore, RescoreRequest, RescoreResponse};

use crate::rescorer::{micros, Route};
use crate::{RescoreError, Rescorer};

impl Rescorer {
    /// Whether a body should be decoded for refusal first: admission control is on and most of
    /// its recent decisions were refusals.
    pub fn refusing(&self) -> bool {
        self.config.admission_control && self.admission.refusing()
    }

    /// The `overloaded` answer for a request admission refuses, counted as every answer is;
    /// `None` for a request that must take the ordinary path: one admission would take, one
    /// that is invalid (the full decode names the problem), one whose model has no version
    /// loaded or whose budget is already spent (its own fallback), one with no hits.
    pub fn refuse_early(
        &self,
        request: &RescoreRequest<HitScore>,
        started: Instant,
    ) -> Option<RescoreResponse> {
        if !self.config.admission_control || request.hits.is_empty() {
            return None;
        }
        let budget = self.checked_budget(request).ok()?;
        let loaded = self.loaded.load_full();
        let Route {
            model,
            variant,
            version,
            ..
        } = self.route(loaded.as_deref(), request).ok()?;
        let version = version?;
        let remaining = (started + budget).checked_duration_since(Instant::now())?;
        if self.admission.would_admit(request.hits.len(), remaining) {
            return None;
        }
        metrics::histogram!(rescore_monitor::REQUEST_HITS).record(request.hits.len() as f64);
        let response = RescoreResponse {
            scores: request.hits.iter().map(|h| h.score).collect(),
            model: Some(model),
            version: Some(version.version.to_string()),
            variant: Some(variant),
            fallback: Some(FallbackReason::Overloaded),
            took_us: micros(started),
            flags: None,
        };
        let result: Result<RescoreResponse, RescoreError> = Ok(response);
        self.record_answer(&result, started);
        metrics::counter!(rescore_monitor::SCORES_ONLY_REFUSALS).increment(1);
        result.ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ServingConfig;

    fn rescorer(admission_control: bool) -> Rescorer {
        crate::rescorer::golden_rescorer(ServingConfig {
            scoring_threads: 1,
            admission_control,
            ..ServingConfig::default()
        })
    }

    fn body(model: &str, timeout_ms: u64) -> RescoreRequest<HitScore> {
        serde_json::from_str(&format!(
            r#"{{"model":"{model}","timeout_ms":{timeout_ms},"hits":[{{"id":"a","score":3}},{{"id":"b","score":7.5,"features":{{"x":1}}}}]}}"#
        ))
        .expect("valid body")
    }

    #[test]
    fn a_request_admission_refuses_gets_the_baseline_from_its_scores() {
        let r = rescorer(true);
        // 2 hits at 1 ms each, and 40 ms of admitted work queued on the one slot.
        r.admission.observe(2, Duration::from_millis(2));
        let _queued: Vec<_> = (0..20)
            .map(|_| {
                r.admission
                    .admit(2, Duration::from_secs(1))
                    .expect("admitted")
            })
            .collect();
        let now = Instant::now();
        assert!(
            r.refuse_early(&body("regression", 100), now).is_none(),
            "40 ms wait + 2 ms fits 100 ms"
        );
        let answer = r
            .refuse_early(&body("regression", 30), now)
            .expect("40 ms wait + 2 ms does not fit 30 ms");
        assert_eq!(answer.scores, vec![3.0, 7.5]);
        assert_eq!(answer.fallback, Some(FallbackReason::Overloaded));
        assert_eq!(answer.model.as_deref(), Some("regression"));
        assert_eq!(answer.version.as_deref(), Some("1"));
        assert_eq!(answer.variant.as_deref(), Some("live"));
        // What the ordinary path answers otherwise is left to it: a 404, a 400, a spent budget.
        assert!(r.refuse_early(&body("nope", 30), now).is_none());
        assert!(r.refuse_early(&body("regression", 0), now).is_none());
        let spent = now - Duration::from_millis(31);
        assert!(r.refuse_early(&body("regression", 30), spent).is_none());
        let no_hits: RescoreRequest<HitScore> =
            serde_json::from_str(r#"{"timeout_ms":1,"hits":[]}"#).expect("valid");
        assert!(r.refuse_early(&no_hits, now).is_none());
    }

    #[test]
    fn without_admission_control_nothing_is_refused_early() {
        let r = rescorer(false);
        r.admission.observe(2, Duration::from_millis(2));
        let _queued: Vec<_> = (0..20)
            .map(|_| r.admission.admit(2, Duration::from_secs(1)))
            .collect();
        assert!(!r.refusing());
        assert!(r
            .refuse_early(&body("regression", 30), Instant::now())
            .is_none());
    }
}

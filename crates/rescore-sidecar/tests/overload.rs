//! Admission under overload through the real binary: while most requests are refused, bodies
//! are decoded from their scores alone and refused from that (ADR 0010); the answers are the
//! contract's (200, the baseline, `fallback: "overloaded"`) and bad input is still a 4xx.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{metric, Sidecar, StopOnDrop, TempDir};

fn hits_body(hits: usize, timeout_ms: u64) -> (String, Vec<f64>) {
    let scores: Vec<f64> = (0..hits).map(|i| 100.0 - i as f64 * 0.25).collect();
    let hits: Vec<String> = scores
        .iter()
        .enumerate()
        .map(|(i, s)| format!(r#"{{"id":"item-{i}","score":{s},"features":{{"f0":{i}}}}}"#))
        .collect();
    (
        format!(
            r#"{{"model":"regression","timeout_ms":{timeout_ms},"hits":[{}]}}"#,
            hits.join(",")
        ),
        scores,
    )
}

#[test]
fn while_admission_refuses_bodies_are_refused_from_their_scores() {
    let dir = TempDir::new("overload");
    let config = dir.path().join("sidecar.toml");
    std::fs::write(
        &config,
        "[serving]\nadmission_control = true\nscoring_threads = 1\n",
    )
    .expect("config");
    let models = common::golden_models();
    let sidecar = Sidecar::start(&[
        "--models",
        models.to_str().expect("utf-8 path"),
        "--config",
        config.to_str().expect("utf-8 path"),
    ]);
    // Scored once: admission knows the per-hit cost from here on.
    let (big, _) = hits_body(10_000, 10_000);
    let (status, answer) = sidecar.post("/v1/rescore", &big);
    assert_eq!(
        (status, &answer["fallback"]),
        (200, &serde_json::Value::Null)
    );

    // Two callers keep the one scoring slot busy with large requests and long budgets.
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(&stop);
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let (url, stop, big) = (
                format!("{}/v1/rescore", sidecar.base),
                stop.clone(),
                big.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let answer = ureq::post(&url)
                        .set("content-type", "application/json")
                        .send_string(&big);
                    assert!(answer.is_ok_and(|a| a.status() == 200));
                }
            })
        })
        .collect();

    // Small requests with a 1 ms budget cannot wait for that slot: refused, first after a
    // full decode, then (once refusals are most decisions) from their scores alone.
    let (small, baseline) = hits_body(500, 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    let early = || {
        metric(
            &sidecar.get_text("/metrics"),
            "rescore_scores_only_refusals_total",
        )
        .unwrap_or(0.0)
    };
    let mut answers = 0;
    while early() < 20.0 && Instant::now() < deadline {
        for _ in 0..20 {
            let (status, answer) = sidecar.post("/v1/rescore", &small);
            assert_eq!(status, 200, "{answer}");
            let scores: Vec<f64> =
                serde_json::from_value(answer["scores"].clone()).expect("scores are numbers");
            assert_eq!(scores.len(), baseline.len());
            if !answer["fallback"].is_null() {
                assert_eq!(scores, baseline, "a fallback is the baseline");
            }
            answers += 1;
        }
    }
    let refused_early = early();
    assert!(
        refused_early >= 20.0,
        "{refused_early} of {answers} requests refused from their scores in 60 s"
    );
    let text = sidecar.get_text("/metrics");
    let overloaded =
        metric(&text, r#"rescore_fallbacks_total{reason="overloaded"}"#).unwrap_or(0.0);
    assert!(
        overloaded >= refused_early,
        "{overloaded} < {refused_early}"
    );

    // Bad input while refusing is still a 4xx naming the field, as the full decode names it.
    let bad = small.replacen(r#""f0":0"#, r#""f0":"zero""#, 1);
    assert_ne!(bad, small);
    for _ in 0..5 {
        let (status, answer) = sidecar.post("/v1/rescore", &bad);
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], "invalid_request", "{answer}");
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(message.starts_with("hits[0].features.f0"), "{message}");
    }
    let (status, answer) = sidecar.post("/v1/rescore", &small.replace("regression", "nope"));
    assert_eq!(
        (status, &answer["error"]["code"]),
        (404, &serde_json::json!("unknown_model"))
    );

    stop.store(true, Ordering::Relaxed);
    for thread in busy {
        thread.join().expect("busy caller");
    }
    // With the slot free again, a request with a budget it fits in is scored.
    let (ok, baseline) = hits_body(500, 5_000);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, answer) = sidecar.post("/v1/rescore", &ok);
        assert_eq!(status, 200);
        if answer["fallback"].is_null() {
            let scores: Vec<f64> =
                serde_json::from_value(answer["scores"].clone()).expect("scores");
            assert_ne!(scores, baseline, "model scores");
            break;
        }
        assert!(Instant::now() < deadline, "never scored again: {answer}");
    }
}

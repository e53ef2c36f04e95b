//! Model lifecycle end to end against the real binary: hot reload (file watch, SIGHUP, admin
//! API) under load with zero failed requests, broken versions rejected while the old one keeps
//! serving, rollback, sticky A/B variants, routing rules and shadow scoring.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{golden_cases, metric, repo_root, GoldenCase, Sidecar, TempDir};
use serde_json::json;

const TOKEN: &str = "test-admin-token-0123456789";

/// Golden kinds used as versions of one model: every kind shares the same 40 features.
struct Kinds {
    cases: Vec<GoldenCase>,
}

impl Kinds {
    fn load(kinds: &[&str]) -> Self {
        let all = golden_cases();
        Kinds {
            cases: kinds
                .iter()
                .map(|k| {
                    all.iter()
                        .find(|c| c.model == *k)
                        .map(|c| GoldenCase {
                            model: c.model.clone(),
                            objective: c.objective.clone(),
                            features: c.features.clone(),
                            rows: c.rows.clone(),
                            expected: c.expected.clone(),
                        })
                        .expect("golden kind")
                })
                .collect(),
        }
    }

    /// Hits made of every kind's golden rows, in order: whichever version answers, the
    /// slice of its own kind must equal LightGBM's predictions exactly.
    fn hits(&self) -> Vec<serde_json::Value> {
        let mut hits = Vec::new();
        for case in &self.cases {
            for (i, row) in case.rows.iter().enumerate() {
                let features: serde_json::Map<String, serde_json::Value> = case
                    .features
                    .iter()
                    .zip(row)
                    .map(|(f, v)| (f.clone(), json!(v)))
                    .collect();
                hits.push(json!({"id": format!("{}-{i}", case.model), "score": i as f64, "features": features}));
            }
        }
        hits
    }

    /// Checks `scores` against the kind served as `kind_index`.
    fn check(&self, kind_index: usize, scores: &[f64]) -> Result<(), String> {
        let offset: usize = self.cases[..kind_index].iter().map(|c| c.rows.len()).sum();
        let case = &self.cases[kind_index];
        for (i, want) in case.expected.iter().enumerate() {
            let got = scores[offset + i];
            if (got - want).abs() > 1e-9 {
                return Err(format!("{}: row {i}: {got} != {want}", case.model));
            }
        }
        Ok(())
    }
}

/// One request on its own connection (the client threads do not share the test's `Sidecar`).
fn post(base: &str, body: &str) -> Result<(u16, serde_json::Value), String> {
    let (status, text) = match ureq::post(&format!("{base}/v1/rescore"))
        .set("content-type", "application/json")
        .timeout(Duration::from_secs(60))
        .send_string(body)
    {
        Ok(r) => (r.status(), r.into_string().map_err(|e| e.to_string())?),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().map_err(|e| e.to_string())?),
        Err(e) => return Err(format!("transport: {e}")),
    };
    let json = serde_json::from_str(&text).map_err(|e| format!("{status}: {e}: {text:.200}"))?;
    Ok((status, json))
}

fn install(root: &Path, model: &str, version: u64, kind: &str) {
    // Written beside, then renamed into place: a watcher never sees half a version.
    let staging = root.join(format!(".upload-{model}-{version}"));
    std::fs::create_dir_all(&staging).expect("mkdir");
    std::fs::copy(
        repo_root().join(format!("tests/fixtures/golden/models/{kind}/1/model.txt")),
        staging.join("model.txt"),
    )
    .expect("copy model");
    std::fs::create_dir_all(root.join(model)).expect("mkdir");
    std::fs::rename(&staging, root.join(model).join(version.to_string())).expect("rename");
}

fn live_of(models: &serde_json::Value, name: &str) -> Option<String> {
    models["models"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)?["live_version"]
        .as_str()
        .map(str::to_string)
}

fn role_of(models: &serde_json::Value, name: &str, version: &str) -> Option<String> {
    models["models"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)?["versions"]
        .as_array()?
        .iter()
        .find(|v| v["version"] == version)?["role"]
        .as_str()
        .map(str::to_string)
}

/// Reloads by file watch, SIGHUP and the admin API, a rollback, a broken version and a
/// refused promotion, all while clients keep sending requests: not one fails or falls back,
/// and every response is exact for the version it names.
#[test]
fn reload_under_load_never_fails_a_request() {
    let tmp = TempDir::new("reload");
    let root = tmp.path().join("models");
    install(&root, "m", 1, "lambdarank");
    let kinds = Arc::new(Kinds::load(&["lambdarank", "rank_xendcg"]));
    let body = json!({"model": "m", "hits": kinds.hits(), "timeout_ms": 10_000}).to_string();
    let sidecar = Sidecar::start_with_env(
        &[
            "--models",
            root.to_str().expect("utf-8"),
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[("RESCORE_ADMIN_TOKEN", TOKEN)],
    );

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (base, stop, served, kinds, body) = (
                sidecar.base.clone(),
                stop.clone(),
                served.clone(),
                kinds.clone(),
                body.clone(),
            );
            std::thread::spawn(move || -> Result<usize, String> {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (status, resp) = post(&base, &body)?;
                    if status != 200 || !resp["fallback"].is_null() {
                        return Err(format!("request {n} failed: {status} {resp}"));
                    }
                    let version = resp["version"].as_str().unwrap_or_default();
                    let kind = match version {
                        "1" => 0,
                        "2" => 1,
                        other => return Err(format!("unexpected version {other}: {resp}")),
                    };
                    let scores: Vec<f64> = serde_json::from_value(resp["scores"].clone())
                        .map_err(|e| e.to_string())?;
                    kinds.check(kind, &scores)?;
                    served[kind].fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    let wait_live = |v: &str, what: &str| {
        sidecar.wait_models(what, |m| live_of(m, "m").as_deref() == Some(v));
    };
    let pause = || std::thread::sleep(Duration::from_millis(300));

    // 1. A new version appears: the file watch makes it live.
    pause();
    install(&root, "m", 2, "rank_xendcg");
    wait_live("2", "version 2 live after the file watch");
    pause();
    // 2. Rollback with one admin call: the previous live version, kept warm, serves again.
    let (status, report) = sidecar.admin("POST", "/admin/v1/models/m/rollback", Some(TOKEN), None);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["result"], "success");
    assert!(
        report["loaded"].as_array().expect("loaded").is_empty(),
        "{report}"
    );
    let models = sidecar.get_json("/v1/models");
    assert_eq!(live_of(&models, "m").as_deref(), Some("1"));
    assert_eq!(models["models"][0]["pinned_version"], "1");
    assert_eq!(role_of(&models, "m", "2").as_deref(), Some("standby"));
    let routing = std::fs::read_to_string(root.join("routing.toml")).expect("routing written");
    assert!(routing.contains("live = 1"), "{routing}");
    // Ten more swaps by the admin API, back to back, while the clients keep going.
    for i in 0..10 {
        let v = if i % 2 == 0 { 2 } else { 1 };
        let (status, body) = sidecar.admin(
            "POST",
            "/admin/v1/models/m/live",
            Some(TOKEN),
            Some(&format!(r#"{{"version": {v}}}"#)),
        );
        assert_eq!(status, 200, "{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    pause();
    // 3. Roll forward by removing the pin from the routing file (the highest version is live
    //    again), applied on SIGHUP (and by the watch).
    std::fs::write(root.join("routing.toml"), "# follow the highest version\n").expect("write");
    sidecar.signal("HUP");
    wait_live("2", "version 2 live after editing the routing file");
    pause();
    // 4. A broken upload is rejected: version 2 keeps serving, the failure is reported and counted.
    let broken = root.join(".upload-broken");
    std::fs::create_dir_all(&broken).expect("mkdir");
    std::fs::write(
        broken.join("model.txt"),
        "tree\nversion=v4\nnum_class=1\ngarbage",
    )
    .expect("write");
    std::fs::rename(&broken, root.join("m/3")).expect("rename");
    let models = sidecar.wait_models("version 3 reported failed", |m| {
        role_of(m, "m", "3").as_deref() == Some("failed")
    });
    assert_eq!(live_of(&models, "m").as_deref(), Some("2"));
    // 5. Promoting the broken version is refused and changes nothing, file included.
    let (status, body) = sidecar.admin(
        "POST",
        "/admin/v1/models/m/live",
        Some(TOKEN),
        Some(r#"{"version": 3}"#),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reload_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("version 3"),
        "{body}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("routing.toml")).expect("routing"),
        "# follow the highest version\n"
    );
    // 6. An admin reload reports the broken version (409) and keeps serving version 2.
    let (status, body) = sidecar.admin("POST", "/admin/v1/reload", Some(TOKEN), None);
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("m/3"),
        "{body}"
    );
    pause();

    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        total += c
            .join()
            .expect("client thread")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let counts = [
        served[0].load(Ordering::Relaxed),
        served[1].load(Ordering::Relaxed),
    ];
    assert!(
        counts[0] > 0 && counts[1] > 0,
        "both versions served: {counts:?}"
    );
    eprintln!("reload under load: {total} requests, none failed; by version {counts:?}");

    let metrics = sidecar.get_text("/metrics");
    for (series, at_least) in [
        (r#"rescore_model_reloads_total{result="failure"}"#, 1.0),
        (
            r#"rescore_reloads_total{trigger="watch",result="success"}"#,
            1.0,
        ),
        (
            r#"rescore_reloads_total{trigger="sighup",result="success"}"#,
            1.0,
        ),
        (
            r#"rescore_reloads_total{trigger="admin",result="failure"}"#,
            2.0,
        ),
    ] {
        let value = metric(&metrics, series).unwrap_or(0.0);
        assert!(
            value >= at_least,
            "{series} = {value}, expected >= {at_least}"
        );
    }
    assert_eq!(
        metric(&metrics, r#"rescore_model_live_version{model="m"}"#),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &metrics,
            r#"rescore_fallbacks_total{reason="model_unavailable"}"#
        ),
        Some(0.0)
    );
}

/// Sticky A/B variants by user id, rules by request context, and shadow scoring with its
/// comparison metrics and sampled log.
#[test]
fn ab_variants_rules_and_shadows() {
    let tmp = TempDir::new("ab");
    let root = tmp.path().join("models");
    install(&root, "m", 1, "lambdarank");
    install(&root, "m", 2, "rank_xendcg");
    install(&root, "m", 3, "missing_nan");
    install(&root, "cars", 1, "regression");
    std::fs::write(
        root.join("routing.toml"),
        r#"
[models.m]
live = 1
shadows = [3]
rules = [{ when = { category = ["cars", "vans"] }, model = "cars" }]
[models.m.experiment]
salt = "exp-1"
variants = [{ name = "xendcg", version = 2, share = 0.3 }]
"#,
    )
    .expect("routing");
    let log = tmp.path().join("shadow.jsonl");
    let config = tmp.path().join("sidecar.toml");
    std::fs::write(
        &config,
        "models = \"models\"\n[serving.shadow]\nlog_path = \"shadow.jsonl\"\nlog_sample_rate = 1.0\n",
    )
    .expect("config");
    let sidecar = Sidecar::start(&["--config", config.to_str().expect("utf-8")]);
    let kinds = Kinds::load(&["lambdarank", "rank_xendcg", "missing_nan", "regression"]);
    let hits = kinds.hits();

    // 2,000 users: about 30% on the variant, each exact for the version it names.
    let mut assigned = std::collections::HashMap::new();
    let mut on_variant = 0;
    for u in 0..2000 {
        let user = format!("user-{u}");
        let body = json!({"model": "m", "query": {"user_id": user}, "hits": hits[..3]}).to_string();
        let (status, resp) = sidecar.post("/v1/rescore", &body);
        assert_eq!(status, 200, "{resp}");
        let variant = resp["variant"].as_str().expect("variant").to_string();
        let version = resp["version"].as_str().expect("version");
        match variant.as_str() {
            "live" => assert_eq!(version, "1"),
            "xendcg" => {
                assert_eq!(version, "2");
                on_variant += 1;
            }
            other => panic!("unexpected variant {other}"),
        }
        assigned.insert(user, variant);
    }
    let share = on_variant as f64 / 2000.0;
    assert!((share - 0.3).abs() < 0.04, "variant share {share}");
    // Sticky: the same users get the same variant again, and the full rows are exact.
    for u in (0..2000).step_by(97) {
        let user = format!("user-{u}");
        let body = json!({"model": "m", "query": {"user_id": user}, "hits": hits}).to_string();
        let (_, resp) = sidecar.post("/v1/rescore", &body);
        assert_eq!(resp["variant"].as_str(), Some(assigned[&user].as_str()));
        let scores: Vec<f64> = serde_json::from_value(resp["scores"].clone()).expect("scores");
        let kind = if assigned[&user] == "live" { 0 } else { 1 };
        kinds.check(kind, &scores).unwrap_or_else(|e| panic!("{e}"));
    }
    // Without a user id: the live version.
    let (_, resp) = sidecar.post(
        "/v1/rescore",
        &json!({"model": "m", "hits": hits}).to_string(),
    );
    assert_eq!(
        (resp["variant"].as_str(), resp["version"].as_str()),
        (Some("live"), Some("1"))
    );
    // A rule: the cars category goes to the `cars` model, exact for its kind.
    let (_, resp) = sidecar.post(
        "/v1/rescore",
        &json!({"model": "m", "context": {"category": "cars"}, "hits": hits}).to_string(),
    );
    assert_eq!(resp["model"], "cars");
    let scores: Vec<f64> = serde_json::from_value(resp["scores"].clone()).expect("scores");
    kinds.check(3, &scores).unwrap_or_else(|e| panic!("{e}"));
    let (status, resp) = sidecar.post(
        "/v1/rescore",
        &json!({"model": "m", "context": {"category": 7}, "hits": hits}).to_string(),
    );
    assert_eq!(status, 400, "{resp}");

    // Shadows ran off the request path: metrics and a log line whose shadow scores are the
    // shadow version's exact predictions.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // Every request served by `m` was shadowed once: scored, or dropped when the queue was full.
    let shadowed = 2000.0 + 21.0 + 1.0;
    let metrics = loop {
        let text = sidecar.get_text("/metrics");
        let count = |result: &str| {
            metric(
                &text,
                &format!(r#"rescore_shadow_requests_total{{model="m",result="{result}"}}"#),
            )
            .unwrap_or(0.0)
        };
        let (scored, dropped, errors) = (count("scored"), count("dropped"), count("error"));
        assert_eq!(errors, 0.0);
        assert!(scored + dropped <= shadowed, "{scored} + {dropped}");
        if scored + dropped == shadowed {
            assert!(
                scored >= 1000.0,
                "most shadow work is done: {scored} scored, {dropped} dropped"
            );
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "shadows never caught up:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(metrics.contains(r#"rescore_shadow_kendall_tau_bucket{model="m",version="3""#));
    assert!(metrics.contains(r#"rescore_shadow_topk_overlap_count{model="m",version="3"}"#));
    assert!(
        metrics.contains(r#"rescore_requests_total{model="m",variant="xendcg",outcome="scored"}"#)
    );
    let models = sidecar.get_json("/v1/models");
    assert_eq!(role_of(&models, "m", "3").as_deref(), Some("shadow"));
    assert_eq!(role_of(&models, "m", "2").as_deref(), Some("candidate"));
    let m = models["models"]
        .as_array()
        .expect("models")
        .iter()
        .find(|m| m["name"] == "m")
        .expect("m");
    assert_eq!(m["experiment"]["variants"][0]["name"], "xendcg");
    assert!((m["experiment"]["live_share"].as_f64().expect("share") - 0.7).abs() < 1e-12);
    let full_line = std::fs::read_to_string(&log)
        .expect("shadow log")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .find(|l| {
            l["ids"]
                .as_array()
                .is_some_and(|ids| ids.len() == hits.len())
        })
        .expect("a logged full request");
    assert_eq!(full_line["shadow_version"], "3");
    let shadow: Vec<f64> =
        serde_json::from_value(full_line["shadow_scores"].clone()).expect("scores");
    kinds.check(2, &shadow).unwrap_or_else(|e| panic!("{e}"));
}

/// The admin API needs the token; without a token it is not served at all.
#[test]
fn admin_api_needs_its_token() {
    let tmp = TempDir::new("admin");
    let root = tmp.path().join("models");
    install(&root, "m", 1, "lambdarank");
    let models_arg = root.to_str().expect("utf-8");
    let sidecar = Sidecar::start_with_env(
        &["--models", models_arg, "--admin-listen", "127.0.0.1:0"],
        &[("RESCORE_ADMIN_TOKEN", TOKEN)],
    );
    for token in [None, Some("wrong-token-0123456789")] {
        let (status, body) = sidecar.admin("POST", "/admin/v1/reload", token, None);
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let (status, body) = sidecar.admin("POST", "/admin/v1/reload", Some(TOKEN), None);
    assert_eq!(status, 200, "{body}");
    let (status, body) = sidecar.admin("POST", "/admin/v1/models/nope/rollback", Some(TOKEN), None);
    assert_eq!(status, 404, "{body}");
    let (status, body) = sidecar.admin("POST", "/admin/v1/models/m/rollback", Some(TOKEN), None);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .expect("msg")
        .contains("no previous live version"));
    let (status, body) = sidecar.admin(
        "PUT",
        "/admin/v1/models/m/routing",
        Some(TOKEN),
        Some(r#"{"experiment": {"salt": "s", "variants": [{"name": "x", "version": 9, "share": 0.5}]}}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("version 9"),
        "{body}"
    );
    assert!(sidecar
        .get_text("/metrics")
        .contains(r#"rescore_admin_requests_total{outcome="unauthorized"} 2"#));
    drop(sidecar);

    let plain = Sidecar::start(&["--models", models_arg]);
    assert!(plain.admin_base.is_none());
    for (args, env, needle) in [
        (
            vec!["--admin-listen", "127.0.0.1:0"],
            vec![],
            "no admin token",
        ),
        (
            vec![],
            vec![("RESCORE_ADMIN_TOKEN", "short")],
            "at least 16",
        ),
    ] {
        let mut all = vec!["--models", models_arg];
        all.extend(args);
        let (code, out) = common::run_to_end(&all, &env);
        assert_eq!(code, 2, "{out}");
        assert!(out.contains(needle), "{out}");
    }
    // An invalid routing file stops start-up before binding, naming the problem.
    std::fs::write(root.join("routing.toml"), "[models.m]\nlive = 7\n").expect("write");
    let (code, out) = common::run_to_end(&["--models", models_arg], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("models.m.live: version 7"), "{out}");
}

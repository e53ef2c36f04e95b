//! The gamed-listing guard through the real binary (ADR 0011): a hit lifted far above its
//! first-pass rank with a suspicious item is flagged (policy flag) or capped (policy cap) only
//! when asked for, reported in `flags` only when the request opts in, and counted.

mod common;

use common::{metric, repo_root, Sidecar, TempDir};
use serde_json::{json, Value};

/// The demo model with its manifest's guard set to `policy`; returns the models root and the
/// manifest's `cap_score`.
fn demo_model(tmp: &TempDir, policy: &str) -> (std::path::PathBuf, f64) {
    let version = tmp.path().join("models/marketplace/1");
    std::fs::create_dir_all(&version).expect("model dir");
    let demo = repo_root().join("models/marketplace/1");
    std::fs::copy(demo.join("model.txt"), version.join("model.txt")).expect("copy model");
    let manifest = std::fs::read_to_string(demo.join("manifest.toml")).expect("manifest");
    assert!(
        manifest.contains("policy = \"off\""),
        "the demo guard is off"
    );
    let manifest = manifest.replace("policy = \"off\"", &format!("policy = \"{policy}\""));
    std::fs::write(version.join("manifest.toml"), &manifest).expect("write manifest");
    let table: toml::Table = toml::from_str(&manifest).expect("toml");
    let cap = table["guard"]["cap_score"].as_float().expect("cap_score");
    (tmp.path().join("models"), cap)
}

/// 30 hits in first-pass order: 29 plain listings of another category, and last (hit 29) one
/// the model loves, suspicious by the popularity rule. Hit 28 is as lovable and not suspicious.
fn body(guard: Option<Value>) -> Value {
    let mut hits: Vec<Value> = (0..28)
        .map(|i| {
            json!({"id": format!("p{i}"), "score": 30.0 - f64::from(i), "features": {
                "category": 3, "brand": 7, "price": 300.0, "condition": 1, "seller_rating": 3.5,
                "age_days": 200, "popularity": 1, "suspicion": 1.0, "suspicion_rules": 1}})
        })
        .collect();
    for (id, suspicion, rules) in [("honest", 0.2, 0), ("gamed", 1.0, 1)] {
        hits.push(json!({"id": id, "score": 1.0, "features": {
            "category": 12, "brand": 41, "price": 45.0, "condition": 4, "seller_rating": 5.0,
            "age_days": 2, "popularity": 900, "suspicion": suspicion, "suspicion_rules": rules}}));
    }
    let mut body = json!({"model": "marketplace",
        "query": {"text": "stand mixer", "features": {"intent_category": 12, "user_budget": 50.0, "user_brand": 41}},
        "hits": hits});
    if let Some(guard) = guard {
        body["guard"] = guard;
    }
    body
}

fn scores(resp: &Value) -> Vec<f64> {
    resp["scores"]
        .as_array()
        .expect("scores")
        .iter()
        .map(|s| s.as_f64().expect("number"))
        .collect()
}

#[test]
fn guard_policies_flags_and_counter_over_http() {
    let tmp = TempDir::new("guard");
    let (models, cap) = demo_model(&tmp, "flag");
    let sidecar = Sidecar::start(&["--models", models.to_str().expect("utf-8")]);

    // Series exist at 0 once the version loaded.
    let text = sidecar.get_text("/metrics");
    let series = |rule: &str| {
        format!(
            "rescore_guard_flagged_total{{model=\"marketplace\",version=\"1\",rule=\"{rule}\"}}"
        )
    };
    for rule in ["hbos", "popularity_vs_age", "price_below_category"] {
        assert_eq!(metric(&text, &series(rule)), Some(0.0), "{rule}: {text}");
    }

    // No opt-in: the response a client always got (no `flags`); policy flag leaves scores.
    let (status, plain) = sidecar.post("/v1/rescore", &body(None).to_string());
    assert_eq!(status, 200, "{plain}");
    assert!(plain.get("flags").is_none(), "{plain}");
    let s = scores(&plain);
    let top = (0..s.len())
        .max_by(|&a, &b| s[a].total_cmp(&s[b]))
        .expect("hits");
    assert!(
        top >= 28,
        "the lovable listings are lifted to the top: {s:?}"
    );
    assert!(
        s[29] > cap,
        "the gamed listing scores above the cap: {} vs {cap}",
        s[29]
    );

    // Opt-in flags: only the lifted suspicious hit (the plain suspicious ones are not lifted).
    let (_, flagged) = sidecar.post(
        "/v1/rescore",
        &body(Some(json!({"flags": true}))).to_string(),
    );
    let flags = flagged["flags"].as_array().expect("flags");
    assert_eq!(flags.len(), 30);
    assert_eq!(flags[29], json!(["popularity_vs_age"]));
    assert!(flags[..29].iter().all(|f| f == &json!([])), "{flags:?}");
    assert_eq!(scores(&flagged), s);

    // Policy cap for this request: the flagged hit's score is the version's constant.
    let (_, capped) = sidecar.post(
        "/v1/rescore",
        &body(Some(json!({"flags": true, "policy": "cap"}))).to_string(),
    );
    let c = scores(&capped);
    assert_eq!(c[29], cap);
    assert_eq!(c[..29], s[..29]);
    assert_eq!(capped["flags"][29], json!(["popularity_vs_age", "capped"]));

    // Policy off for this request: nothing flagged, nothing counted.
    let (_, off) = sidecar.post(
        "/v1/rescore",
        &body(Some(json!({"flags": true, "policy": "off"}))).to_string(),
    );
    assert!(off["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .all(|f| f == &json!([])));

    // A bad policy is a 400 naming the field.
    let (status, err) = sidecar.post(
        "/v1/rescore",
        &body(Some(json!({"policy": "block"}))).to_string(),
    );
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], "invalid_request");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("guard")),
        "{err}"
    );

    // Three requests ran the guard with flag or cap and flagged one hit each.
    let text = sidecar.get_text("/metrics");
    assert_eq!(
        metric(&text, &series("popularity_vs_age")),
        Some(3.0),
        "{text}"
    );
    assert_eq!(metric(&text, &series("hbos")), Some(0.0));
}

#[test]
fn a_cap_policy_without_cap_score_fails_the_version_load_naming_it() {
    let tmp = TempDir::new("guard-bad");
    let (models, _) = demo_model(&tmp, "cap");
    let manifest = models.join("marketplace/1/manifest.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("cap_score"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&manifest, without).expect("write");
    let sidecar = Sidecar::start(&["--models", models.to_str().expect("utf-8")]);
    let models = sidecar.wait_models("the failed load", |m| {
        m["models"][0]["versions"][0]["role"] == "failed"
    });
    let error = models["models"][0]["versions"][0]["error"]
        .as_str()
        .expect("error")
        .to_string();
    assert!(error.contains("guard.cap_score"), "{error}");
}

const TOKEN: &str = "test-admin-token-0123456789";

/// Copies version 1 of the demo model as `version`, renamed into place as an operator uploads.
fn install_copy(models: &std::path::Path, version: u64) {
    let staging = models.join(format!(".upload-{version}"));
    std::fs::create_dir_all(&staging).expect("staging dir");
    for file in ["model.txt", "manifest.toml"] {
        std::fs::copy(models.join("marketplace/1").join(file), staging.join(file))
            .expect("copy version 1");
    }
    std::fs::rename(&staging, models.join(format!("marketplace/{version}"))).expect("rename");
}

/// The `/v1/models` roles of the demo model's versions, e.g. `[("1", "standby"), ...]`.
fn roles(models: &Value) -> Vec<(String, String)> {
    models["models"][0]["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().expect("string").to_string();
            (s("version"), s("role"))
        })
        .collect()
}

fn has_version_series(text: &str, version: &str) -> bool {
    let label = format!("model=\"marketplace\",version=\"{version}\"");
    text.lines()
        .any(|l| !l.starts_with('#') && l.contains(&label))
}

/// A version's series (`rescore_model_info`, its guard rules) leave `/metrics` when it is
/// unloaded, while the loaded versions' counters keep counting from where they were; a version
/// loaded again shows its series again.
#[test]
fn an_unloaded_versions_series_leave_metrics_and_loaded_ones_keep_counting() {
    let tmp = TempDir::new("guard-series");
    let (models, _) = demo_model(&tmp, "flag");
    let sidecar = Sidecar::start_with_env(
        &[
            "--models",
            models.to_str().expect("utf-8"),
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[("RESCORE_ADMIN_TOKEN", TOKEN)],
    );
    let info = |v: &str| {
        format!("rescore_model_info{{model=\"marketplace\",version=\"{v}\",engine=\"native\"}}")
    };
    let flagged = |v: &str| {
        format!("rescore_guard_flagged_total{{model=\"marketplace\",version=\"{v}\",rule=\"popularity_vs_age\"}}")
    };
    let flag_once = || {
        let (status, resp) = sidecar.post("/v1/rescore", &body(None).to_string());
        assert_eq!(status, 200, "{resp}");
        resp["version"].as_str().expect("version").to_string()
    };
    let wait_roles = |what: &str, want: &[(&str, &str)]| {
        sidecar.wait_models(what, |m| {
            roles(m)
                .iter()
                .filter(|(_, r)| r != "available")
                .map(|(v, r)| (v.as_str(), r.as_str()))
                .collect::<Vec<_>>()
                == want
        })
    };

    // Version 2 goes live by the file watch; version 1 stays loaded as standby.
    install_copy(&models, 2);
    wait_roles("version 2 live", &[("1", "standby"), ("2", "live")]);
    assert_eq!(flag_once(), "2");
    let text = sidecar.get_text("/metrics");
    assert_eq!(metric(&text, &info("1")), Some(0.0), "{text}");
    assert_eq!(metric(&text, &info("2")), Some(1.0), "{text}");
    assert_eq!(metric(&text, &flagged("1")), Some(0.0), "{text}");
    assert_eq!(metric(&text, &flagged("2")), Some(1.0), "{text}");

    // Version 3 goes live: version 2 is the standby, version 1 is unloaded and its series go.
    install_copy(&models, 3);
    wait_roles("version 3 live", &[("2", "standby"), ("3", "live")]);
    let text = sidecar.get_text("/metrics");
    assert!(!has_version_series(&text, "1"), "{text}");
    assert_eq!(metric(&text, &info("2")), Some(0.0), "{text}");
    assert_eq!(metric(&text, &flagged("2")), Some(1.0), "{text}");
    assert_eq!(metric(&text, &info("3")), Some(1.0), "{text}");
    assert_eq!(metric(&text, &flagged("3")), Some(0.0), "{text}");
    // Still a well-formed exposition: one TYPE line per family, every family with samples.
    let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let mut unique = types.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), types.len(), "{text}");

    // Version 2 back live by the admin API: its counter continues, it never reset.
    let (status, resp) = sidecar.admin(
        "POST",
        "/admin/v1/models/marketplace/live",
        Some(TOKEN),
        Some(r#"{"version": 2}"#),
    );
    assert_eq!(status, 200, "{resp}");
    assert_eq!(flag_once(), "2");
    let text = sidecar.get_text("/metrics");
    assert_eq!(metric(&text, &flagged("2")), Some(2.0), "{text}");
    assert_eq!(metric(&text, &info("2")), Some(1.0), "{text}");
    assert!(!has_version_series(&text, "1"), "{text}");

    // Version 1 promoted again: loaded, its series are back; version 3 is unloaded in turn.
    let (status, resp) = sidecar.admin(
        "POST",
        "/admin/v1/models/marketplace/live",
        Some(TOKEN),
        Some(r#"{"version": 1}"#),
    );
    assert_eq!(status, 200, "{resp}");
    wait_roles("version 1 live", &[("1", "live"), ("2", "standby")]);
    let text = sidecar.get_text("/metrics");
    assert_eq!(metric(&text, &info("1")), Some(1.0), "{text}");
    assert_eq!(metric(&text, &flagged("1")), Some(0.0), "{text}");
    assert_eq!(metric(&text, &flagged("2")), Some(2.0), "{text}");
    assert!(!has_version_series(&text, "3"), "{text}");
}

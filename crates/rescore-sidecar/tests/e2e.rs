//! End to end: the built binary on a free loopback port, a real HTTP client.

mod common;

use std::fmt::Write as _;

use common::{golden_cases, golden_models, metric, repo_root, run_to_end, Sidecar, TempDir};
use serde_json::json;

fn num(v: f64) -> String {
    // `{:?}` prints the shortest representation that parses back to the same f64.
    format!("{v:?}")
}

/// Scores equal LightGBM's own predictions for every golden model kind, whether the features
/// come inline (values, nulls, absent keys) or from the item store by id, with the default
/// engines (native where it is exact) and with lightgbm3 forced by configuration.
#[test]
fn golden_parity_inline_and_from_the_item_store() {
    golden_parity(None);
}

#[test]
fn golden_parity_with_lightgbm3_forced() {
    golden_parity(Some("lightgbm3"));
}

fn golden_parity(engine: Option<&str>) {
    let cases = golden_cases();
    let tmp = TempDir::new("parity");
    let items_path = tmp.path().join("items.jsonl");
    let mut items = String::new();
    for case in &cases {
        for (i, row) in case.rows.iter().enumerate() {
            item_line(&mut items, &format!("{}-{i}", case.model), case, row);
        }
    }
    std::fs::write(&items_path, items).expect("write items");
    let models = golden_models();
    let config = tmp.path().join("sidecar.toml");
    let engine_line = engine
        .map(|e| format!("default_engine = \"{e}\"\n"))
        .unwrap_or_default();
    std::fs::write(&config, format!("[serving]\n{engine_line}")).expect("config");
    let sidecar = Sidecar::start(&[
        "--models",
        models.to_str().expect("utf-8"),
        "--items",
        items_path.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    let status: serde_json::Value =
        serde_json::from_str(&sidecar.get_text("/v1/models")).expect("json");
    for m in status["models"].as_array().expect("models") {
        let want = match engine {
            Some(forced) => forced,
            None if m["name"] == "linear_tree" => "lightgbm3",
            None => "native",
        };
        assert_eq!(m["versions"][0]["engine"], want, "{m}");
    }

    let mut worst = 0.0f64;
    for case in &cases {
        // Inline: odd rows send missing values as explicit null, even rows leave them out.
        let hits: Vec<String> = case
            .rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let features: Vec<String> = case
                    .features
                    .iter()
                    .zip(row)
                    .filter_map(|(name, v)| match v {
                        Some(v) => Some(format!("\"{name}\":{}", num(*v))),
                        None if i % 2 == 1 => Some(format!("\"{name}\":null")),
                        None => None,
                    })
                    .collect();
                format!(
                    r#"{{"id":"x{i}","score":{i},"features":{{{}}}}}"#,
                    features.join(",")
                )
            })
            .collect();
        let body = format!(
            r#"{{"model":"{}","hits":[{}]}}"#,
            case.model,
            hits.join(",")
        );
        let inline = scores(&sidecar, &body, case.rows.len());

        // From the item store: ids only, no inline features.
        let hits: Vec<String> = (0..case.rows.len())
            .map(|i| format!(r#"{{"id":"{}-{i}","score":0}}"#, case.model))
            .collect();
        let body = format!(
            r#"{{"model":"{}","hits":[{}]}}"#,
            case.model,
            hits.join(",")
        );
        let stored = scores(&sidecar, &body, case.rows.len());

        for (source, got) in [("inline", &inline), ("item store", &stored)] {
            for (i, (g, want)) in got.iter().zip(&case.expected).enumerate() {
                let diff = (g - want).abs();
                worst = worst.max(diff);
                assert!(
                    diff <= 1e-9,
                    "{} ({}) row {i} via {source}: got {g}, LightGBM {want}",
                    case.model,
                    case.objective
                );
            }
        }
    }
    eprintln!("worst |diff| over all golden kinds: {worst:e}");
}

/// Appends one item snapshot line holding a golden row (missing values left out).
fn item_line(out: &mut String, id: &str, case: &common::GoldenCase, row: &[Option<f64>]) {
    let features: serde_json::Map<String, serde_json::Value> = case
        .features
        .iter()
        .zip(row)
        .filter_map(|(name, v)| v.map(|v| (name.clone(), json!(v))))
        .collect();
    writeln!(out, "{}", json!({"id": id, "features": features})).expect("write");
}

fn scores(sidecar: &Sidecar, body: &str, n: usize) -> Vec<f64> {
    let (status, json) = sidecar.post("/v1/rescore", body);
    assert_eq!(status, 200, "{json}");
    assert!(json["fallback"].is_null(), "{json}");
    let scores: Vec<f64> = json["scores"]
        .as_array()
        .expect("scores")
        .iter()
        .map(|s| s.as_f64().expect("number"))
        .collect();
    assert_eq!(scores.len(), n);
    scores
}

/// A full request of 1,000 ids whose features all come from the item store.
#[test]
fn thousand_ids_without_inline_features() {
    let case = golden_cases()
        .into_iter()
        .find(|c| c.model == "lambdarank")
        .expect("lambdarank case");
    let tmp = TempDir::new("thousand");
    let mut items = String::new();
    for i in 0..1000 {
        item_line(
            &mut items,
            &format!("item-{i}"),
            &case,
            &case.rows[i % case.rows.len()],
        );
    }
    let items_path = tmp.path().join("items.jsonl");
    std::fs::write(&items_path, items).expect("write");
    let models = golden_models();
    let sidecar = Sidecar::start(&[
        "--models",
        models.to_str().expect("utf-8"),
        "--items",
        items_path.to_str().expect("utf-8"),
    ]);
    let hits: Vec<String> = (0..1000)
        .map(|i| format!(r#"{{"id":"item-{i}","score":{}}}"#, 1000 - i))
        .collect();
    let body = format!(
        r#"{{"model":"lambdarank","query":{{"text":"cool toys","user_id":"u1"}},"hits":[{}]}}"#,
        hits.join(",")
    );
    for _ in 0..2 {
        let got = scores(&sidecar, &body, 1000);
        for (i, g) in got.iter().enumerate() {
            let want = case.expected[i % case.rows.len()];
            assert!((g - want).abs() <= 1e-9, "hit {i}: {g} vs {want}");
        }
    }
    // The embedded store is read in place (ADR 0008): one read of all 1,000 rows per request,
    // no item cache in front of it.
    let text = sidecar.get_text("/metrics");
    assert_eq!(
        metric(
            &text,
            "rescore_item_store_duration_seconds_count{store=\"embedded\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "rescore_item_cache_misses_total"),
        Some(0.0),
        "{text}"
    );
}

/// A broken newest version never replaces a working one; an unservable model is reported and
/// answered with the baseline; both are counted.
#[test]
fn failed_loads_fall_back_and_are_counted() {
    let tmp = TempDir::new("failed");
    let root = tmp.path();
    let copy = |from: &str, to: &str| {
        let dir = root.join(to);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::copy(repo_root().join(from), dir.join("model.txt")).expect("copy");
    };
    copy(
        "tests/fixtures/golden/models/regression/1/model.txt",
        "ranker/1",
    );
    copy(
        "tests/fixtures/golden/models/regression/1/model.txt",
        "ranker/2",
    );
    std::fs::write(
        root.join("ranker/2/manifest.toml"),
        "[features.no_such_feature]\ndefault = 1.0\n",
    )
    .expect("write");
    std::fs::create_dir_all(root.join("ranker/3")).expect("mkdir");
    std::fs::write(root.join("ranker/3/model.txt"), "tree\nversion=v4\ngarbage").expect("write");
    copy(
        "tests/fixtures/unservable/models/multiclass/1/model.txt",
        "multi/1",
    );
    std::fs::create_dir_all(root.join("ranker/not-a-version")).expect("mkdir");
    std::os::unix::fs::symlink(root.join("ranker"), root.join("linked")).expect("symlink");

    let sidecar = Sidecar::start(&["--models", root.to_str().expect("utf-8")]);
    let models: serde_json::Value =
        serde_json::from_str(&sidecar.get_text("/v1/models")).expect("json");
    let by_name = |name: &str| {
        models["models"]
            .as_array()
            .expect("models")
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {models}"))
            .clone()
    };
    let ranker = by_name("ranker");
    assert_eq!(ranker["live_version"], "1", "{ranker}");
    let roles: Vec<(&str, &str)> = ranker["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["version"].as_str().expect("v"),
                v["role"].as_str().expect("role"),
            )
        })
        .collect();
    assert_eq!(roles, [("1", "live"), ("2", "failed"), ("3", "failed")]);
    assert!(ranker["versions"][1]["error"]
        .as_str()
        .expect("error")
        .contains("no_such_feature"));
    assert_eq!(by_name("linked")["live_version"], "1");
    let multi = by_name("multi");
    assert!(multi["live_version"].is_null());
    assert!(
        multi["versions"][0]["error"]
            .as_str()
            .expect("error")
            .contains("one score per hit"),
        "{multi}"
    );

    let (status, json) = sidecar.post(
        "/v1/rescore",
        r#"{"model":"ranker","hits":[{"id":"a","score":1}]}"#,
    );
    assert_eq!((status, &json["version"]), (200, &json!("1")), "{json}");
    assert!(json["fallback"].is_null());
    let (status, json) = sidecar.post(
        "/v1/rescore",
        r#"{"model":"multi","hits":[{"id":"a","score":4.5},{"id":"b","score":9}]}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(json["fallback"], "model_unavailable");
    assert_eq!(json["scores"], json!([4.5, 9.0]));
    let text = sidecar.get_text("/metrics");
    assert_eq!(
        metric(&text, r#"rescore_model_reloads_total{result="failure"}"#),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"rescore_fallbacks_total{reason="model_unavailable"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"rescore_model_info{model="ranker",version="1",engine="native"}"#
        ),
        Some(1.0)
    );
}

/// A budget too small for the work returns the baseline with `fallback: "timeout"`.
#[test]
fn late_scores_are_replaced_by_the_baseline() {
    let models = golden_models();
    let sidecar = Sidecar::start(&["--models", models.to_str().expect("utf-8")]);
    let hits: Vec<String> = (0..10_000)
        .map(|i| {
            let features: Vec<String> = (0..40)
                .map(|f| format!(r#""f{f:03}":{}.25"#, (i * 7 + f) % 13))
                .collect();
            format!(
                r#"{{"id":"{i}","score":{i}.5,"features":{{{}}}}}"#,
                features.join(",")
            )
        })
        .collect();
    let body = format!(
        r#"{{"model":"lambdarank","timeout_ms":1,"hits":[{}]}}"#,
        hits.join(",")
    );
    let (status, json) = sidecar.post("/v1/rescore", &body);
    assert_eq!(status, 200);
    assert_eq!(json["fallback"], "timeout", "{:.300}", json.to_string());
    let scores = json["scores"].as_array().expect("scores");
    assert_eq!(scores.len(), 10_000);
    assert!(scores
        .iter()
        .enumerate()
        .all(|(i, s)| s.as_f64() == Some(i as f64 + 0.5)));
    let text = sidecar.get_text("/metrics");
    assert!(
        metric(&text, r#"rescore_fallbacks_total{reason="timeout"}"#) >= Some(1.0),
        "{text}"
    );
    // the same request with the default budget (1 s) is scored
    let body = body.replace(r#""timeout_ms":1,"#, "");
    let (status, json) = sidecar.post("/v1/rescore", &body);
    assert_eq!(status, 200);
    assert!(json["fallback"].is_null(), "{:.300}", json.to_string());
}

/// The default body limit takes 1,000 hits x 300 inline features (~4 MiB); a configured
/// smaller one answers 413 with the JSON error body. Also checks the config file and env vars.
#[test]
fn body_limits_config_file_and_environment() {
    let mut hits = Vec::new();
    for i in 0..1000 {
        let features: Vec<String> = (0..300)
            .map(|f| format!(r#""feature_{f}":{}.123456"#, i + f))
            .collect();
        hits.push(format!(
            r#"{{"id":"item-{i}","score":{i},"features":{{{}}}}}"#,
            features.join(",")
        ));
    }
    let big = format!(r#"{{"model":"regression","hits":[{}]}}"#, hits.join(","));
    assert!(big.len() > 4_000_000, "{}", big.len());

    let models = golden_models();
    let sidecar =
        Sidecar::start_with_env(&[], &[("RESCORE_MODELS", models.to_str().expect("utf-8"))]);
    let (status, json) = sidecar.post("/v1/rescore", &big);
    assert_eq!(status, 200, "{json}");
    assert!(json["fallback"].is_null());
    drop(sidecar);

    let tmp = TempDir::new("config");
    let config = tmp.path().join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nmodels = \"{}\"\n[server]\nbody_limit_bytes = 100000\n[serving]\ndefault_model = \"binary\"\n",
            models.display()
        ),
    )
    .expect("write config");
    let sidecar =
        Sidecar::start_with_env(&[], &[("RESCORE_CONFIG", config.to_str().expect("utf-8"))]);
    // A client that announces a body over the limit gets the 413 without sending it all.
    let (status, json) = post_announced(&sidecar, big.len(), &big.as_bytes()[..10_000]);
    assert_eq!(status, 413, "{json}");
    assert_eq!(json["error"]["code"], "payload_too_large");
    let (status, json) = sidecar.post("/v1/rescore", r#"{"hits":[{"id":"a","score":1}]}"#);
    assert_eq!((status, &json["model"]), (200, &json!("binary")), "{json}");
}

#[test]
fn bad_configuration_exits_2_before_binding() {
    let tmp = TempDir::new("badconfig");
    let models = golden_models();
    let models = models.to_str().expect("utf-8");
    let bad_key = tmp.path().join("bad.toml");
    std::fs::write(&bad_key, "listn = \"127.0.0.1:1\"\n").expect("write");
    let bad_default = tmp.path().join("default.toml");
    std::fs::write(&bad_default, "[serving]\ndefault_model = \"nope\"\n").expect("write");
    let zero_timeout = tmp.path().join("zero.toml");
    std::fs::write(&zero_timeout, "[serving]\ndefault_timeout_ms = 0\n").expect("write");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--models", "/nonexistent/models"],
            "/nonexistent/models",
        ),
        (
            vec!["--items", "/nonexistent/items.jsonl"],
            "/nonexistent/items.jsonl",
        ),
        (vec!["--config", bad_key.to_str().expect("utf-8")], "listn"),
        (
            vec![
                "--config",
                bad_default.to_str().expect("utf-8"),
                "--models",
                models,
            ],
            "nope",
        ),
        (
            vec!["--config", zero_timeout.to_str().expect("utf-8")],
            "default_timeout_ms",
        ),
        (vec!["--listen", "not-an-address"], "not-an-address"),
    ];
    for (args, mentions) in cases {
        let (code, out) = run_to_end(&args, &[]);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(out.contains(mentions), "{args:?}: {out}");
    }
    let (code, help) = run_to_end(&["--help"], &[]);
    assert_eq!(code, 0);
    for flag in [
        "--listen",
        "--models",
        "--items",
        "--config",
        "RESCORE_LISTEN",
        "RESCORE_MODELS",
        "RESCORE_ITEMS",
        "RESCORE_CONFIG",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}: {help}");
    }
}

#[test]
fn a_bad_item_snapshot_stops_the_sidecar() {
    let tmp = TempDir::new("baditems");
    let items = tmp.path().join("items.jsonl");
    std::fs::write(
        &items,
        "{\"id\":\"a\",\"features\":{\"x\":1}}\n{\"id\":\"b\",\"features\":{\"x\":\"oops\"}}\n",
    )
    .expect("write");
    let data = tmp.path().join("data");
    let (code, out) = run_to_end(
        &[
            "--listen",
            "127.0.0.1:0",
            "--items",
            items.to_str().expect("utf-8"),
            "--data-dir",
            data.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 2"), "{out}");
    // nothing half-built was published
    assert!(!data.join("CURRENT").exists());
}

#[test]
fn metrics_exist_from_start_and_sigterm_stops_cleanly() {
    let models = golden_models();
    let sidecar = Sidecar::start(&["--models", models.to_str().expect("utf-8")]);
    let text = sidecar.get_text("/metrics");
    for reason in [
        "timeout",
        "model_unavailable",
        "scoring_error",
        "overloaded",
    ] {
        assert_eq!(
            metric(
                &text,
                &format!(r#"rescore_fallbacks_total{{reason="{reason}"}}"#)
            ),
            Some(0.0),
            "{text}"
        );
    }
    assert_eq!(
        metric(&text, r#"rescore_model_reloads_total{result="success"}"#),
        Some(15.0)
    );
    let (status, _) = sidecar.post(
        "/v1/rescore",
        r#"{"model":"binary","hits":[{"id":"a","score":1}]}"#,
    );
    assert_eq!(status, 200);
    let (status, _) = sidecar.post("/v1/rescore", r#"{"model":"nope","hits":[]}"#);
    assert_eq!(status, 404);
    let text = sidecar.get_text("/metrics");
    assert!(
        text.contains(
            "rescore_request_duration_seconds_bucket{model=\"binary\",variant=\"live\",le=\"0.001\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("rescore_scoring_duration_seconds_bucket{model=\"binary\",engine=\"native\""),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"rescore_native_refusals_total{reason="unsupported"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"rescore_requests_total{model="binary",variant="live",outcome="scored"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"rescore_requests_total{model="",variant="",outcome="rejected"}"#
        ),
        Some(1.0)
    );
    assert!(
        metric(
            &text,
            r#"rescore_feature_missing_total{model="binary",feature="f012"}"#
        ) == Some(1.0),
        "{text}"
    );
    let status = sidecar.terminate();
    assert!(status.success(), "{status:?}");
}

/// Sends headers announcing `length` bytes but only `partial` of the body, then reads the
/// response: what a client sees when the server refuses a body before reading it.
fn post_announced(sidecar: &Sidecar, length: usize, partial: &[u8]) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let addr = sidecar.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "POST /v1/rescore HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    .expect("write headers");
    stream.write_all(partial).expect("write body");
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&response);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().expect("length"))
                        })
                        .expect("content-length");
                    if body.len() >= len {
                        break;
                    }
                }
            }
            Err(e) => panic!("no response to an oversized body: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .expect("status")
        .parse()
        .expect("number");
    (status, serde_json::from_str(body).expect("JSON body"))
}

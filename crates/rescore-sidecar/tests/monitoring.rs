//! Monitoring end to end, against the built binary: reference statistics from a data file,
//! drift of a shifted feature, the feature log reproducing LightGBM's scores, training data
//! joined from the log, and the Grafana dashboard / Prometheus rules naming only metrics the
//! sidecar exposes.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{metric, repo_root, run_to_end, Sidecar, TempDir};
use serde_json::{json, Value};

/// The demo model's features, in model order.
const FEATURES: [&str; 10] = [
    "bm25",
    "query_tokens",
    "cat_match",
    "brand_match",
    "price_ratio",
    "price",
    "condition",
    "seller_rating",
    "age_days",
    "popularity",
];
const PRICE: usize = 5;
const CONDITION: usize = 6;

/// splitmix64: a fixed, dependency-free stream of uniform numbers in [0, 1).
struct Uniform(u64);

impl Uniform {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One row of plausible marketplace features; `condition` is missing in about 10% of rows.
fn row(u: &mut Uniform, price_factor: f64) -> [Option<f64>; 10] {
    let mut r = [
        u.next() * 15.0,
        (1.0 + u.next() * 6.0).floor(),
        f64::from(u8::from(u.next() < 0.3)),
        f64::from(u8::from(u.next() < 0.1)),
        u.next() * 3.0,
        (5.0 + u.next() * u.next() * 500.0) * price_factor,
        (u.next() * 5.0).floor(),
        1.0 + u.next() * 4.0,
        (u.next() * 365.0).floor(),
        (u.next() * u.next() * 3000.0).floor(),
    ]
    .map(Some);
    if u.next() < 0.1 {
        r[CONDITION] = None;
    }
    r
}

/// A models directory with the demo model (no manifest: every feature is read inline by name)
/// and its reference statistics computed by the `reference` subcommand from 20,000 rows.
fn model_with_reference(tmp: &TempDir, manifest: bool, categorical: &[&str]) -> PathBuf {
    let version = tmp.path().join("models/marketplace/1");
    std::fs::create_dir_all(&version).expect("model dir");
    let demo = repo_root().join("models/marketplace/1");
    std::fs::copy(demo.join("model.txt"), version.join("model.txt")).expect("copy model");
    if manifest {
        std::fs::copy(demo.join("manifest.toml"), version.join("manifest.toml"))
            .expect("copy manifest");
    }
    let mut u = Uniform(1);
    let mut data = String::new();
    for _ in 0..20_000 {
        data.push('0');
        for (i, v) in row(&mut u, 1.0).iter().enumerate() {
            match v {
                Some(v) => write!(data, " {i}:{v}").expect("write"),
                None => write!(data, " {i}:nan").expect("write"),
            }
        }
        data.push('\n');
    }
    let train = tmp.path().join("train.txt");
    std::fs::write(&train, data).expect("write data");
    let mut args = vec![
        "reference".to_string(),
        "--model".into(),
        version.to_str().expect("utf-8").into(),
        "--data".into(),
        train.to_str().expect("utf-8").into(),
    ];
    if !categorical.is_empty() {
        args.push("--categorical".into());
        args.push(categorical.join(","));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out) = run_to_end(&args, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("20000 rows, 10 features"), "{out}");
    tmp.path().join("models")
}

fn hits(u: &mut Uniform, n: usize, price_factor: f64, tag: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let features: serde_json::Map<String, Value> = FEATURES
                .iter()
                .zip(row(u, price_factor))
                .filter_map(|(name, v)| v.map(|v| (name.to_string(), json!(v))))
                .collect();
            json!({"id": format!("{tag}-{i}"), "score": 1.0, "features": features})
        })
        .collect()
}

fn wait_for_records(dir: &Path, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut records = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut files: Vec<PathBuf> =
                entries.filter_map(Result::ok).map(|e| e.path()).collect();
            files.sort();
            for f in files {
                let text = std::fs::read_to_string(&f).expect("read log");
                // A line being written may be incomplete: only whole lines count.
                for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
                    records.push(serde_json::from_str::<Value>(line).expect("JSON line"));
                }
            }
        }
        if records.len() >= want || Instant::now() > deadline {
            return records;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn shifted_feature_drifts_and_the_feature_log_reproduces_lightgbm() {
    let tmp = TempDir::new("monitoring");
    let models = model_with_reference(&tmp, false, &[]);
    let log_dir = tmp.path().join("feature-log");
    let config = tmp.path().join("sidecar.toml");
    std::fs::write(
        &config,
        "[monitoring.drift]\nrow_sample_rate = 1.0\nmin_rows = 1000\n\
         [monitoring.feature_log]\nenabled = true\ndir = \"feature-log\"\nsample_rate = 1.0\n",
    )
    .expect("config");
    let sidecar = Sidecar::start(&[
        "--models",
        models.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
    ]);

    // Before any traffic: the series exist, PSI is NaN (not enough rows).
    let text = sidecar.get_text("/metrics");
    let psi_price = r#"rescore_feature_drift_psi{model="marketplace",feature="price"}"#;
    assert!(metric(&text, psi_price)
        .expect("registered at load")
        .is_nan());

    // Traffic like the reference, except that every price is 4x (a unit change upstream).
    let mut u = Uniform(2);
    let mut sent = Vec::new();
    for r in 0..4 {
        let hits = hits(&mut u, 1000, 4.0, &format!("r{r}"));
        let body = json!({"model": "marketplace", "request_id": format!("r{r}"), "hits": hits});
        let (status, resp) = sidecar.post("/v1/rescore", &body.to_string());
        assert_eq!(status, 200, "{resp}");
        assert_eq!(resp["fallback"], Value::Null, "{resp}");
        sent.push((body, resp));
    }

    let (status, drift) = sidecar.get("/v1/drift").expect("GET /v1/drift");
    assert_eq!(status, 200, "{drift}");
    let drift: Value = serde_json::from_str(&drift).expect("JSON");
    let m = &drift["models"][0];
    assert_eq!(m["model"], "marketplace");
    assert_eq!(m["version"], "1");
    assert_eq!(m["reference_rows"], 20000);
    let report = &m["drift"];
    assert_eq!(report["window_rows"], 4000);
    let threshold = drift["feature_psi_threshold"].as_f64().expect("threshold");
    for f in report["features"].as_array().expect("features") {
        let (name, psi) = (
            f["name"].as_str().expect("name"),
            f["psi"].as_f64().expect("psi"),
        );
        if name == "price" {
            assert!(psi > threshold, "price PSI {psi} must cross {threshold}");
            assert!(f["ks"].as_f64().expect("ks") > 0.2, "{f}");
            assert!(f["outlier_ratio"].as_f64().expect("ratio") > 0.1, "{f}");
        } else {
            assert!(psi < 0.05, "{name}: unshifted, PSI {psi}");
            assert!(f["ks"].as_f64().expect("ks") < 0.05, "{f}");
        }
    }
    assert_eq!(report["features_over_threshold"], 1);
    let condition = &report["features"][CONDITION];
    let missing = condition["missing_ratio"].as_f64().expect("missing ratio");
    let reference_missing = condition["reference_missing_ratio"]
        .as_f64()
        .expect("ratio");
    assert!((missing - 0.1).abs() < 0.03 && (reference_missing - 0.1).abs() < 0.01);

    // The gauges carry the same values.
    let text = sidecar.get_text("/metrics");
    let price = metric(&text, psi_price).expect("price PSI gauge");
    assert!((price - report["features"][PRICE]["psi"].as_f64().expect("psi")).abs() < 1e-12);
    assert_eq!(
        metric(
            &text,
            r#"rescore_drift_features_over_threshold{model="marketplace"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, r#"rescore_drift_window_rows{model="marketplace"}"#),
        Some(4000.0)
    );
    assert!(
        metric(&text, r#"rescore_score_drift_psi{model="marketplace"}"#)
            .is_some_and(f64::is_finite)
    );

    // Every request was logged (sample_rate 1) with the exact vectors and scores served.
    let records = wait_for_records(&log_dir, 4);
    assert_eq!(records.len(), 4, "one record per request");
    let model = rescore_model::Model::load(
        &models.join("marketplace/1/model.txt"),
        rescore_model::EnginePreference::LightGbm,
    )
    .expect("lightgbm3 model");
    let mut worst = 0.0f64;
    for (record, (body, resp)) in records.iter().zip(&sent) {
        assert_eq!(record["request_id"], body["request_id"]);
        assert_eq!(record["model"], "marketplace");
        assert_eq!(record["version"], "1");
        assert_eq!(record["variant"], "live");
        assert_eq!(record["feature_names"], json!(FEATURES));
        let logged = record["hits"].as_array().expect("hits");
        assert_eq!(logged.len(), 1000);
        let mut rows = Vec::new();
        for (i, hit) in logged.iter().enumerate() {
            let sent_hit = &body["hits"][i];
            assert_eq!(hit["id"], sent_hit["id"]);
            for (j, name) in FEATURES.iter().enumerate() {
                let v = &hit["features"][j];
                // Exactly the value sent: same f64 bits, null where the hit had none.
                match sent_hit["features"].get(*name) {
                    Some(want) => assert_eq!(
                        v.as_f64().expect("number").to_bits(),
                        want.as_f64().expect("number").to_bits()
                    ),
                    None => assert!(v.is_null(), "{name} of hit {i}"),
                }
                rows.push(v.as_f64().unwrap_or(f64::NAN));
            }
            assert_eq!(
                hit["score"].as_f64().expect("score").to_bits(),
                resp["scores"][i].as_f64().expect("score").to_bits(),
                "the logged score is the one served"
            );
        }
        let want = model.predict(&rows).expect("LightGBM predict");
        for (hit, w) in logged.iter().zip(want) {
            worst = worst.max((hit["score"].as_f64().expect("score") - w).abs());
        }
    }
    assert!(
        worst <= 1e-9,
        "logged vectors reproduce LightGBM within {worst}"
    );

    // Clicks on two of the four requests, joined into LightGBM training data.
    let labels = tmp.path().join("labels.csv");
    std::fs::write(
        &labels,
        "request_id,id,label\nr0,r0-3,1\nr0,r0-10,2\nr2,r2-0,1\nnot-logged,x,1\n",
    )
    .expect("labels");
    let out = tmp.path().join("train.libsvm");
    let (code, summary) = run_to_end(
        &[
            "training-data",
            "--logs",
            log_dir.to_str().expect("utf-8"),
            "--labels",
            labels.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(code, 0, "{summary}");
    let summary: Value = serde_json::from_str(summary.trim()).expect("summary JSON");
    assert_eq!(summary["groups"], 2);
    assert_eq!(summary["rows"], 2000);
    assert_eq!(summary["labelled_rows"], 3);
    assert_eq!(summary["requests_without_labels"], 2);
    let query = std::fs::read_to_string(format!("{}.query", out.display())).expect("query file");
    assert_eq!(query, "1000\n1000\n");
    let first = std::fs::read_to_string(&out).expect("data");
    assert!(first.lines().nth(10).expect("row").starts_with("2 "));
    // LightGBM reads it (nan = missing, .query = groups) and trains LambdaRank on it.
    let dataset =
        lightgbm3::Dataset::from_file(out.to_str().expect("utf-8")).expect("LightGBM reads");
    assert_eq!(dataset.size().expect("size").0, 2000);
    let params = json!({"objective": "lambdarank", "num_iterations": 2, "min_data_in_leaf": 1,
                        "num_threads": 1, "verbose": -1});
    lightgbm3::Booster::train(dataset, &params).expect("LambdaRank trains on the joined data");
}

#[test]
fn feature_log_sample_rate_zero_logs_nothing() {
    let tmp = TempDir::new("monitoring-zero");
    let models = model_with_reference(&tmp, true, &[]);
    let config = tmp.path().join("sidecar.toml");
    std::fs::write(
        &config,
        "[monitoring.feature_log]\nenabled = true\ndir = \"log\"\nsample_rate = 0.0\n",
    )
    .expect("config");
    let sidecar = Sidecar::start(&[
        "--models",
        models.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    let mut u = Uniform(3);
    for r in 0..20 {
        let body = json!({"hits": hits(&mut u, 10, 1.0, &format!("r{r}"))});
        assert_eq!(sidecar.post("/v1/rescore", &body.to_string()).0, 200);
    }
    let text = sidecar.get_text("/metrics");
    assert_eq!(
        metric(&text, "rescore_feature_log_records_total"),
        Some(0.0)
    );
    let files = std::fs::read_dir(tmp.path().join("log"))
        .expect("log dir")
        .count();
    assert_eq!(files, 0);
    // A request_id over 256 bytes is a 400 naming the field.
    let body = json!({"request_id": "x".repeat(257), "hits": []});
    let (status, resp) = sidecar.post("/v1/rescore", &body.to_string());
    assert_eq!(status, 400);
    assert!(resp["error"]["message"]
        .as_str()
        .expect("message")
        .starts_with("request_id"));
}

/// Metric names an expression refers to: every `rescore_*` identifier.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("rescore_") {
        let start = i + pos;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b':')
        {
            end += 1;
        }
        if boundary {
            names.push(expr[start..end].to_string());
        }
        i = end;
    }
    names
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "query", Value::String(s)) if !s.is_empty() => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn dashboard_and_alert_rules_name_only_metrics_the_sidecar_exposes() {
    let tmp = TempDir::new("dashboard");
    // `condition` (0..4) as categorical: its unseen-category series exists only for
    // categorical features.
    let models = model_with_reference(&tmp, true, &["condition"]);
    let config = tmp.path().join("sidecar.toml");
    std::fs::write(
        &config,
        "[monitoring.feature_log]\nenabled = true\ndir = \"log\"\nsample_rate = 1.0\n",
    )
    .expect("config");
    let items = repo_root().join("demo/items.jsonl");
    let sidecar = Sidecar::start(&[
        "--models",
        models.to_str().expect("utf-8"),
        "--items",
        items.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    let body = json!({"query": {"text": "stand mixer", "features": {"intent_category": 12}},
                      "hits": [{"id": "i0", "score": 7.4}, {"id": "i19", "score": 6.9}]});
    assert_eq!(sidecar.post("/v1/rescore", &body.to_string()).0, 200);
    assert_eq!(sidecar.post("/v1/rescore", "{}").0, 400);
    let text = sidecar.get_text("/metrics");
    let exposed: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().expect("name").to_string())
        .collect();

    let dashboard_path = repo_root().join("deploy/grafana/dashboards/rescore-sidecar.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&dashboard_path).expect("dashboard"))
            .expect("dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard["panels"], &mut exprs);
    assert!(exprs.len() >= 8, "dashboard queries: {}", exprs.len());

    let rules_path = repo_root().join("deploy/prometheus/rules/rescore-sidecar.rules.yml");
    let rules: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(&rules_path).expect("rules"))
            .expect("rules are YAML");
    let mut alerts = 0;
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            exprs.push(rule["expr"].as_str().expect("expr").to_string());
            alerts += usize::from(rule.get("alert").is_some());
        }
    }
    assert!(alerts >= 4, "alert rules: {alerts}");

    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(
            !names.is_empty(),
            "expression names no sidecar metric: {expr}"
        );
        for name in names {
            assert!(
                exposed.contains(&name),
                "`{name}` (in `{expr}`) is not exposed by the sidecar; exposed: {exposed:?}"
            );
            used.insert(name);
        }
    }
    for needed in [
        "rescore_request_duration_seconds_bucket",
        "rescore_requests_total",
        "rescore_fallbacks_total",
        "rescore_item_cache_hits_total",
        "rescore_feature_drift_psi",
        "rescore_score_drift_psi",
        "rescore_outlier_ratio",
    ] {
        assert!(
            used.contains(needed),
            "the dashboard or rules should use {needed}"
        );
    }
}

#[test]
fn reference_subcommand_refuses_data_that_does_not_fit_the_model() {
    let tmp = TempDir::new("reference-errors");
    let version = tmp.path().join("m/1");
    std::fs::create_dir_all(&version).expect("dir");
    std::fs::copy(
        repo_root().join("models/marketplace/1/model.txt"),
        version.join("model.txt"),
    )
    .expect("copy");
    let data = tmp.path().join("bad.txt");
    std::fs::write(&data, "1 0:1 10:2\n").expect("write");
    let (code, out) = run_to_end(
        &[
            "reference",
            "--model",
            version.to_str().expect("utf-8"),
            "--data",
            data.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("line 1: feature index 10, but the model has 10 features"),
        "{out}"
    );
    assert!(!version.join("reference.json").exists());
    // A reference.json that does not match the model fails that version's load, naming it.
    std::fs::write(version.join("reference.json"), "{\"format\": 1}").expect("write");
    let sidecar = Sidecar::start(&["--models", tmp.path().to_str().expect("utf-8")]);
    let (_, models) = sidecar.get("/v1/models").expect("models");
    assert!(models.contains("reference.json: missing field"), "{models}");
}

#[test]
fn drift_gauges_follow_the_live_version_after_a_rollback() {
    let tmp = TempDir::new("drift-rollback");
    let models = model_with_reference(&tmp, true, &[]);
    // version 2: the same model and reference
    let v2 = models.join("marketplace/2");
    std::fs::create_dir_all(&v2).expect("v2 dir");
    for entry in std::fs::read_dir(models.join("marketplace/1")).expect("v1") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), v2.join(entry.file_name())).expect("copy to v2");
    }
    let config = tmp.path().join("sidecar.toml");
    std::fs::write(&config, "[monitoring.drift]\nrow_sample_rate = 1.0\n").expect("config");
    let sidecar = Sidecar::start(&[
        "--models",
        models.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    let series = r#"rescore_drift_window_rows{model="marketplace"}"#;
    let window_rows = |s: &Sidecar| {
        s.get_json("/v1/drift"); // recomputes the gauges now
        metric(&s.get_text("/metrics"), series).expect("window rows gauge")
    };
    let send = |s: &Sidecar, requests: usize| {
        for r in 0..requests {
            let hits: Vec<Value> = (0..20)
                .map(|i| json!({"id": format!("i{}", r * 20 + i), "score": 1.0}))
                .collect();
            let body = json!({"model": "marketplace", "hits": hits});
            assert_eq!(s.post("/v1/rescore", &body.to_string()).0, 200);
        }
    };
    send(&sidecar, 5);
    assert_eq!(
        window_rows(&sidecar),
        100.0,
        "version 2 is live and scored 100 rows"
    );

    std::fs::write(
        models.join("routing.toml"),
        "[models.marketplace]\nlive = 1\n",
    )
    .expect("routing");
    sidecar.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while sidecar.get_json("/v1/models")["models"][0]["live_version"] != "1" {
        assert!(Instant::now() < deadline, "the rollback did not apply");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        window_rows(&sidecar),
        0.0,
        "after the rollback the gauges show version 1 (no rows yet), not version 2"
    );
    send(&sidecar, 2);
    assert_eq!(window_rows(&sidecar), 40.0, "version 1's own rows");
}

/// With query groups (a `.query` file or `qid:`), the manifest's query-level features
/// (`query_tokens` in the demo manifest) are counted once per group; without, per row (and
/// the command says so); a reference counting a per-hit feature once per request fails the
/// version's load.
#[test]
fn reference_counts_query_level_features_once_per_group() {
    let tmp = TempDir::new("reference-groups");
    let version = tmp.path().join("models/marketplace/1");
    std::fs::create_dir_all(&version).expect("dir");
    let demo = repo_root().join("models/marketplace/1");
    for file in ["model.txt", "manifest.toml"] {
        std::fs::copy(demo.join(file), version.join(file)).expect("copy");
    }
    let mut u = Uniform(3);
    let mut data = String::new();
    for group in 0..3 {
        for _ in 0..10 {
            data.push_str(&format!("0 qid:{group}"));
            for (i, v) in row(&mut u, 1.0).iter().enumerate() {
                let v = if i == 1 {
                    Some(f64::from(group + 1))
                } else {
                    *v
                };
                data.push_str(&format!(" {i}:{}", v.unwrap_or(f64::NAN)));
            }
            data.push('\n');
        }
    }
    let reference = |data_text: &str, name: &str| {
        let path = tmp.path().join(name);
        std::fs::write(&path, data_text).expect("write");
        let (code, out) = run_to_end(
            &[
                "reference",
                "--model",
                version.to_str().expect("utf-8"),
                "--data",
                path.to_str().expect("utf-8"),
            ],
            &[],
        );
        assert_eq!(code, 0, "{out}");
        let text = std::fs::read_to_string(version.join("reference.json")).expect("written");
        (out, serde_json::from_str::<Value>(&text).expect("json"))
    };
    let (out, grouped) = reference(&data, "grouped.txt");
    assert!(out.contains("1 counted once per query group"), "{out}");
    assert_eq!(grouped["features"][1]["name"], "query_tokens");
    assert_eq!(grouped["features"][1]["per_request"], true);
    assert_eq!(grouped["features"][1]["count"], 3);
    assert_eq!(grouped["features"][0]["count"], 30);
    assert_eq!(grouped["features"][0].get("per_request"), None);
    // The same rows without qid: counted per row, and said so.
    let ungrouped_data: String = data
        .lines()
        .map(|l| {
            let mut parts: Vec<&str> = l.split(' ').collect();
            parts.remove(1);
            parts.join(" ") + "\n"
        })
        .collect();
    let (out, ungrouped) = reference(&ungrouped_data, "ungrouped.txt");
    assert!(out.contains("are counted per row"), "{out}");
    assert_eq!(ungrouped["features"][1]["count"], 30);
    assert_eq!(ungrouped["features"][1].get("per_request"), None);
    // bm25 (source hit_score) marked per request: the version does not load.
    let mut wrong = grouped.clone();
    wrong["features"][0]["per_request"] = Value::Bool(true);
    std::fs::write(version.join("reference.json"), wrong.to_string()).expect("write");
    let sidecar = Sidecar::start(&[
        "--models",
        tmp.path().join("models").to_str().expect("utf-8"),
    ]);
    let (_, models) = sidecar.get("/v1/models").expect("models");
    assert!(
        models.contains("feature `bm25` is counted once per request"),
        "{models}"
    );
}

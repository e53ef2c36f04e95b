//! The item stores end to end: a real `redis-server` started by the test on a free port, the
//! real binary over HTTP, and the `items` subcommands.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{items_cmd, metric, repo_root, run_to_end, Sidecar, TempDir};
use serde_json::{json, Value};

fn models() -> String {
    repo_root()
        .join("models")
        .to_str()
        .expect("utf-8")
        .to_string()
}

/// The first `n` demo items as (id, features).
fn demo_items(n: usize) -> Vec<(String, serde_json::Map<String, Value>)> {
    let text = std::fs::read_to_string(repo_root().join("demo/items.jsonl")).expect("demo items");
    text.lines()
        .take(n)
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            (
                v["id"].as_str().expect("id").to_string(),
                v["features"].as_object().expect("features").clone(),
            )
        })
        .collect()
}

fn put_lines(items: &[(String, serde_json::Map<String, Value>)], version: u64) -> String {
    items
        .iter()
        .map(|(id, f)| json!({"id": id, "version": version, "features": f}).to_string() + "\n")
        .collect()
}

fn query() -> Value {
    json!({"text": "stand mixer", "features": {"intent_category": 12, "user_budget": 40, "user_brand": 41}})
}

fn rescore(sidecar: &Sidecar, hits: Value, timeout_ms: u64) -> (Vec<f64>, Value) {
    let body =
        json!({"model": "marketplace", "query": query(), "hits": hits, "timeout_ms": timeout_ms});
    let (status, resp) = sidecar.post("/v1/rescore", &body.to_string());
    assert_eq!(status, 200, "{resp}");
    let scores = resp["scores"]
        .as_array()
        .expect("scores")
        .iter()
        .map(|s| s.as_f64().expect("number"))
        .collect();
    (scores, resp)
}

/// The model's scores for `hits`, retried for up to 10 s while the store fails (their ids are
/// looked up even when every feature is inline).
fn scored(sidecar: &Sidecar, hits: Value) -> Vec<f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (scores, resp) = rescore(sidecar, hits.clone(), 1000);
        if resp["fallback"].is_null() {
            return scores;
        }
        assert!(Instant::now() < deadline, "not scored: {resp}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The hits' own scores: what a fallback returns.
fn hit_scores(hits: &Value) -> Vec<f64> {
    hits.as_array()
        .expect("hits")
        .iter()
        .map(|h| h["score"].as_f64().expect("score"))
        .collect()
}

fn id_hits(items: &[(String, serde_json::Map<String, Value>)], prefix: &str) -> Value {
    Value::Array(
        items
            .iter()
            .enumerate()
            .map(|(i, (id, _))| json!({"id": format!("{prefix}{id}"), "score": 10.0 - i as f64 * 0.1}))
            .collect(),
    )
}

/// Hits that carry every item feature inline: what the item store should reproduce exactly.
fn inline_hits(items: &[(String, serde_json::Map<String, Value>)]) -> Value {
    Value::Array(
        items
            .iter()
            .enumerate()
            .map(|(i, (_, f))| json!({"id": "inline", "score": 10.0 - i as f64 * 0.1, "features": f}))
            .collect(),
    )
}

#[test]
fn redis_outage_degrades_within_the_budget_and_recovers_with_fresh_values() {
    let mut redis = Redis::start();
    let tmp = TempDir::new("redis");
    let items = demo_items(40);
    let updates = tmp.path().join("v1.jsonl");
    std::fs::write(&updates, put_lines(&items, 1)).expect("write");
    let summary = items_cmd(&[
        "items",
        "put",
        updates.to_str().expect("utf-8"),
        "--target",
        "redis",
        "--redis-url",
        &redis.url(),
    ]);
    assert_eq!(summary["redis"]["applied"], 40, "{summary}");

    let config = tmp.path().join("sidecar.toml");
    std::fs::write(
        &config,
        "[item_store]\nbackend = \"redis\"\n[item_store.redis]\ntimeout_ms = 100\n[item_store.cache]\nttl_secs = 1\nunknown_ttl_secs = 1\n",
    )
    .expect("config");
    let sidecar = Sidecar::start(&[
        "--models",
        &models(),
        "--config",
        config.to_str().expect("utf-8"),
        "--redis-url",
        &redis.url(),
    ]);
    let (fresh, _) = rescore(&sidecar, id_hits(&items, ""), 1000);
    let (inline, _) = rescore(&sidecar, inline_hits(&items), 1000);
    assert_eq!(fresh, inline, "Redis features are served exactly");
    // Unknown ids are unknown items, not a store failure: scored on defaults.
    let (all_missing, resp) = rescore(&sidecar, id_hits(&items, "unknown-"), 1000);
    assert_eq!(resp["fallback"], Value::Null, "{resp}");
    assert_ne!(fresh, all_missing);

    // Redis down: the cache expires, the fetch fails or times out, and the request gets the
    // baseline (`feature_store`) within its budget instead of a ranking on defaults.
    redis.stop();
    std::thread::sleep(Duration::from_millis(1300));
    let before = sidecar.get_text("/metrics");
    let budget_ms = 300;
    let baseline = hit_scores(&id_hits(&items, ""));
    for _ in 0..3 {
        let (degraded, resp) = rescore(&sidecar, id_hits(&items, ""), budget_ms);
        assert_eq!(resp["fallback"], "feature_store", "{resp}");
        assert!(
            resp["took_us"].as_u64().expect("took_us") < budget_ms * 1000,
            "{resp}"
        );
        assert_eq!(degraded, baseline);
    }
    let after = sidecar.get_text("/metrics");
    let store_fallbacks =
        |text: &str| metric(text, "rescore_fallbacks_total{reason=\"feature_store\"}");
    assert_eq!(
        store_fallbacks(&after).expect("counted") - store_fallbacks(&before).expect("at 0"),
        3.0,
        "{after}"
    );
    let counted = |text: &str| {
        metric(text, "rescore_item_store_fallbacks_total{reason=\"error\"}").unwrap_or(0.0)
            + metric(
                text,
                "rescore_item_store_fallbacks_total{reason=\"timeout\"}",
            )
            .unwrap_or(0.0)
    };
    assert_eq!(counted(&after) - counted(&before), 120.0, "{after}");

    // Back up (empty, no persistence), refilled with newer values: they are served.
    redis.restart();
    let changed: Vec<_> = items
        .iter()
        .map(|(id, f)| {
            let mut f = f.clone();
            f.insert(
                "price".into(),
                json!(f["price"].as_f64().expect("price") * 0.5),
            );
            (id.clone(), f)
        })
        .collect();
    let updates = tmp.path().join("v2.jsonl");
    std::fs::write(&updates, put_lines(&changed, 2)).expect("write");
    items_cmd(&[
        "items",
        "put",
        updates.to_str().expect("utf-8"),
        "--target",
        "redis",
        "--redis-url",
        &redis.url(),
    ]);
    // Inline hits still look their id up: retried until the reconnected store answers.
    let expected = scored(&sidecar, inline_hits(&changed));
    assert_ne!(expected, fresh);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (now, _) = rescore(&sidecar, id_hits(&items, ""), 1000);
        if now == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fresh values not served after Redis came back: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = sidecar.get_text("/metrics");
    assert!(
        metric(
            &text,
            "rescore_item_store_requests_total{store=\"redis\",result=\"ok\"}"
        )
        .unwrap_or(0.0)
            >= 2.0
    );
}

/// Redis hung (SIGSTOP): each fetch times out. A few failed ids among cached ones are scored
/// with their features missing; a window the store cannot answer gets the baseline; after
/// SIGCONT the same ids are served again (failures were not cached as unknown items).
#[test]
fn redis_paused_fails_over_to_the_baseline_beyond_the_configured_share() {
    let redis = Redis::start();
    let tmp = TempDir::new("redis-paused");
    let items = demo_items(60);
    let updates = tmp.path().join("v1.jsonl");
    std::fs::write(&updates, put_lines(&items, 1)).expect("write");
    items_cmd(&[
        "items",
        "put",
        updates.to_str().expect("utf-8"),
        "--target",
        "redis",
        "--redis-url",
        &redis.url(),
    ]);
    let config = tmp.path().join("sidecar.toml");
    std::fs::write(
        &config,
        "[item_store]\nbackend = \"redis\"\n[item_store.redis]\ntimeout_ms = 50\n[item_store.cache]\nttl_secs = 600\n",
    )
    .expect("config");
    let sidecar = Sidecar::start(&[
        "--models",
        &models(),
        "--config",
        config.to_str().expect("utf-8"),
        "--redis-url",
        &redis.url(),
    ]);
    let (warm, cold) = items.split_at(40);
    let (expected_warm, _) = rescore(&sidecar, inline_hits(warm), 1000);
    let (fresh, resp) = rescore(&sidecar, id_hits(warm, ""), 1000);
    assert_eq!(resp["fallback"], Value::Null, "{resp}");
    assert_eq!(fresh, expected_warm);

    redis.signal("STOP");
    let before = sidecar.get_text("/metrics");
    // 40 cached + 2 unread ids: 2/42 is within the default share (0.1): scored.
    let mut mixed = warm.to_vec();
    mixed.extend_from_slice(&cold[..2]);
    let (_, resp) = rescore(&sidecar, id_hits(&mixed, ""), 300);
    assert_eq!(resp["fallback"], Value::Null, "{resp}");
    // 20 ids the store cannot answer: the baseline, within the budget.
    let budget_ms = 300;
    let hits = id_hits(cold, "");
    let (scores, resp) = rescore(&sidecar, hits.clone(), budget_ms);
    assert_eq!(resp["fallback"], "feature_store", "{resp}");
    assert_eq!(scores, hit_scores(&hits));
    assert!(
        resp["took_us"].as_u64().expect("took_us") < budget_ms * 1000,
        "{resp}"
    );
    let after = sidecar.get_text("/metrics");
    let delta = |series: &str| {
        metric(&after, series).unwrap_or(0.0) - metric(&before, series).unwrap_or(0.0)
    };
    assert_eq!(
        delta("rescore_fallbacks_total{reason=\"feature_store\"}"),
        1.0
    );
    assert_eq!(
        delta("rescore_item_store_fallbacks_total{reason=\"timeout\"}"),
        22.0,
        "{after}"
    );

    redis.signal("CONT");
    let expected_cold = scored(&sidecar, inline_hits(cold));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (now, resp) = rescore(&sidecar, id_hits(cold, ""), 1000);
        if resp["fallback"].is_null() {
            assert_eq!(
                now, expected_cold,
                "served from Redis, not as unknown items"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not scored after SIGCONT: {resp}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn redis_updates_never_go_back_in_version_and_deletes_stick() {
    let redis = Redis::start();
    let tmp = TempDir::new("redis-etl");
    let put = |name: &str, text: &str| -> Value {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).expect("write");
        items_cmd(&[
            "items",
            "put",
            path.to_str().expect("utf-8"),
            "--target",
            "redis",
            "--redis-url",
            &redis.url(),
        ])
    };
    let delete = |name: &str, text: &str| -> Value {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).expect("write");
        items_cmd(&[
            "items",
            "delete",
            path.to_str().expect("utf-8"),
            "--target",
            "redis",
            "--redis-url",
            &redis.url(),
        ])
    };
    let get = |id: &str| {
        redis
            .command(&["GET", &format!("rescore:item:{id}")])
            .expect("GET")
    };

    let s = put("1.jsonl", "{\"id\":\"a\",\"version\":5,\"features\":{\"p\":1.5}}\n{\"id\":\"a\",\"version\":3,\"features\":{\"p\":99}}\n");
    assert_eq!(
        (s["redis"]["applied"].as_u64(), s["redis"]["stale"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    assert_eq!(get("a"), "5 {\"p\":1.5}");
    // same version again: not newer, skipped
    put(
        "2.jsonl",
        "{\"id\":\"a\",\"version\":5,\"features\":{\"p\":2}}\n",
    );
    assert_eq!(get("a"), "5 {\"p\":1.5}");
    // a delete leaves a tombstone with its version; an older put does not revive the item
    let s = delete("3.jsonl", "{\"id\":\"a\",\"version\":7}\n");
    assert_eq!(s["redis"]["applied"], 1);
    assert_eq!(get("a"), "7 null");
    let ttl: i64 = redis
        .command(&["TTL", "rescore:item:a"])
        .expect("TTL")
        .trim_start_matches(':')
        .parse()
        .expect("ttl");
    assert!(ttl > 0, "tombstones expire");
    put(
        "4.jsonl",
        "{\"id\":\"a\",\"version\":6,\"features\":{\"p\":3}}\n",
    );
    assert_eq!(get("a"), "7 null");
    put(
        "5.jsonl",
        "{\"id\":\"a\",\"version\":8,\"features\":{\"p\":4}}\n",
    );
    assert_eq!(get("a"), "8 {\"p\":4.0}");
    assert_eq!(
        redis.command(&["TTL", "rescore:item:a"]).expect("TTL"),
        ":-1"
    );

    // a bad line stops the run with its line number and a non-zero exit
    let path = tmp.path().join("bad.jsonl");
    std::fs::write(&path, "{\"id\":\"b\",\"version\":1}\n{\"id\":\"c\"}\n").expect("write");
    let (code, out) = run_to_end(
        &[
            "items",
            "put",
            path.to_str().expect("utf-8"),
            "--target",
            "redis",
            "--redis-url",
            &redis.url(),
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 2"), "{out}");
    // Redis unreachable: exit 1, not a hang
    let (code, out) = run_to_end(
        &[
            "items",
            "put",
            path.to_str().expect("utf-8"),
            "--target",
            "redis",
            "--redis-url",
            "redis://127.0.0.1:1/0",
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}");
}

#[test]
fn embedded_updates_are_swapped_in_while_serving() {
    let tmp = TempDir::new("swap");
    let items = demo_items(20);
    let snapshot = tmp.path().join("items.jsonl");
    std::fs::write(&snapshot, put_lines(&items, 1)).expect("write");
    let data = tmp.path().join("data");
    let config = tmp.path().join("sidecar.toml");
    std::fs::write(&config, "[item_store.embedded]\nreload_interval_ms = 100\n").expect("config");
    let args = [
        "--models",
        &models(),
        "--items",
        snapshot.to_str().expect("utf-8"),
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
    ];
    let sidecar = Sidecar::start(&args);
    let (fresh, _) = rescore(&sidecar, id_hits(&items, ""), 1000);
    assert_eq!(fresh, rescore(&sidecar, inline_hits(&items), 1000).0);

    // i0 gets a newer price, i1 is deleted, i2's update is stale
    let mut changed = items.clone();
    changed[0].1.insert("price".into(), json!(1.25));
    let updates = tmp.path().join("updates.jsonl");
    std::fs::write(
        &updates,
        format!(
            "{}\n{}\n{}\n",
            json!({"id": "i0", "version": 2, "features": changed[0].1}),
            json!({"op": "delete", "id": "i1", "version": 2}),
            json!({"id": "i2", "version": 1, "features": {"price": 1}}),
        ),
    )
    .expect("write");
    let s = items_cmd(&[
        "items",
        "put",
        updates.to_str().expect("utf-8"),
        "--data-dir",
        data.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        (
            s["embedded"]["applied"].as_u64(),
            s["embedded"]["stale"].as_u64(),
            s["embedded"]["items"].as_u64()
        ),
        (Some(2), Some(1), Some(19)),
        "{s}"
    );

    let mut expected_hits = inline_hits(&changed);
    expected_hits[1]["features"] = json!({}); // deleted: no item features
    let (expected, _) = rescore(&sidecar, expected_hits, 1000);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (now, _) = rescore(&sidecar, id_hits(&items, ""), 1000);
        if now == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new generation not served: {now:?} vs {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = sidecar.get_text("/metrics");
    assert_eq!(metric(&text, "rescore_item_store_generation"), Some(2.0));
    assert_eq!(metric(&text, "rescore_item_store_items"), Some(19.0));
    assert_eq!(
        metric(&text, "rescore_item_store_swaps_total{result=\"success\"}"),
        Some(1.0)
    );
    drop(sidecar);

    // A restart with the same (unchanged) snapshot reuses the live generation, updates
    // included; a changed snapshot file is built anew.
    let sidecar = Sidecar::start(&args);
    let (now, _) = rescore(&sidecar, id_hits(&items, ""), 1000);
    assert_eq!(
        now, expected,
        "unchanged snapshot: the updated generation is reused"
    );
    drop(sidecar);
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&snapshot, put_lines(&items, 1) + "\n").expect("rewrite");
    let sidecar = Sidecar::start(&args);
    let (now, _) = rescore(&sidecar, id_hits(&items, ""), 1000);
    assert_eq!(now, fresh, "changed snapshot: rebuilt from it");
}

/// Writes the items as a Parquet snapshot: `id` string, integer and double features, with
/// `condition` null for the items whose index is in `no_condition`.
fn write_parquet_items(
    path: &std::path::Path,
    items: &[(String, serde_json::Map<String, Value>)],
    no_condition: &[usize],
) {
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
    let schema = std::sync::Arc::new(
        parquet::schema::parser::parse_message_type(
            "message items {
                REQUIRED BYTE_ARRAY id (STRING);
                REQUIRED INT32 category;
                REQUIRED INT64 brand;
                REQUIRED DOUBLE price;
                OPTIONAL INT32 condition (INTEGER(8,false));
                REQUIRED DOUBLE seller_rating;
                REQUIRED INT64 age_days;
                REQUIRED INT32 popularity;
            }",
        )
        .expect("schema"),
    );
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let file = std::fs::File::create(path).expect("create");
    let mut writer =
        parquet::file::writer::SerializedFileWriter::new(file, schema, std::sync::Arc::new(props))
            .expect("writer");
    let num = |name: &str| -> Vec<f64> {
        items
            .iter()
            .map(|(_, f)| f[name].as_f64().expect("number"))
            .collect()
    };
    let mut group = writer.next_row_group().expect("row group");
    let mut column = |write: &mut dyn FnMut(&mut parquet::file::writer::SerializedColumnWriter)| {
        let mut c = group.next_column().expect("next").expect("column");
        write(&mut c);
        c.close().expect("close");
    };
    let ids: Vec<ByteArray> = items
        .iter()
        .map(|(id, _)| ByteArray::from(id.as_str()))
        .collect();
    column(&mut |c| {
        c.typed::<ByteArrayType>()
            .write_batch(&ids, None, None)
            .expect("id");
    });
    let ints = |name: &str| -> Vec<i64> { num(name).iter().map(|v| *v as i64).collect() };
    column(&mut |c| {
        let v: Vec<i32> = ints("category").iter().map(|v| *v as i32).collect();
        c.typed::<Int32Type>()
            .write_batch(&v, None, None)
            .expect("category");
    });
    column(&mut |c| {
        c.typed::<Int64Type>()
            .write_batch(&ints("brand"), None, None)
            .expect("brand");
    });
    column(&mut |c| {
        c.typed::<DoubleType>()
            .write_batch(&num("price"), None, None)
            .expect("price");
    });
    column(&mut |c| {
        let all = ints("condition");
        let defs: Vec<i16> = (0..all.len())
            .map(|i| i16::from(!no_condition.contains(&i)))
            .collect();
        let v: Vec<i32> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| !no_condition.contains(i))
            .map(|(_, v)| *v as i32)
            .collect();
        c.typed::<Int32Type>()
            .write_batch(&v, Some(&defs), None)
            .expect("condition");
    });
    column(&mut |c| {
        c.typed::<DoubleType>()
            .write_batch(&num("seller_rating"), None, None)
            .expect("rating");
    });
    column(&mut |c| {
        c.typed::<Int64Type>()
            .write_batch(&ints("age_days"), None, None)
            .expect("age");
    });
    column(&mut |c| {
        let v: Vec<i32> = ints("popularity").iter().map(|v| *v as i32).collect();
        c.typed::<Int32Type>()
            .write_batch(&v, None, None)
            .expect("popularity");
    });
    group.close().expect("close group");
    writer.close().expect("close");
}

#[test]
fn parquet_snapshot_serves_the_same_features_as_inline() {
    let tmp = TempDir::new("parquet");
    let mut items = demo_items(30);
    let snapshot = tmp.path().join("items.parquet");
    write_parquet_items(&snapshot, &items, &[3, 7]);
    // null in Parquet = absent, as a missing key in JSON Lines
    items[3].1.remove("condition");
    items[7].1.remove("condition");
    let data = tmp.path().join("data");
    let args = [
        "--models",
        &models(),
        "--items",
        snapshot.to_str().expect("utf-8"),
        "--data-dir",
        data.to_str().expect("utf-8"),
    ];
    let sidecar = Sidecar::start(&args);
    let (from_store, resp) = rescore(&sidecar, id_hits(&items, ""), 1000);
    let (inline, _) = rescore(&sidecar, inline_hits(&items), 1000);
    assert_eq!(from_store, inline, "{resp}");
    // the store was really used: unknown ids score differently
    let (unknown, _) = rescore(&sidecar, id_hits(&items, "nope-"), 1000);
    assert_ne!(unknown, inline);
    let text = sidecar.get_text("/metrics");
    assert_eq!(metric(&text, "rescore_item_store_items"), Some(30.0));
    drop(sidecar);

    // `items import` takes the same file (a new generation), and a bad one fails naming the column
    let s = items_cmd(&[
        "items",
        "import",
        snapshot.to_str().expect("utf-8"),
        "--data-dir",
        data.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        (s["items"].as_u64(), s["generation"].as_u64()),
        (Some(30), Some(2)),
        "{s}"
    );
    let bad = tmp.path().join("bad.parquet");
    std::fs::write(&bad, b"PAR1 not really").expect("write");
    let (code, out) = run_to_end(
        &[
            "items",
            "import",
            bad.to_str().expect("utf-8"),
            "--data-dir",
            data.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("parquet item snapshot"), "{out}");
}

/// Issue 16: a second server on the same data directory with another `--items` neither
/// changes what the first serves nor starts; a generation built from another catalogue is not
/// swapped to (logged, counted); `items import` still refreshes every server on the directory.
#[test]
fn a_data_directory_serves_one_catalogue() {
    let tmp = TempDir::new("catalogue");
    let items_a = demo_items(20);
    // The same ids with another item's features: a swap would change every score.
    let items_b: Vec<_> = demo_items(40)[20..]
        .iter()
        .zip(&items_a)
        .map(|((_, f), (id, _))| (id.clone(), f.clone()))
        .collect();
    let snapshot_a = tmp.path().join("a.jsonl");
    let snapshot_b = tmp.path().join("b.jsonl");
    std::fs::write(&snapshot_a, put_lines(&items_a, 1)).expect("write a");
    std::fs::write(&snapshot_b, put_lines(&items_b, 1)).expect("write b");
    let data = tmp.path().join("data");
    let config = tmp.path().join("sidecar.toml");
    std::fs::write(&config, "[item_store.embedded]\nreload_interval_ms = 100\n").expect("config");
    let args = |snapshot: &std::path::Path| {
        vec![
            "--models".to_string(),
            models(),
            "--items".into(),
            snapshot.to_str().expect("utf-8").into(),
            "--data-dir".into(),
            data.to_str().expect("utf-8").into(),
            "--config".into(),
            config.to_str().expect("utf-8").into(),
        ]
    };
    let args_a = args(&snapshot_a);
    let a = Sidecar::start(&args_a.iter().map(String::as_str).collect::<Vec<_>>());
    let (expected_a, _) = rescore(&a, inline_hits(&items_a), 1000);
    assert_eq!(rescore(&a, id_hits(&items_a, ""), 1000).0, expected_a);

    // B: same directory, another snapshot: refuses to start, naming the directory and what
    // it serves.
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rescore-sidecar"));
    for var in common::SIDECAR_ENV {
        command.env_remove(var);
    }
    let mut b = command
        .args(args(&snapshot_b))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start b");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = b.try_wait().expect("wait b") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = b.kill();
            panic!("the second sidecar started on the first one's data directory");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    b.stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read b's stderr");
    assert!(!status.success(), "{stderr}");
    let canonical_a = std::fs::canonicalize(&snapshot_a).expect("canonical");
    assert!(
        stderr.contains(data.to_str().expect("utf-8"))
            && stderr.contains(canonical_a.to_str().expect("utf-8"))
            && stderr.contains("items import"),
        "{stderr}"
    );
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(rescore(&a, id_hits(&items_a, ""), 1000).0, expected_a);

    // A generation that another server built from its own --items (here through the library,
    // as a server that raced past the check would): A does not swap to it.
    let dir = rescore_features::DataDir::open(&data).expect("data dir");
    let (foreign, built) = dir.ensure_snapshot(&snapshot_b, 0).expect("build b");
    assert!(built.is_some());
    assert_eq!(foreign.number(), 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(
        &a.get_text("/metrics"),
        "rescore_item_store_swaps_total{result=\"foreign\"}",
    ) != Some(1.0)
    {
        assert!(Instant::now() < deadline, "foreign generation not counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let text = a.get_text("/metrics");
    assert_eq!(metric(&text, "rescore_item_store_generation"), Some(1.0));
    assert_eq!(
        metric(&text, "rescore_item_store_swaps_total{result=\"foreign\"}"),
        Some(1.0),
        "counted once"
    );
    assert_eq!(rescore(&a, id_hits(&items_a, ""), 1000).0, expected_a);

    // The documented refresh path: `items import` replaces the catalogue for every server.
    let s = items_cmd(&[
        "items",
        "import",
        snapshot_b.to_str().expect("utf-8"),
        "--data-dir",
        data.to_str().expect("utf-8"),
    ]);
    assert_eq!(s["generation"].as_u64(), Some(3), "{s}");
    let (expected_b, _) = rescore(&a, inline_hits(&items_b), 1000);
    assert_ne!(expected_a, expected_b);
    let deadline = Instant::now() + Duration::from_secs(10);
    while rescore(&a, id_hits(&items_a, ""), 1000).0 != expected_b {
        assert!(Instant::now() < deadline, "import not swapped in");
        std::thread::sleep(Duration::from_millis(50));
    }
}

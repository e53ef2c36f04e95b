//! The layered item store end to end: a real `redis-server` in front of the embedded
//! snapshot, the real binary over HTTP, requests running all the time while Redis is killed,
//! paused (SIGSTOP) and slowed (CLIENT PAUSE). Every score is LightGBM's own prediction for
//! the features of the layer that should have answered; no request fails or falls back.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::redis::{Redis, RedisCluster};
use common::{
    golden_cases, golden_models, items_cmd, metric, run_to_end, GoldenCase, Sidecar, StopOnDrop,
    TempDir,
};
use serde_json::{json, Value};

const ITEMS: usize = 200;
/// Redis deletes this item (a tombstone newer than the snapshot).
const DELETED: usize = 1;

fn features(case: &GoldenCase, row: usize) -> serde_json::Map<String, Value> {
    case.features
        .iter()
        .zip(&case.rows[row % case.rows.len()])
        .filter_map(|(name, v)| v.map(|v| (name.clone(), json!(v))))
        .collect()
}

/// The snapshot gives item i golden row i; Redis gives the even items row i + 1.
fn snapshot_row(i: usize) -> usize {
    i
}
fn fresh_row(i: usize) -> Option<usize> {
    i.is_multiple_of(2).then_some(i + 1)
}

/// Fresh values into Redis: items 0, 4, 8, ... as text, 2, 6, 10, ... as binary, and the
/// tombstone of [`DELETED`].
fn fill_redis(url: &str, cluster: bool, case: &GoldenCase, tmp: &TempDir, version: u64) {
    for (format, residue) in [("text", 0), ("binary", 2)] {
        let lines: String = (0..ITEMS)
            .filter(|i| i % 4 == residue)
            .map(|i| {
                let row = fresh_row(i).expect("even");
                json!({"id": format!("item-{i}"), "version": version, "features": features(case, row)})
                    .to_string()
                    + "\n"
            })
            .collect();
        let path = tmp.path().join(format!("fresh-{format}.jsonl"));
        std::fs::write(&path, lines).expect("write");
        let config = tmp.path().join(format!("{format}.toml"));
        std::fs::write(
            &config,
            format!("[item_store.redis]\nwrite_format = \"{format}\"\ncluster = {cluster}\n"),
        )
        .expect("config");
        let s = items_cmd(&[
            "items",
            "put",
            path.to_str().expect("utf-8"),
            "--target",
            "redis",
            "--redis-url",
            url,
            "--config",
            config.to_str().expect("utf-8"),
        ]);
        assert_eq!(s["redis"]["applied"], ITEMS / 4, "{s}");
    }
    let path = tmp.path().join("delete.jsonl");
    std::fs::write(
        &path,
        format!(
            "{}\n",
            json!({"id": format!("item-{DELETED}"), "version": version})
        ),
    )
    .expect("write");
    let config = tmp.path().join("text.toml");
    items_cmd(&[
        "items",
        "delete",
        path.to_str().expect("utf-8"),
        "--target",
        "redis",
        "--redis-url",
        url,
        "--config",
        config.to_str().expect("utf-8"),
    ]);
}

fn request_body() -> String {
    let hits: Vec<Value> = (0..ITEMS)
        .map(|i| json!({"id": format!("item-{i}"), "score": (ITEMS - i) as f64}))
        .collect();
    json!({"model": "lambdarank", "hits": hits, "timeout_ms": 5000}).to_string()
}

/// Scores of one request to the sidecar at `base`; panics on anything but a scored 200.
fn scores_at(base: &str, body: &str) -> Vec<f64> {
    let resp = ureq::post(&format!("{base}/v1/rescore"))
        .set("content-type", "application/json")
        .timeout(Duration::from_secs(60))
        .send_string(body)
        .expect("a 200 answer");
    let resp: Value = resp.into_json().expect("JSON");
    assert_eq!(resp["fallback"], Value::Null, "{resp}");
    resp["scores"]
        .as_array()
        .expect("scores")
        .iter()
        .map(|s| s.as_f64().expect("number"))
        .collect()
}

fn matches(got: &[f64], want: &[f64]) -> bool {
    got.len() == want.len() && got.iter().zip(want).all(|(g, w)| (g - w).abs() <= 1e-9)
}

/// Requests until the scores are `want` (the cache's short entries expire, Redis reconnects).
fn wait_for(sidecar: &Sidecar, body: &str, want: &[f64], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = scores_at(&sidecar.base, body);
        if matches(&got, want) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {got:?} vs {want:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn counter(sidecar: &Sidecar, series: &str) -> f64 {
    metric(&sidecar.get_text("/metrics"), series).unwrap_or(0.0)
}

fn degraded(sidecar: &Sidecar, reason: &str) -> f64 {
    counter(
        sidecar,
        &format!("rescore_item_store_layer_degraded_total{{reason=\"{reason}\"}}"),
    )
}

#[test]
fn redis_answers_fresh_items_and_the_snapshot_the_rest_through_kill_pause_and_slowness() {
    let case = golden_cases()
        .into_iter()
        .find(|c| c.model == "lambdarank")
        .expect("lambdarank case");
    let expected = |row: usize| case.expected[row % case.rows.len()];
    let tmp = TempDir::new("layered");
    let mut redis = Redis::start();
    fill_redis(&redis.url(), false, &case, &tmp, 2);

    let snapshot: String = (0..ITEMS)
        .map(|i| {
            json!({"id": format!("item-{i}"), "version": 1, "features": features(&case, snapshot_row(i))})
                .to_string()
                + "\n"
        })
        .collect();
    let snapshot_path = tmp.path().join("items.jsonl");
    std::fs::write(&snapshot_path, snapshot).expect("write");
    // One Redis connection: after the restart below it is re-made once and is fresh when
    // Redis is paused, so the pause shows as a timeout (a pooled connection left stale by
    // the restart would instead fail re-connecting to the paused Redis: an error).
    let config = tmp.path().join("sidecar.toml");
    std::fs::write(
        &config,
        "[item_store]\nbackend = \"layered\"\n\
         [item_store.layered]\nredis_budget_ms = 250\nretry_after_ms = 1500\n\
         [item_store.cache]\nttl_secs = 1\nunknown_ttl_secs = 1\n\
         [item_store.redis]\npool_size = 1\n",
    )
    .expect("config");
    let models = golden_models();
    let sidecar = Sidecar::start(&[
        "--models",
        models.to_str().expect("utf-8"),
        "--items",
        snapshot_path.to_str().expect("utf-8"),
        "--data-dir",
        tmp.path().join("data").to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
        "--redis-url",
        &redis.url(),
    ]);
    let body = request_body();

    // The deleted item scores as an item without features: the model's answer for no values.
    let (status, resp) = sidecar.post(
        "/v1/rescore",
        &json!({"model": "lambdarank", "hits": [{"id": "nothing-known", "score": 0}]}).to_string(),
    );
    assert_eq!(status, 200, "{resp}");
    let no_features = resp["scores"][0].as_f64().expect("score");
    let healthy: Vec<f64> = (0..ITEMS)
        .map(|i| match (i, fresh_row(i)) {
            (DELETED, _) => no_features,
            (_, Some(row)) => expected(row),
            (_, None) => expected(snapshot_row(i)),
        })
        .collect();
    let snapshot_only: Vec<f64> = (0..ITEMS).map(|i| expected(snapshot_row(i))).collect();
    assert!(!matches(&healthy, &snapshot_only), "the layers must differ");

    // Healthy: Redis wins where it has the key, the snapshot answers the rest.
    let got = scores_at(&sidecar.base, &body);
    assert!(matches(&got, &healthy), "{got:?} vs {healthy:?}");
    let reads = |layer: &str| {
        counter(
            &sidecar,
            &format!("rescore_item_store_layer_reads_total{{layer=\"{layer}\"}}"),
        )
    };
    // Redis: the even items and the tombstone; the snapshot: the other odd items, and the
    // unknown id of the request above (Redis lacks it, so the snapshot was asked).
    assert_eq!(reads("redis"), (ITEMS / 2 + 1) as f64);
    assert_eq!(reads("snapshot"), (ITEMS / 2) as f64);

    // From here on, requests run all the time; each hit must carry one of its two exact
    // scores (a request may meet a layer change half-way), and none may fail.
    let stop = AtomicBool::new(false);
    let requests = AtomicU64::new(0);
    let base = sidecar.base.clone();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let got = scores_at(&base, &body);
                for (i, g) in got.iter().enumerate() {
                    assert!(
                        (g - healthy[i]).abs() <= 1e-9 || (g - snapshot_only[i]).abs() <= 1e-9,
                        "hit {i}: {g} is neither layer's score ({} / {})",
                        healthy[i],
                        snapshot_only[i]
                    );
                }
                requests.fetch_add(1, Ordering::Relaxed);
            }
        });
        let _stop = StopOnDrop(&stop);

        // Killed: every item from the snapshot, counted as degraded, never as missing.
        let before = degraded(&sidecar, "error") + degraded(&sidecar, "timeout");
        redis.stop();
        wait_for(
            &sidecar,
            &body,
            &snapshot_only,
            "Redis killed: snapshot answers",
        );
        assert!(degraded(&sidecar, "error") + degraded(&sidecar, "timeout") > before);

        // Back (empty, no persistence) and refilled: fresh values again.
        redis.restart();
        fill_redis(&redis.url(), false, &case, &tmp, 3);
        wait_for(&sidecar, &body, &healthy, "Redis back");

        // Paused (SIGSTOP): the call hits its budget; the snapshot answers.
        let before = degraded(&sidecar, "timeout");
        redis.signal("STOP");
        wait_for(
            &sidecar,
            &body,
            &snapshot_only,
            "Redis paused: snapshot answers",
        );
        assert!(
            degraded(&sidecar, "timeout") > before,
            "{}",
            sidecar.get_text("/metrics")
        );
        // Within retry_after_ms of the failure, ids not cached are not even asked of Redis.
        let skipped = degraded(&sidecar, "skipped");
        let (status, resp) = sidecar.post(
            "/v1/rescore",
            &json!({"model": "lambdarank", "hits": [{"id": "new-1", "score": 1}, {"id": "new-2", "score": 0}]})
                .to_string(),
        );
        assert_eq!(status, 200, "{resp}");
        // At least these two (the requests running beside it are skipped too: the
        // snapshot's answers are read in place, not cached).
        assert!(degraded(&sidecar, "skipped") >= skipped + 2.0);
        redis.signal("CONT");
        wait_for(&sidecar, &body, &healthy, "Redis resumed");

        // Slow: every command waits 2 s (CLIENT PAUSE), longer than the budget.
        let before = degraded(&sidecar, "timeout");
        assert_eq!(
            redis
                .command(&["CLIENT", "PAUSE", "2000", "ALL"])
                .as_deref(),
            Some("+OK")
        );
        wait_for(
            &sidecar,
            &body,
            &snapshot_only,
            "Redis slow: snapshot answers",
        );
        assert!(degraded(&sidecar, "timeout") > before);
        wait_for(&sidecar, &body, &healthy, "Redis fast again");
    });
    assert!(requests.load(Ordering::Relaxed) > 10);

    // Nothing was ever served as a missing feature, and Redis round trips were counted.
    let text = sidecar.get_text("/metrics");
    for reason in ["timeout", "error"] {
        assert_eq!(
            metric(
                &text,
                &format!("rescore_item_store_fallbacks_total{{reason=\"{reason}\"}}")
            ),
            Some(0.0),
            "{text}"
        );
    }
    assert!(
        metric(
            &text,
            "rescore_item_store_requests_total{store=\"redis\",result=\"ok\"}"
        )
        .unwrap_or(0.0)
            >= 3.0
    );
}

#[test]
fn layered_without_a_snapshot_and_bad_layered_settings_exit_2() {
    let tmp = TempDir::new("layered-config");
    let models = golden_models();
    let (code, out) = run_to_end(
        &[
            "--models",
            models.to_str().expect("utf-8"),
            "--item-store",
            "layered",
        ],
        &[],
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--items"), "{out}");
    let items = tmp.path().join("items.jsonl");
    std::fs::write(&items, "{\"id\":\"a\",\"features\":{\"x\":1}}\n").expect("write");
    for (toml, names) in [
        (
            "[item_store.layered]\nredis_budget_ms = 0\n",
            "redis_budget_ms",
        ),
        ("[item_store.layered]\nbudget = 5\n", "budget"),
        (
            "[item_store.redis]\nwrite_format = \"xml\"\n",
            "write_format",
        ),
    ] {
        let config = tmp.path().join("bad.toml");
        std::fs::write(
            &config,
            format!("[item_store]\nbackend = \"layered\"\n{toml}"),
        )
        .expect("config");
        let (code, out) = run_to_end(
            &[
                "--models",
                models.to_str().expect("utf-8"),
                "--items",
                items.to_str().expect("utf-8"),
                "--config",
                config.to_str().expect("utf-8"),
            ],
            &[],
        );
        assert_eq!(code, 2, "{toml}: {out}");
        assert!(out.contains(names), "{toml}: {out}");
    }
}

/// The layered store on a 3-node Redis Cluster: values written by `items put` land on all
/// three nodes (hash slots), are read back exactly; with one node killed mid-run its items come
/// from the snapshot, the other nodes' from Redis, and no request fails.
/// A sidecar in `layered` mode over the snapshot of golden rows and `cluster` (filled by
/// [`fill_redis`]), items cached for 1 s; and the score each item's hit gets while every
/// cluster node answers.
fn cluster_sidecar(
    case: &GoldenCase,
    tmp: &TempDir,
    cluster: &RedisCluster,
) -> (Sidecar, impl Fn(usize) -> f64) {
    let snapshot: String = (0..ITEMS)
        .map(|i| {
            json!({"id": format!("item-{i}"), "version": 1, "features": features(case, snapshot_row(i))})
                .to_string()
                + "\n"
        })
        .collect();
    let snapshot_path = tmp.path().join("items.jsonl");
    std::fs::write(&snapshot_path, snapshot).expect("write");
    let config = tmp.path().join("sidecar.toml");
    std::fs::write(
        &config,
        "[item_store]\nbackend = \"layered\"\n[item_store.redis]\ncluster = true\n\
         [item_store.layered]\nredis_budget_ms = 250\nretry_after_ms = 0\n\
         [item_store.cache]\nttl_secs = 1\nunknown_ttl_secs = 1\n",
    )
    .expect("config");
    let models = golden_models();
    let sidecar = Sidecar::start(&[
        "--models",
        models.to_str().expect("utf-8"),
        "--items",
        snapshot_path.to_str().expect("utf-8"),
        "--data-dir",
        tmp.path().join("data").to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
        "--redis-url",
        &cluster.url(),
    ]);
    let (status, resp) = sidecar.post(
        "/v1/rescore",
        &json!({"model": "lambdarank", "hits": [{"id": "nothing-known", "score": 0}]}).to_string(),
    );
    assert_eq!(status, 200, "{resp}");
    let no_features = resp["scores"][0].as_f64().expect("score");
    let expected = case.expected.clone();
    let fresh = move |i: usize| {
        let row = match (i, fresh_row(i)) {
            (DELETED, _) => return no_features,
            (_, Some(row)) => row,
            (_, None) => snapshot_row(i),
        };
        expected[row % expected.len()]
    };
    (sidecar, fresh)
}

#[test]
fn a_redis_cluster_serves_by_hash_slot_and_a_dead_node_degrades_to_the_snapshot() {
    let case = golden_cases()
        .into_iter()
        .find(|c| c.model == "lambdarank")
        .expect("lambdarank case");
    let expected = |row: usize| case.expected[row % case.rows.len()];
    let tmp = TempDir::new("layered-cluster");
    let mut cluster = RedisCluster::start();
    fill_redis(&cluster.url(), true, &case, &tmp, 2);
    // Which node holds each fresh item: every node holds some.
    let holder: Vec<Option<usize>> = (0..ITEMS)
        .map(|i| cluster.holder(&format!("rescore:item:item-{i}")))
        .collect();
    for node in 0..3 {
        assert!(
            holder.iter().filter(|h| **h == Some(node)).count() > 10,
            "node {node} holds few keys: {holder:?}"
        );
    }

    let (sidecar, fresh) = cluster_sidecar(&case, &tmp, &cluster);
    let body = request_body();
    let healthy: Vec<f64> = (0..ITEMS).map(&fresh).collect();
    let got = scores_at(&sidecar.base, &body);
    assert!(matches(&got, &healthy), "{got:?} vs {healthy:?}");

    const KILLED: usize = 1;
    let without_node: Vec<f64> = (0..ITEMS)
        .map(|i| {
            if holder[i] == Some(KILLED) {
                expected(snapshot_row(i))
            } else {
                fresh(i)
            }
        })
        .collect();
    assert!(!matches(&without_node, &healthy));
    let stop = AtomicBool::new(false);
    let base = sidecar.base.clone();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let got = scores_at(&base, &body);
                for (i, g) in got.iter().enumerate() {
                    assert!(
                        (g - healthy[i]).abs() <= 1e-9 || (g - without_node[i]).abs() <= 1e-9,
                        "hit {i}: {g} is neither layer's score"
                    );
                }
            }
        });
        let _stop = StopOnDrop(&stop);
        let errors = degraded(&sidecar, "error") + degraded(&sidecar, "timeout");
        cluster.nodes[KILLED].stop();
        let redis_reads = counter(
            &sidecar,
            "rescore_item_store_layer_reads_total{layer=\"redis\"}",
        );
        wait_for(&sidecar, &body, &without_node, "one cluster node down");
        assert!(degraded(&sidecar, "error") + degraded(&sidecar, "timeout") > errors);
        // The live nodes still answer theirs.
        std::thread::sleep(Duration::from_millis(1200));
        wait_for(
            &sidecar,
            &body,
            &without_node,
            "one cluster node down, later",
        );
        assert!(
            counter(
                &sidecar,
                "rescore_item_store_layer_reads_total{layer=\"redis\"}"
            ) > redis_reads
        );
    });
    let text = sidecar.get_text("/metrics");
    assert_eq!(
        metric(
            &text,
            "rescore_item_store_fallbacks_total{reason=\"error\"}"
        ),
        Some(0.0),
        "{text}"
    );
}

/// During a slot migration the keys that already moved are answered `ASK` by their owner: the
/// store reads them from the node named (after `ASKING`), not from the snapshot.
#[test]
fn keys_of_a_slot_in_migration_are_read_where_the_owner_sends_them() {
    let case = golden_cases()
        .into_iter()
        .find(|c| c.model == "lambdarank")
        .expect("lambdarank case");
    let tmp = TempDir::new("layered-migration");
    let cluster = RedisCluster::start();
    fill_redis(&cluster.url(), true, &case, &tmp, 2);
    let (sidecar, fresh) = cluster_sidecar(&case, &tmp, &cluster);
    let body = request_body();
    let healthy: Vec<f64> = (0..ITEMS).map(&fresh).collect();
    wait_for(&sidecar, &body, &healthy, "before the migration");

    // Item 0 is fresh in Redis; its slot moves from its owner to the next node.
    let key = "rescore:item:item-0";
    let slot = cluster.nodes[0]
        .command(&["CLUSTER", "KEYSLOT", key])
        .and_then(|r| r.trim_start_matches(':').parse::<u16>().ok())
        .expect("a slot");
    let from = cluster.holder(key).expect("a holder");
    let to = (from + 1) % cluster.nodes.len();
    let id = |n: usize| {
        cluster.nodes[n]
            .command(&["CLUSTER", "MYID"])
            .expect("an id")
    };
    let slot = slot.to_string();
    let ok = Some("+OK".to_string());
    assert_eq!(
        cluster.nodes[to].command(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &id(from)]),
        ok
    );
    assert_eq!(
        cluster.nodes[from].command(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &id(to)]),
        ok
    );
    let listing = cluster.nodes[from]
        .command(&["CLUSTER", "GETKEYSINSLOT", &slot, "1000"])
        .expect("keys");
    let keys: Vec<&str> = listing
        .lines()
        .filter(|l| !l.starts_with('*') && !l.starts_with('$'))
        .collect();
    assert!(keys.contains(&key), "{listing}");
    let port = cluster.nodes[to].port.to_string();
    let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
    migrate.extend(&keys);
    assert_eq!(cluster.nodes[from].command(&migrate), ok);
    let answer = cluster.nodes[from]
        .command(&["GET", key])
        .unwrap_or_default();
    assert!(answer.starts_with("-ASK"), "{answer}");

    let errors = degraded(&sidecar, "error") + degraded(&sidecar, "timeout");
    let redis_reads = counter(
        &sidecar,
        "rescore_item_store_layer_reads_total{layer=\"redis\"}",
    );
    // The cache holds items for 1 s: past that every request reads Redis again.
    std::thread::sleep(Duration::from_millis(1200));
    for _ in 0..5 {
        let got = scores_at(&sidecar.base, &body);
        assert!(matches(&got, &healthy), "{got:?} vs {healthy:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        counter(
            &sidecar,
            "rescore_item_store_layer_reads_total{layer=\"redis\"}"
        ) > redis_reads
    );
    assert_eq!(
        degraded(&sidecar, "error") + degraded(&sidecar, "timeout"),
        errors,
        "no key fell back to the snapshot"
    );
}

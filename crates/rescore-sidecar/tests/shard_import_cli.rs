//! `items import --index-shards N/R --keep-shards ...` and `items info` through the real
//! binary: the summary counts what the filter left out, the generation records the filter,
//! and bad flags fail naming the problem; a sidecar serving a filtered generation answers a
//! request whose hits are mostly from shards it does not hold (a moved shard) with the baseline.
//! (The shards themselves are checked against real Elasticsearch and OpenSearch nodes by
//! scripts/test-shard-routing.sh.)

mod common;

use common::{items_cmd, run_to_end, Sidecar, TempDir};
use rescore_features::{IndexShards, ShardFilter};

#[test]
fn a_filtered_import_reports_and_records_its_shards() {
    let tmp = TempDir::new("shard-import");
    let snapshot = tmp.path().join("items.jsonl");
    let ids: Vec<String> = (0..500).map(|i| format!("näme-{i}")).collect();
    let text: String = ids
        .iter()
        .map(|id| format!("{{\"id\":\"{id}\",\"features\":{{\"price\":1.5}}}}\n"))
        .collect();
    std::fs::write(&snapshot, text).expect("write");
    let data = tmp.path().join("data");
    let (snapshot, data) = (
        snapshot.to_str().expect("utf-8"),
        data.to_str().expect("utf-8"),
    );
    let filter =
        ShardFilter::new(IndexShards::new(5, 640).expect("layout"), vec![0, 3]).expect("filter");
    let kept = ids.iter().filter(|id| filter.keeps(id)).count() as u64;

    let s = items_cmd(&[
        "items",
        "import",
        snapshot,
        "--index-shards",
        "5/640",
        "--keep-shards",
        "3,0",
        "--data-dir",
        data,
    ]);
    assert_eq!(s["items"].as_u64(), Some(kept), "{s}");
    assert_eq!(s["skipped"].as_u64(), Some(500 - kept), "{s}");
    assert_eq!(s["lines"].as_u64(), Some(500), "{s}");
    let recorded = serde_json::json!({"number_of_shards": 5, "routing_num_shards": 640, "kept_shards": [0, 3]});
    assert_eq!(s["shards"], recorded, "{s}");

    let info = items_cmd(&["items", "info", "--data-dir", data]);
    assert_eq!(info["shards"], recorded, "{info}");
    assert_eq!(info["items"].as_u64(), Some(kept), "{info}");
    assert_eq!(info["built_by"], "import", "{info}");

    // A plain import holds the whole catalogue again: info says so with a null filter.
    let s = items_cmd(&["items", "import", snapshot, "--data-dir", data]);
    assert_eq!(
        (s["items"].as_u64(), s.get("shards")),
        (Some(500), None),
        "{s}"
    );
    let info = items_cmd(&["items", "info", "--data-dir", data]);
    assert!(info["shards"].is_null(), "{info}");
}

#[test]
fn bad_shard_flags_fail_naming_the_problem() {
    let tmp = TempDir::new("shard-flags");
    let snapshot = tmp.path().join("items.jsonl");
    std::fs::write(&snapshot, "{\"id\":\"a\"}\n").expect("write");
    let data = tmp.path().join("data");
    let (snapshot, data) = (
        snapshot.to_str().expect("utf-8"),
        data.to_str().expect("utf-8"),
    );
    for (flags, code, words) in [
        (
            &["--index-shards", "6/100", "--keep-shards", "1"][..],
            1,
            "--index-shards routing_num_shards 100 is not a multiple of number_of_shards 6",
        ),
        (
            &["--index-shards", "6/", "--keep-shards", "1"][..],
            1,
            "expected NUMBER_OF_SHARDS/ROUTING_NUM_SHARDS",
        ),
        (
            &["--index-shards", "6/768", "--keep-shards", "2,6"][..],
            1,
            "--keep-shards 2,6: shard 6 does not exist in an index of 6 shards",
        ),
        (
            &["--index-shards", "6/768", "--keep-shards", "two"][..],
            1,
            "expected shard ids separated by commas",
        ),
        (&["--index-shards", "6/768"][..], 2, "--keep-shards"),
        (&["--keep-shards", "1"][..], 2, "--index-shards"),
    ] {
        let mut args = vec!["items", "import", snapshot, "--data-dir", data];
        args.extend_from_slice(flags);
        let (got, out) = run_to_end(&args, &[]);
        assert_eq!(got, code, "{flags:?}: {out}");
        assert!(out.contains(words), "{flags:?}: {out}");
    }
    // Nothing was published by any of them.
    let (got, out) = run_to_end(&["items", "info", "--data-dir", data], &[]);
    assert_eq!(got, 1, "{out}");
    assert!(out.contains("no generation yet"), "{out}");
}

/// The demo catalogue imported into `data` keeping shards 0-2 of an index of 6 (routed as
/// Elasticsearch 9 routes), and that filter.
fn filtered_demo_import(data: &str) -> ShardFilter {
    let s = items_cmd(&[
        "items",
        "import",
        demo_items().to_str().expect("utf-8"),
        "--index-shards",
        "6",
        "--keep-shards",
        "0,1,2",
        "--data-dir",
        data,
    ]);
    assert!(s["skipped"].as_u64().is_some_and(|n| n > 1000), "{s}");
    ShardFilter::new(IndexShards::new(6, 6).expect("layout"), vec![0, 1, 2]).expect("filter")
}

fn demo_items() -> std::path::PathBuf {
    common::repo_root().join("demo/items.jsonl")
}

/// A sidecar on `data` and the same `--items` file (so it serves the filtered generation
/// built from it), with `extra` arguments.
fn demo_sidecar(data: &str, extra: &[&str]) -> Sidecar {
    let models = common::repo_root().join("models");
    let items = demo_items();
    let mut args = vec![
        "--models",
        models.to_str().expect("utf-8"),
        "--items",
        items.to_str().expect("utf-8"),
        "--data-dir",
        data,
    ];
    args.extend_from_slice(extra);
    Sidecar::start(&args)
}

/// The marketplace model's answer for hits of `ids`, with descending baseline scores.
fn ask(sidecar: &Sidecar, ids: &[&str]) -> serde_json::Value {
    let hits: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| serde_json::json!({"id": id, "score": 100.0 - i as f64}))
        .collect();
    let body = serde_json::json!({"model": "marketplace", "hits": hits}).to_string();
    let (status, answer) = sidecar.post("/v1/rescore", &body);
    assert_eq!(status, 200, "{answer}");
    answer
}

fn not_covered(sidecar: &Sidecar) -> f64 {
    common::metric(
        &sidecar.get_text("/metrics"),
        "rescore_item_store_fallbacks_total{reason=\"not_covered\"}",
    )
    .unwrap_or(0.0)
}

#[test]
fn hits_from_shards_the_snapshot_does_not_hold_get_the_baseline() {
    let tmp = TempDir::new("shard-moved");
    let data = tmp.path().join("data");
    let data = data.to_str().expect("utf-8");
    let filter = filtered_demo_import(data);
    let ids = |kept: bool, n: usize| -> Vec<String> {
        (0..10_000)
            .map(|i| format!("i{i}"))
            .filter(|id| filter.keeps(id) == kept)
            .take(n)
            .collect()
    };
    let sidecar = demo_sidecar(data, &[]);
    let ask = |ids: &[String]| {
        ask(
            &sidecar,
            &ids.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };

    // Hits of the kept shards, and an id the catalogue lacks on a kept shard: scored.
    let mut covered = ids(true, 40);
    let unknown_kept = (0..)
        .map(|i| format!("new-listing-{i}"))
        .find(|id| filter.keeps(id))
        .expect("an id on a kept shard");
    covered.push(unknown_kept);
    let answer = ask(&covered);
    assert!(answer["fallback"].is_null(), "{answer}");
    assert_eq!(not_covered(&sidecar), 0.0);

    // Two of 42 hits from a shard the node gained since the import: under
    // serving.max_store_failure_share (10%), still scored.
    let mut mixed = ids(true, 40);
    mixed.extend(ids(false, 2));
    let answer = ask(&mixed);
    assert!(answer["fallback"].is_null(), "{answer}");
    assert_eq!(not_covered(&sidecar), 2.0);

    // All from shards it does not hold: the baseline, not a ranking on defaults.
    let answer = ask(&ids(false, 40));
    assert_eq!(answer["fallback"], "feature_store", "{answer}");
    let baseline: Vec<f64> = (0..40).map(|i| 100.0 - f64::from(i)).collect();
    assert_eq!(answer["scores"], serde_json::json!(baseline), "{answer}");
    assert_eq!(not_covered(&sidecar), 42.0);
}

#[test]
fn in_layered_mode_redis_serves_the_items_of_a_moved_shard() {
    let tmp = TempDir::new("shard-moved-layered");
    let data = tmp.path().join("data");
    let data = data.to_str().expect("utf-8");
    let filter = filtered_demo_import(data);
    // The demo items of the shards the node does not hold: the first 40 go to Redis.
    let demo = std::fs::read_to_string(demo_items()).expect("demo items");
    let moved: Vec<serde_json::Value> = demo
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .filter(|item| !filter.keeps(item["id"].as_str().expect("id")))
        .take(80)
        .collect();
    let in_redis: String = moved[..40]
        .iter()
        .map(|item| {
            serde_json::json!({"id": item["id"], "version": 2, "features": item["features"]})
                .to_string()
                + "\n"
        })
        .collect();
    let fresh = tmp.path().join("fresh.jsonl");
    std::fs::write(&fresh, in_redis).expect("write");
    let redis = common::redis::Redis::start();
    let put = items_cmd(&[
        "items",
        "put",
        fresh.to_str().expect("utf-8"),
        "--target",
        "redis",
        "--redis-url",
        &redis.url(),
    ]);
    assert_eq!(put["redis"]["applied"], 40, "{put}");
    let config = tmp.path().join("sidecar.toml");
    std::fs::write(&config, "[item_store]\nbackend = \"layered\"\n").expect("config");
    let sidecar = demo_sidecar(
        data,
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--redis-url",
            &redis.url(),
        ],
    );
    let ids: Vec<&str> = moved
        .iter()
        .map(|item| item["id"].as_str().expect("id"))
        .collect();
    let answer = ask(&sidecar, &ids[..40]);
    assert!(answer["fallback"].is_null(), "Redis holds them: {answer}");
    assert_eq!(not_covered(&sidecar), 0.0);
    let answer = ask(&sidecar, &ids[40..]);
    assert_eq!(answer["fallback"], "feature_store", "{answer}");
    assert_eq!(not_covered(&sidecar), 40.0);
}

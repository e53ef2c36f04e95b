//! `items import --index-shards N/R --keep-shards ...` and `items info` through the real
//! binary: the summary counts what the filter left out, the generation records the filter,
//! and bad flags fail naming the problem. (The shards themselves are checked against real
//! Elasticsearch and OpenSearch nodes by scripts/test-shard-routing.sh.)

mod common;

use common::{items_cmd, run_to_end, TempDir};
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

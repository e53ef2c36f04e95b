//! Shard-filtered imports (ADR 0009): a JSON Lines or Parquet snapshot imported with a shard
//! filter holds exactly the items the index routes to the kept shards (by `routing` when an
//! item has one, else by id), counts the rest, records the filter in the generation, and keeps
//! it through updates and through a server's rebuild of a newer snapshot file. That the shard
//! function is the engine's is checked against real nodes by scripts/test-shard-routing.sh.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use rescore_features::{DataDir, IndexShards, ShardFilter, StoreError};

/// (id, routing, price): every 7th item routed by a seller key, some ids not ASCII.
fn catalogue(n: usize) -> Vec<(String, Option<String>, f64)> {
    (0..n)
        .map(|i| {
            let id = match i % 5 {
                0 => format!("ü-{i}"),
                1 => format!("😀{i}"),
                _ => format!("item-{i}"),
            };
            let routing = (i % 7 == 0).then(|| format!("seller-{}", i % 13));
            (id, routing, i as f64 * 0.5)
        })
        .collect()
}

fn write_jsonl(path: &Path, items: &[(String, Option<String>, f64)]) {
    let text: String = items
        .iter()
        .map(|(id, routing, price)| {
            let mut line =
                serde_json::json!({"id": id, "version": 1, "features": {"price": price}});
            if let Some(r) = routing {
                line["routing"] = r.as_str().into();
            }
            format!("{line}\n")
        })
        .collect();
    std::fs::write(path, text).expect("write snapshot");
}

fn write_parquet(path: &Path, items: &[(String, Option<String>, f64)], routing_type: &str) {
    let annotation = if routing_type == "binary" {
        " (UTF8)"
    } else {
        ""
    };
    let schema = format!(
        "message items {{ required binary id (UTF8); optional {routing_type} routing{annotation}; required double price; }}"
    );
    let schema = Arc::new(parse_message_type(&schema).expect("schema"));
    let props = Arc::new(WriterProperties::builder().build());
    let file = std::fs::File::create(path).expect("create");
    let mut writer = SerializedFileWriter::new(file, schema, props).expect("writer");
    let mut group = writer.next_row_group().expect("row group");
    let ids: Vec<ByteArray> = items.iter().map(|(id, _, _)| id.as_str().into()).collect();
    let mut column = group.next_column().expect("next").expect("id");
    column
        .typed::<ByteArrayType>()
        .write_batch(&ids, None, None)
        .expect("ids");
    column.close().expect("close");
    let defs: Vec<i16> = items
        .iter()
        .map(|(_, r, _)| i16::from(r.is_some()))
        .collect();
    let mut column = group.next_column().expect("next").expect("routing");
    if routing_type == "binary" {
        let routings: Vec<ByteArray> = items
            .iter()
            .filter_map(|(_, r, _)| r.as_deref().map(ByteArray::from))
            .collect();
        column
            .typed::<ByteArrayType>()
            .write_batch(&routings, Some(&defs), None)
            .expect("routing");
    } else {
        let routings: Vec<f64> = items
            .iter()
            .filter_map(|(_, r, _)| r.as_ref().map(|_| 1.0))
            .collect();
        column
            .typed::<DoubleType>()
            .write_batch(&routings, Some(&defs), None)
            .expect("routing");
    }
    column.close().expect("close");
    let prices: Vec<f64> = items.iter().map(|(_, _, p)| *p).collect();
    let mut column = group.next_column().expect("next").expect("price");
    column
        .typed::<DoubleType>()
        .write_batch(&prices, None, None)
        .expect("prices");
    column.close().expect("close");
    group.close().expect("group");
    writer.close().expect("file");
}

/// The live ids of the data directory's current generation.
fn live_ids(dir: &DataDir) -> BTreeSet<String> {
    let generation = dir.open_current(0).expect("open").expect("a generation");
    generation
        .entries()
        .filter(|(_, e)| e.values.is_some())
        .map(|(id, _)| id.to_string())
        .collect()
}

fn expected(items: &[(String, Option<String>, f64)], filter: &ShardFilter) -> BTreeSet<String> {
    items
        .iter()
        .filter(|(id, routing, _)| filter.keeps(routing.as_deref().unwrap_or(id)))
        .map(|(id, _, _)| id.clone())
        .collect()
}

#[test]
fn jsonl_and_parquet_keep_exactly_the_items_of_the_kept_shards() {
    let tmp = tempfile::tempdir().expect("tmp");
    let items = catalogue(3000);
    let jsonl = tmp.path().join("items.jsonl");
    let parquet = tmp.path().join("items.parquet");
    write_jsonl(&jsonl, &items);
    write_parquet(&parquet, &items, "binary");
    let index = IndexShards::new(6, 768).expect("layout");
    let filter = ShardFilter::new(index, vec![4, 1]).expect("filter");
    let want = expected(&items, &filter);
    // The routing key matters: routed by id alone, the set would differ.
    let by_id: BTreeSet<String> = items
        .iter()
        .filter(|(id, _, _)| filter.keeps(id))
        .map(|(id, _, _)| id.clone())
        .collect();
    assert_ne!(want, by_id);
    assert!(want.len() > 500 && want.len() < 1500, "{}", want.len());

    for snapshot in [&jsonl, &parquet] {
        let dir = DataDir::open(&tmp.path().join(format!(
            "data-{}",
            snapshot.extension().and_then(|e| e.to_str()).expect("ext")
        )))
        .expect("dir");
        let report = dir
            .import_shards(snapshot, Some(&filter))
            .expect("filtered import");
        assert_eq!(report.lines, 3000, "{}", snapshot.display());
        assert_eq!(report.items, want.len() as u64);
        assert_eq!(report.skipped, 3000 - want.len() as u64);
        assert_eq!(live_ids(&dir), want, "{}", snapshot.display());
        let generation = dir.open_current(0).expect("open").expect("live");
        assert_eq!(generation.shard_filter(), Some(&filter));
        // The features of a kept item are there, as in a full import.
        let (id, _, price) = items
            .iter()
            .find(|(id, _, _)| want.contains(id))
            .expect("one kept");
        let column = generation.columns().column("price").expect("price column");
        let row = generation.get(id).expect("read").expect("kept item");
        assert_eq!(row.value(column), Some(*price));

        // Every shard on its own: the shards partition the catalogue.
        let mut seen = BTreeSet::new();
        for shard in 0..6 {
            let one = ShardFilter::new(index, vec![shard]).expect("filter");
            dir.import_shards(snapshot, Some(&one)).expect("one shard");
            let ids = live_ids(&dir);
            assert!(ids.is_disjoint(&seen), "shard {shard}");
            seen.extend(ids);
        }
        assert_eq!(seen.len(), 3000);

        // A plain import is the whole catalogue again, and says so.
        let report = dir.import(snapshot).expect("full import");
        assert_eq!((report.items, report.skipped), (3000, 0));
        let generation = dir.open_current(0).expect("open").expect("live");
        assert_eq!(generation.shard_filter(), None);
    }
}

#[test]
fn bad_routing_values_are_named_and_publish_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = DataDir::open(&tmp.path().join("data")).expect("dir");
    let filter = ShardFilter::new(IndexShards::new(3, 24).expect("layout"), vec![0]).expect("f");
    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "{\"id\":\"a\"}\n{\"id\":\"b\",\"routing\":\"\"}\n").expect("write");
    let not_string = tmp.path().join("number.jsonl");
    std::fs::write(&not_string, "{\"id\":\"a\",\"routing\":7}\n").expect("write");
    for (path, line, words) in [(&empty, 2, "`routing` is empty"), (&not_string, 1, "")] {
        match dir.import_shards(path, Some(&filter)) {
            Err(StoreError::Line { line: l, problem }) => {
                assert_eq!(l, line, "{problem}");
                assert!(problem.contains(words), "{problem}");
            }
            other => panic!("{}: {other:?}", path.display()),
        }
    }
    // A numeric `routing` column cannot route: refused when filtering, a feature otherwise
    // (as it was before routing columns existed).
    let items = catalogue(50);
    let numeric = tmp.path().join("numeric.parquet");
    write_parquet(&numeric, &items, "double");
    match dir.import_shards(&numeric, Some(&filter)) {
        Err(StoreError::Parquet { problem }) => {
            assert!(
                problem.contains("column `routing` has type DOUBLE"),
                "{problem}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        dir.current().expect("current").is_none(),
        "nothing published"
    );
    dir.import(&numeric).expect("a feature without a filter");
    let generation = dir.open_current(0).expect("open").expect("live");
    assert!(generation.columns().column("routing").is_some());
    assert_eq!(generation.len(), 50);
}

#[test]
fn the_filter_survives_updates_and_a_servers_rebuild_of_a_newer_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = DataDir::open(&tmp.path().join("data")).expect("dir");
    let items = catalogue(400);
    let snapshot = tmp.path().join("items.jsonl");
    write_jsonl(&snapshot, &items);
    let filter =
        ShardFilter::new(IndexShards::new(3, 24).expect("layout"), vec![2]).expect("filter");
    dir.import_shards(&snapshot, Some(&filter)).expect("import");

    let update = "{\"op\":\"put\",\"id\":\"new\",\"version\":2,\"features\":{\"price\":1}}\n";
    let report = dir
        .apply_updates(
            rescore_features::parse_updates(update.as_bytes(), None).map(|r| {
                r.map_err(|e| StoreError::Line {
                    line: 0,
                    problem: e.to_string(),
                })
            }),
        )
        .expect("updates");
    assert_eq!(report.lines, 1);
    let generation = dir.open_current(0).expect("open").expect("live");
    assert_eq!(generation.shard_filter(), Some(&filter));

    // A pipeline writes a newer file; a server starting with it as --items builds it with the
    // live generation's filter rather than growing to the whole catalogue.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let more = catalogue(600);
    write_jsonl(&snapshot, &more);
    let (generation, report, _claim) = dir.serve(&snapshot).expect("serve");
    let report = report.expect("rebuilt: the file changed");
    assert_eq!(generation.shard_filter(), Some(&filter));
    assert_eq!(report.skipped, 600 - expected(&more, &filter).len() as u64);
    assert_eq!(live_ids(&dir), expected(&more, &filter));
}

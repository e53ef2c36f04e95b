//! Parquet snapshots build the same store as JSON Lines of the same items (written here with
//! the parquet crate's own writer), and a snapshot the store cannot take publishes nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int32Type, Int64Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use rand::{Rng, SeedableRng};
use rescore_features::{DataDir, Generation, StoreError};

/// One column's data for the test writer: values by row, `None` = null.
enum Data {
    Str(Vec<Option<String>>),
    I32(Vec<Option<i32>>),
    I64(Vec<Option<i64>>),
    F32(Vec<Option<f32>>),
    F64(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
}

/// Writes `columns` (in schema order, all optional unless the schema says otherwise) in row
/// groups of `group_rows` rows.
fn write_parquet(
    path: &Path,
    schema: &str,
    columns: &[Data],
    group_rows: usize,
    compression: Compression,
) {
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_data_page_row_count_limit(1000)
        .set_write_batch_size(500)
        .build();
    write_parquet_with(path, schema, columns, group_rows, props);
}

/// [`write_parquet`] with the writer's properties given.
fn write_parquet_with(
    path: &Path,
    schema: &str,
    columns: &[Data],
    group_rows: usize,
    props: WriterProperties,
) {
    let schema = Arc::new(parse_message_type(schema).expect("schema"));
    let props = Arc::new(props);
    let file = std::fs::File::create(path).expect("create");
    let mut writer = SerializedFileWriter::new(file, schema.clone(), props).expect("writer");
    let rows = match &columns[0] {
        Data::Str(v) => v.len(),
        _ => panic!("id first"),
    };
    let fields = schema.get_fields();
    let mut start = 0;
    while start < rows {
        let end = (start + group_rows).min(rows);
        let mut group = writer.next_row_group().expect("row group");
        for (data, field) in columns.iter().zip(fields) {
            let required =
                field.get_basic_info().repetition() == parquet::basic::Repetition::REQUIRED;
            let mut column = group.next_column().expect("next").expect("column");
            fn split<T: Clone>(v: &[Option<T>], required: bool) -> (Vec<T>, Option<Vec<i16>>) {
                let values = v.iter().flatten().cloned().collect();
                let defs = (!required).then(|| v.iter().map(|x| i16::from(x.is_some())).collect());
                (values, defs)
            }
            match data {
                Data::Str(v) => {
                    let (values, defs) = split(&v[start..end], required);
                    let values: Vec<ByteArray> = values
                        .into_iter()
                        .map(|s| ByteArray::from(s.as_str()))
                        .collect();
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(&values, defs.as_deref(), None)
                        .expect("write");
                }
                Data::I32(v) => {
                    let (values, defs) = split(&v[start..end], required);
                    column
                        .typed::<Int32Type>()
                        .write_batch(&values, defs.as_deref(), None)
                        .expect("write");
                }
                Data::I64(v) => {
                    let (values, defs) = split(&v[start..end], required);
                    column
                        .typed::<Int64Type>()
                        .write_batch(&values, defs.as_deref(), None)
                        .expect("write");
                }
                Data::F32(v) => {
                    let (values, defs) = split(&v[start..end], required);
                    column
                        .typed::<FloatType>()
                        .write_batch(&values, defs.as_deref(), None)
                        .expect("write");
                }
                Data::F64(v) => {
                    let (values, defs) = split(&v[start..end], required);
                    column
                        .typed::<DoubleType>()
                        .write_batch(&values, defs.as_deref(), None)
                        .expect("write");
                }
                Data::Bool(v) => {
                    let (values, defs) = split(&v[start..end], required);
                    column
                        .typed::<BoolType>()
                        .write_batch(&values, defs.as_deref(), None)
                        .expect("write");
                }
            }
            column.close().expect("close column");
        }
        group.close().expect("close group");
        start = end;
    }
    writer.close().expect("close");
}

/// The JSON number of a feature as JSON Lines would carry it (shortest round-trip form).
fn json_number(v: f64) -> String {
    serde_json::to_string(&v).expect("number")
}

/// Every item's values bit for bit, and the column names in order: two stores built from the
/// same data must agree on all of it.
fn dump(generation: &Generation, ids: &[String]) -> (Vec<String>, Vec<Option<Vec<u64>>>) {
    let values = ids
        .iter()
        .map(|id| {
            generation
                .get(id)
                .expect("read")
                .map(|r| r.values().iter().map(|v| v.to_bits()).collect())
        })
        .collect();
    (generation.columns().names(), values)
}

fn build(dir: &Path, snapshot: &Path) -> Generation {
    let data = DataDir::open(dir).expect("dir");
    let (generation, report) = data.ensure_snapshot(snapshot, 1 << 20).expect("build");
    assert!(report.is_some(), "built, not reused");
    generation
}

struct Items {
    ids: Vec<Option<String>>,
    versions: Vec<Option<i64>>,
    /// JSON Lines of the same items.
    jsonl: String,
    columns: Vec<Data>,
}

/// `n` items covering every supported type, nulls, repeated ids and extreme values.
fn items(n: usize) -> Items {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut ids = Vec::new();
    let mut versions = Vec::new();
    let (mut price, mut rating, mut stock, mut big, mut unsigned, mut sold_out, mut never) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut jsonl = String::new();
    for i in 0..n {
        // long ids, non-ASCII ids, a number-looking id; every 97th row repeats an earlier id
        let id = match i {
            _ if i % 97 == 96 => format!("item{}", i / 2),
            0 => "18446744073709551615".to_string(),
            1 => "é-ü-€-𝄞".to_string(),
            2 => "x".repeat(3000),
            _ => format!("item{i}"),
        };
        let version = rng.gen_range(0..i64::MAX);
        let p: Option<f64> = (i % 5 != 0).then(|| rng.gen::<f64>() * 1e4 - 5e3);
        let r: Option<f32> = (i % 7 != 0).then(|| rng.gen::<f32>() * 5.0);
        let s: Option<i32> = (i % 3 != 0).then(|| rng.gen_range(i32::MIN..=i32::MAX));
        // beyond 2^53: rounded to the nearest f64 by both paths
        let b: Option<i64> = match i % 4 {
            0 => Some(i64::MAX),
            1 => Some((1 << 53) + 1),
            2 => Some(rng.gen()),
            _ => None,
        };
        // uint64 values above i64::MAX stored as their two's complement
        let u: Option<u64> = (i % 2 == 0).then(|| u64::MAX - rng.gen_range(0..1000u64));
        let so: Option<bool> = (i % 11 != 0).then(|| rng.gen());
        let mut features = serde_json::Map::new();
        let mut put = |name: &str, v: Option<f64>| {
            let text = v.map_or("null".to_string(), json_number);
            features.insert(name.to_string(), serde_json::from_str(&text).expect("json"));
        };
        put("price", p);
        put("rating", r.map(f64::from));
        put("stock", s.map(f64::from));
        put("big", b.map(|b| b as f64));
        put("unsigned", u.map(|u| u as f64));
        put("sold_out", so.map(|b| if b { 1.0 } else { 0.0 }));
        put("never", None);
        // integers as JSON integer literals, as a pipeline would write them
        let mut line =
            serde_json::json!({"id": id, "version": version, "features": features}).to_string();
        if let Some(b) = b {
            line = line.replace(
                &format!("\"big\":{}", json_number(b as f64)),
                &format!("\"big\":{b}"),
            );
        }
        if let Some(u) = u {
            line = line.replace(
                &format!("\"unsigned\":{}", json_number(u as f64)),
                &format!("\"unsigned\":{u}"),
            );
        }
        jsonl.push_str(&line);
        jsonl.push('\n');
        ids.push(Some(id));
        versions.push(Some(version));
        price.push(p);
        rating.push(r);
        stock.push(s);
        big.push(b);
        unsigned.push(u.map(|u| u as i64));
        sold_out.push(so);
        never.push(None::<f64>);
    }
    let columns = vec![
        Data::Str(ids.clone()),
        Data::I64(versions.clone()),
        Data::F64(price),
        Data::F32(rating),
        Data::I32(stock),
        Data::I64(big),
        Data::I64(unsigned),
        Data::Bool(sold_out),
        Data::F64(never),
    ];
    Items {
        ids,
        versions,
        jsonl,
        columns,
    }
}

const SCHEMA: &str = "message items {
    REQUIRED BYTE_ARRAY id (UTF8);
    REQUIRED INT64 version;
    OPTIONAL DOUBLE price;
    OPTIONAL FLOAT rating;
    OPTIONAL INT32 stock;
    OPTIONAL INT64 big;
    OPTIONAL INT64 unsigned (INTEGER(64,false));
    OPTIONAL BOOLEAN sold_out;
    OPTIONAL DOUBLE never;
}";

#[test]
fn parquet_and_jsonl_of_the_same_items_build_identical_stores() {
    let tmp = tempfile::tempdir().expect("tmp");
    let n = 5000;
    let it = items(n);
    let jsonl = tmp.path().join("items.jsonl");
    std::fs::write(&jsonl, &it.jsonl).expect("write");
    let ids: Vec<String> = it
        .ids
        .iter()
        .flatten()
        .cloned()
        .chain(["absent".to_string()])
        .collect();
    let from_jsonl = build(&tmp.path().join("jsonl"), &jsonl);
    let expected = dump(&from_jsonl, &ids);
    let mut names = expected.0.clone();
    names.sort();
    assert_eq!(
        names,
        ["big", "price", "rating", "sold_out", "stock", "unsigned"],
        "an all-null feature has no column"
    );
    for (name, compression) in [
        ("snappy", Compression::SNAPPY),
        (
            "zstd",
            Compression::ZSTD(ZstdLevel::try_new(3).expect("level")),
        ),
        ("gzip", Compression::GZIP(Default::default())),
        ("none", Compression::UNCOMPRESSED),
    ] {
        // several row groups, the last one short, pages of 1000 rows
        let parquet = tmp.path().join(format!("items-{name}.parquet"));
        write_parquet(&parquet, SCHEMA, &it.columns, 1800, compression);
        let from_parquet = build(&tmp.path().join(name), &parquet);
        assert_eq!(from_parquet.len(), from_jsonl.len(), "{name}");
        let got = dump(&from_parquet, &ids);
        assert_eq!(got.0, expected.0, "{name}: columns");
        for (i, (g, e)) in got.1.iter().zip(&expected.1).enumerate() {
            assert_eq!(g, e, "{name}: item {}", ids[i]);
        }
    }
    // spot checks of the conversions themselves, not only of the agreement
    let g = build(&tmp.path().join("spot"), &{
        let p = tmp.path().join("spot.parquet");
        write_parquet(&p, SCHEMA, &it.columns, n, Compression::SNAPPY);
        p
    });
    let col = |name: &str| g.columns().column(name).expect(name);
    let row = |i: usize| {
        g.get(it.ids[i].as_deref().expect("id"))
            .expect("read")
            .expect("item")
    };
    let (Data::F32(rating), Data::I64(big)) = (&it.columns[3], &it.columns[5]) else {
        panic!("layout")
    };
    let r1 = rating[1].expect("rating of row 1");
    assert_eq!(
        row(1).value(col("rating")).map(f64::to_bits),
        Some(f64::from(r1).to_bits())
    );
    assert_eq!(big[1], Some((1 << 53) + 1));
    assert_eq!(row(1).value(col("big")), Some(9007199254740992.0));
    assert_eq!(row(0).value(col("price")), None, "null: absent");
    assert_eq!(
        row(0).value(col("unsigned")).map(|v| v > 1.8e19),
        Some(true)
    );
    assert!(it.versions[0].is_some());
}

fn leftovers(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

fn parquet_error(dir: &DataDir, snapshot: &Path) -> String {
    match dir.import(snapshot) {
        Err(e @ StoreError::Parquet { .. }) => e.to_string(),
        other => panic!("{}: {other:?}", snapshot.display()),
    }
}

#[test]
fn unsupported_or_bad_parquet_fails_naming_the_column_and_the_live_generation_stays() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = DataDir::open(&tmp.path().join("data")).expect("dir");
    let good = tmp.path().join("good.parquet");
    let ids = |n: usize| Data::Str((0..n).map(|i| Some(format!("i{i}"))).collect());
    write_parquet(
        &good,
        "message m { REQUIRED BYTE_ARRAY id (STRING); OPTIONAL DOUBLE price; }",
        &[ids(3), Data::F64(vec![Some(1.5), None, Some(-2.0)])],
        2,
        Compression::SNAPPY,
    );
    dir.import(&good).expect("good snapshot");
    let before = leftovers(dir.path());
    assert_eq!(before, ["CURRENT", "LOCK", "gen-000001.items"]);

    let cases: Vec<(&str, &str, Vec<Data>, &[&str])> = vec![
        (
            "string-feature",
            "message m { REQUIRED BYTE_ARRAY id (STRING); OPTIONAL DOUBLE price; OPTIONAL BYTE_ARRAY brand (STRING); }",
            vec![ids(3), Data::F64(vec![Some(1.0); 3]), Data::Str(vec![Some("acme".into()); 3])],
            &["`brand`", "BYTE_ARRAY", "String"],
        ),
        (
            "decimal",
            "message m { REQUIRED BYTE_ARRAY id (STRING); OPTIONAL INT64 cost (DECIMAL(10,2)); }",
            vec![ids(3), Data::I64(vec![Some(100); 3])],
            &["`cost`", "Decimal"],
        ),
        (
            "timestamp",
            "message m { REQUIRED BYTE_ARRAY id (STRING); OPTIONAL INT64 listed (TIMESTAMP(MILLIS,true)); }",
            vec![ids(3), Data::I64(vec![Some(100); 3])],
            &["`listed`", "Timestamp"],
        ),
        (
            "integer-id",
            "message m { REQUIRED INT64 id; OPTIONAL DOUBLE price; }",
            vec![ids(3), Data::F64(vec![Some(1.0); 3])],
            &["`id`", "INT64", "UTF-8 string"],
        ),
        (
            "no-id",
            "message m { REQUIRED BYTE_ARRAY sku (STRING); }",
            vec![ids(3)],
            &["no `id` column"],
        ),
        (
            "float-version",
            "message m { REQUIRED BYTE_ARRAY id (STRING); REQUIRED DOUBLE version; }",
            vec![ids(3), Data::F64(vec![Some(1.0); 3])],
            &["`version`", "DOUBLE", "integer"],
        ),
        (
            "null-id",
            "message m { OPTIONAL BYTE_ARRAY id (STRING); OPTIONAL DOUBLE price; }",
            vec![Data::Str(vec![Some("a".into()), Some("b".into()), None]), Data::F64(vec![Some(1.0); 3])],
            &["row 3", "`id` is null"],
        ),
        (
            "negative-version",
            "message m { REQUIRED BYTE_ARRAY id (STRING); REQUIRED INT32 version; }",
            vec![ids(3), Data::I32(vec![Some(1), Some(-4), Some(2)])],
            &["row 2", "`version` -4 is negative"],
        ),
        (
            "infinite",
            "message m { REQUIRED BYTE_ARRAY id (STRING); OPTIONAL DOUBLE price; }",
            vec![ids(3), Data::F64(vec![Some(1.0), Some(1.0), Some(f64::INFINITY)])],
            &["row 3", "`price` is infinite"],
        ),
    ];
    for (name, schema, columns, wanted) in cases {
        let path = tmp.path().join(format!("{name}.parquet"));
        let columns = if name == "integer-id" {
            // the writer needs int64 data for an INT64 id
            let mut c = columns;
            c[0] = Data::I64(vec![Some(1), Some(2), Some(3)]);
            c
        } else {
            columns
        };
        write_parquet_any(&path, schema, &columns);
        let message = parquet_error(&dir, &path);
        for w in wanted {
            assert!(message.contains(w), "{name}: {message:?} lacks {w:?}");
        }
        assert_eq!(
            leftovers(dir.path()),
            before,
            "{name}: nothing published or left over"
        );
    }

    // a nested column (a list of prices)
    let nested = tmp.path().join("nested.parquet");
    {
        let schema = Arc::new(
            parse_message_type(
                "message m { REQUIRED BYTE_ARRAY id (STRING); OPTIONAL group prices (LIST) { REPEATED group list { OPTIONAL DOUBLE element; } } }",
            )
            .expect("schema"),
        );
        let file = std::fs::File::create(&nested).expect("create");
        let mut writer =
            SerializedFileWriter::new(file, schema, Default::default()).expect("writer");
        let mut group = writer.next_row_group().expect("group");
        let mut c = group.next_column().expect("next").expect("id");
        c.typed::<ByteArrayType>()
            .write_batch(&[ByteArray::from("a")], None, None)
            .expect("id");
        c.close().expect("close");
        let mut c = group.next_column().expect("next").expect("prices");
        c.typed::<DoubleType>()
            .write_batch(&[1.0, 2.0], Some(&[3, 3]), Some(&[0, 1]))
            .expect("prices");
        c.close().expect("close");
        group.close().expect("close");
        writer.close().expect("close");
    }
    let message = parquet_error(&dir, &nested);
    assert!(
        message.contains("`prices`") && message.contains("nested"),
        "{message}"
    );

    // not Parquet at all, and a truncated file
    let garbage = tmp.path().join("garbage.parquet");
    std::fs::write(&garbage, "{\"id\":\"x\"}\n").expect("write");
    assert!(parquet_error(&dir, &garbage).contains("not a readable Parquet file"));
    let truncated = tmp.path().join("truncated.parquet");
    let bytes = std::fs::read(&good).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    assert!(dir.import(&truncated).is_err());
    assert_eq!(leftovers(dir.path()), before);

    // and the first generation still serves
    let g = dir.open_current(1 << 20).expect("open").expect("live");
    assert_eq!(g.number(), 1);
    let price = g.columns().column("price").expect("price");
    assert_eq!(
        g.get("i0").expect("read").and_then(|r| r.value(price)),
        Some(1.5)
    );
    assert_eq!(
        g.get("i1").expect("read").map(|r| r.value(price)),
        Some(None)
    );
}

fn write_parquet_any(path: &PathBuf, schema: &str, columns: &[Data]) {
    // write_parquet wants the id column first as strings for the row count; integer ids are
    // written through the same code with the row count taken from the second column.
    match &columns[0] {
        Data::Str(_) => write_parquet(path, schema, columns, 2, Compression::SNAPPY),
        Data::I64(v) => {
            let schema_arc = Arc::new(parse_message_type(schema).expect("schema"));
            let file = std::fs::File::create(path).expect("create");
            let mut writer =
                SerializedFileWriter::new(file, schema_arc, Default::default()).expect("writer");
            let mut group = writer.next_row_group().expect("group");
            let mut c = group.next_column().expect("next").expect("id");
            let values: Vec<i64> = v.iter().flatten().copied().collect();
            c.typed::<Int64Type>()
                .write_batch(&values, None, None)
                .expect("id");
            c.close().expect("close");
            let mut c = group.next_column().expect("next").expect("price");
            c.typed::<DoubleType>()
                .write_batch(&vec![1.0; values.len()], Some(&vec![1; values.len()]), None)
                .expect("price");
            c.close().expect("close");
            group.close().expect("close");
            writer.close().expect("close");
        }
        _ => panic!("unsupported test layout"),
    }
}

/// Imports one of the damaged files the `items_parquet` fuzz target found (tests/data/) into a
/// fresh data directory: the error message, after checking that nothing was published and no
/// scratch file was left.
fn damaged_import_error(file: &str) -> String {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = DataDir::open(&tmp.path().join("data")).expect("dir");
    let damaged = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file);
    let message = parquet_error(&dir, &damaged);
    assert!(
        dir.current().expect("current").is_none(),
        "{file}: nothing published"
    );
    // The import's lock file only: no generation, no scratch file.
    assert_eq!(leftovers(dir.path()), ["LOCK"], "{file}: nothing left over");
    message
}

/// Found by the `items_parquet` fuzz target (1M-run campaign): a footer whose column chunk has
/// a negative offset made the parquet crate panic when the chunk was opened.
#[test]
fn a_damaged_footer_is_an_error_naming_the_chunk_not_a_crash() {
    let message = damaged_import_error("damaged-negative-chunk-offset.parquet");
    assert!(
        message.contains("row group 0") && message.contains("negative offset"),
        "{message}"
    );
}

/// Found by the `items_parquet` fuzz target: a dictionary-encoded page without a dictionary
/// page made the parquet crate panic ("Decoder for dict should have been set") while reading.
#[test]
fn a_panic_inside_the_parquet_reader_is_an_error_naming_the_file() {
    let message = damaged_import_error("damaged-dictionary-page-missing.parquet");
    assert!(
        message.contains("the Parquet reader failed on this file")
            && message.contains("damaged or unsupported"),
        "{message}"
    );
}

/// Found by the `items_parquet` fuzz target: a 748-byte file whose dictionary page declares
/// 2^30 `INT64` values made the parquet crate allocate 8 GB for the dictionary.
#[test]
fn a_dictionary_page_declaring_more_values_than_it_holds_is_refused_before_allocating() {
    let message = damaged_import_error("damaged-dictionary-declares-2e30-values.parquet");
    assert!(
        message.contains("a dictionary page declares") && message.contains("values but holds"),
        "{message}"
    );
}

/// A page writer that writes what the parquet crate's own writer does, except that every data
/// page header declares `declared` bytes uncompressed (when set); the chunk's total in the
/// footer stays the honest one unless `footer_too`.
struct DeclaringPageWriter<'a> {
    inner: parquet::file::writer::SerializedPageWriter<'a, Vec<u8>>,
    declared: Option<usize>,
    footer_too: bool,
}

impl parquet::column::page::PageWriter for DeclaringPageWriter<'_> {
    fn write_page(
        &mut self,
        page: parquet::column::page::CompressedPage,
    ) -> parquet::errors::Result<parquet::column::page::PageWriteSpec> {
        use parquet::column::page::CompressedPage;
        let Some(declared) = self
            .declared
            .filter(|_| page.page_type() == parquet::basic::PageType::DATA_PAGE)
        else {
            return self.inner.write_page(page);
        };
        let honest = page.uncompressed_size();
        let declaring = CompressedPage::new(page.compressed_page().clone(), declared);
        let mut spec = self.inner.write_page(declaring)?;
        if !self.footer_too {
            spec.uncompressed_size = spec.uncompressed_size - declared + honest;
        }
        Ok(spec)
    }

    fn close(&mut self) -> parquet::errors::Result<()> {
        self.inner.close()
    }
}

/// Writes 100 items (`id`, and `price` in Snappy-compressed plain data pages) with the parquet
/// crate's writer; `price`'s data page headers declare `declared` bytes uncompressed (see
/// [`DeclaringPageWriter`]).
fn write_page_declaring(path: &Path, declared: Option<usize>, footer_too: bool) {
    use parquet::column::writer::{get_column_writer, get_typed_column_writer_mut};
    use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
    let schema = Arc::new(
        parse_message_type("message items { required binary id (UTF8); optional double price; }")
            .expect("schema"),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_dictionary_enabled(false)
            .build(),
    );
    let file = std::fs::File::create(path).expect("create");
    let mut writer = SerializedFileWriter::new(file, schema, props.clone()).expect("writer");
    let price = writer.schema_descr().column(1);
    let mut group = writer.next_row_group().expect("row group");
    let ids: Vec<ByteArray> = (0..100)
        .map(|i| ByteArray::from(format!("i{i}").as_str()))
        .collect();
    let mut id = group.next_column().expect("next").expect("id");
    id.typed::<ByteArrayType>()
        .write_batch(&ids, None, None)
        .expect("ids");
    id.close().expect("close id");
    // `price` is written into a buffer through the declaring page writer, then spliced in.
    let mut chunk = TrackedWrite::new(Vec::new());
    let close = {
        let pages = DeclaringPageWriter {
            inner: SerializedPageWriter::new(&mut chunk),
            declared,
            footer_too,
        };
        let mut column = get_column_writer(price, props, Box::new(pages));
        get_typed_column_writer_mut::<DoubleType>(&mut column)
            .write_batch(&[9.5; 100], Some(&[1; 100]), None)
            .expect("prices");
        column.close().expect("close price")
    };
    let chunk = bytes::Bytes::from(chunk.into_inner().expect("chunk"));
    group.append_column(&chunk, close).expect("append price");
    group.close().expect("close group");
    writer.close().expect("close");
}

/// A page whose header declares 2^31 - 1 bytes uncompressed while the footer says its column
/// chunk holds about a kilobyte: the parquet crate would zero-fill a 2 GiB buffer for it
/// (Snappy) before decompressing; the import refuses it first, naming the column and row group.
/// The file was written by `write_page_declaring(path, Some(i32::MAX as usize), false)`.
#[test]
fn a_page_declaring_more_than_its_column_chunk_is_refused_before_allocating() {
    let message = damaged_import_error("damaged-page-declares-2gib-uncompressed.parquet");
    assert!(
        message.contains("column `price`, row group 0")
            && message.contains(
                "declares 2147483647 bytes uncompressed, more than its whole column chunk"
            ),
        "{message}"
    );
}

/// The import's error for a file whose `price` page declares `declared` bytes uncompressed,
/// with a footer that agrees, and the data directory it was imported into.
fn import_of_a_page_declaring(tmp: &Path, declared: usize) -> (DataDir, String) {
    let snapshot = tmp.join("declaring.parquet");
    write_page_declaring(&snapshot, Some(declared), true);
    let dir = DataDir::open(&tmp.join("data")).expect("dir");
    let message = parquet_error(&dir, &snapshot);
    (dir, message)
}

/// A page declaring 300 MiB, with a footer that agrees: over the cap for one page, refused.
#[test]
fn a_page_declaring_more_than_the_page_cap_is_refused_even_when_the_footer_agrees() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (dir, message) = import_of_a_page_declaring(tmp.path(), 300 << 20);
    assert!(
        message.contains("column `price`, row group 0")
            && message.contains("declares 314572800 bytes uncompressed, over the 256 MiB limit"),
        "{message}"
    );
    // The same file with the writer's own page headers imports: the check refuses the size,
    // not the way the file was written.
    let honest = tmp.path().join("honest.parquet");
    write_page_declaring(&honest, None, false);
    let report = dir.import(&honest).expect("honest pages import");
    assert_eq!(report.items, 100);
}

/// A Snappy page declaring 50 MiB, under the cap and with a footer that agrees, but written
/// from a few dozen compressed bytes: Snappy cannot expand them past 22 times, so the page is
/// refused before the crate zero-fills 50 MiB for it.
#[test]
fn a_snappy_page_declaring_more_than_its_bytes_can_expand_to_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (dir, message) = import_of_a_page_declaring(tmp.path(), 50 << 20);
    assert!(
        message.contains("column `price`, row group 0")
            && message
                .contains("declares 52428800 bytes uncompressed, more than Snappy can expand"),
        "{message}"
    );
    // Snappy's best case, a page of one repeated value (no dictionary), 21.3 times smaller:
    // within the bound, imported.
    let constant = tmp.path().join("constant.parquet");
    let rows = 300_000;
    write_parquet_with(
        &constant,
        "message items { required binary id (UTF8); required double price; }",
        &[
            Data::Str((0..rows).map(|i| Some(format!("i{i}"))).collect()),
            Data::F64(vec![Some(9.5); rows]),
        ],
        rows,
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_dictionary_enabled(false)
            .build(),
    );
    use parquet::file::reader::FileReader;
    let written = parquet::file::reader::SerializedFileReader::new(
        std::fs::File::open(&constant).expect("open"),
    )
    .expect("reader");
    let chunk = written.metadata().row_group(0).column(1).clone();
    assert!(
        chunk.uncompressed_size() > 20 * chunk.compressed_size(),
        "{} bytes from {}",
        chunk.uncompressed_size(),
        chunk.compressed_size()
    );
    let report = dir.import(&constant).expect("Snappy's best case imports");
    assert_eq!(report.items, rows as u64);
}

/// Found by the `items_parquet` fuzz target: an 838-byte footer whose schema gives a group
/// about 900 million children. The parquet crate reserves a vector of that capacity (7.2 GB)
/// before it reads them; with Linux's default overcommit the reservation stays virtual and the
/// crate then fails on the missing children, which the import reports. (Under strict
/// overcommit the reservation itself would fail and abort the process: this test would then
/// crash instead of passing.)
#[test]
fn a_footer_declaring_millions_of_schema_children_is_an_error() {
    let message = damaged_import_error("damaged-footer-schema-declares-900m-children.parquet");
    assert!(message.contains("not a readable Parquet file"), "{message}");
}

/// Found by the `items_parquet` fuzz target: a page header whose Thrift fields declare more
/// bytes than the file has kept the parquet crate reading the end of the file, one empty read
/// at a time (25 s for this 900-byte file); the header is now read only up to its column
/// chunk's end, and reading past it is an error.
#[test]
fn a_page_header_running_past_its_chunk_is_an_error() {
    let message = damaged_import_error("damaged-page-header-skips-past-the-file.parquet");
    assert!(
        message.contains("column `id`, row group 0") && message.contains("past the end of"),
        "{message}"
    );
}

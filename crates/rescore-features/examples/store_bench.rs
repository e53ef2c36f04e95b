//! Embedded item store at scale: build time, disk size, lookup latency of 1,000-id requests
//! (cold and warm), anonymous resident memory, and exactness of the stored values.
//!
//! ```sh
//! cargo run --release -p rescore-features --example store_bench -- 1000000 /tmp/store-1m
//! cargo run --release -p rescore-features --example store_bench -- 1000000 /tmp/store-1m parquet
//! ```
//! Writes `<dir>/items.jsonl` (N synthetic items of 30 features) unless it exists, builds the
//! store in `<dir>/data`, then measures. With `parquet`, also writes the same items as
//! `<dir>/items.parquet` (snappy, row groups of 131,072 rows; the integer features as INT32,
//! the others DOUBLE) and builds the store from that in `<dir>/data-parquet`; the exactness
//! check still compares against the JSON Lines. Figures in docs/benchmarks.md.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rescore_features::{CacheConfig, CachedItems, DataDir};

const FEATURES: usize = 30;
const IDS_PER_REQUEST: usize = 1000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().ok_or("usage: store_bench N DIR")?.parse()?;
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: store_bench N DIR")?);
    std::fs::create_dir_all(&dir)?;
    let snapshot = dir.join("items.jsonl");
    if !snapshot.exists() {
        let started = Instant::now();
        generate(&snapshot, n)?;
        eprintln!(
            "generated {} in {:.1}s",
            snapshot.display(),
            started.elapsed().as_secs_f64()
        );
    }
    let parquet = args.next().as_deref() == Some("parquet");
    let source = if parquet {
        let path = dir.join("items.parquet");
        if !path.exists() {
            let started = Instant::now();
            generate_parquet(&path, n)?;
            eprintln!(
                "generated {} in {:.1}s",
                path.display(),
                started.elapsed().as_secs_f64()
            );
        }
        path
    } else {
        snapshot.clone()
    };
    let snapshot_bytes = std::fs::metadata(&source)?.len();
    let data = DataDir::open(&dir.join(if parquet { "data-parquet" } else { "data" }))?;
    let report = data.import(&source)?;
    println!(
        "build: {} items, snapshot {:.0} MB, {:.1} s ({:.0} MB/s), store file {:.0} MB",
        report.items,
        snapshot_bytes as f64 / 1e6,
        report.seconds,
        snapshot_bytes as f64 / 1e6 / report.seconds,
        report.bytes as f64 / 1e6
    );
    println!("RssAnon after build: {} kB", rss_anon_kb());

    let read_cache = 16 << 20;
    let cache = CacheConfig {
        max_bytes: 64 << 20,
        ..CacheConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);

    // Exactness: every value of a sample of lines, bit for bit.
    {
        let generation = data.open_current(read_cache)?.ok_or("no generation")?;
        let file = std::io::BufReader::new(std::fs::File::open(&snapshot)?);
        let mut checked = 0;
        for line in file.lines().step_by((n / 2000).max(1)) {
            let v: serde_json::Value = serde_json::from_str(&line?)?;
            let id = v["id"].as_str().ok_or("id")?;
            let record = generation.get(id)?.ok_or("missing item")?;
            for (name, value) in v["features"].as_object().ok_or("features")? {
                let col = generation.columns().column(name).ok_or("column")?;
                let want = value.as_f64().ok_or("number")?;
                assert_eq!(
                    record.value(col).map(f64::to_bits),
                    Some(want.to_bits()),
                    "{id} {name}"
                );
                checked += 1;
            }
        }
        println!("exactness: {checked} values bit-identical to the snapshot");
    }

    let dropped = std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
    let generation = data.open_current(read_cache)?.ok_or("no generation")?;
    let items = Arc::new(CachedItems::embedded(generation, &cache));
    let request = |ids: &[String]| -> Duration {
        let started = Instant::now();
        let view = runtime.block_on(items.for_request(
            ids.iter().map(String::as_str),
            Instant::now() + Duration::from_secs(10),
        ));
        let found = ids.iter().filter(|id| view.get(id).is_some()).count();
        assert_eq!(found, ids.len());
        started.elapsed()
    };
    let random_ids = |rng: &mut rand_chacha::ChaCha8Rng| -> Vec<String> {
        (0..IDS_PER_REQUEST)
            .map(|_| format!("item{}", rng.gen_range(0..n)))
            .collect()
    };
    let cold: Vec<Duration> = (0..100).map(|_| request(&random_ids(&mut rng))).collect();
    print_latency(
        &format!(
            "cold (page cache {}, item cache empty, random ids)",
            if dropped { "dropped" } else { "NOT dropped" }
        ),
        cold,
    );
    // Warm the OS page cache with the whole file, then fresh ids (item cache misses).
    std::io::copy(
        &mut std::fs::File::open(items_path(&data)?)?,
        &mut std::io::sink(),
    )?;
    let warm: Vec<Duration> = (0..300).map(|_| request(&random_ids(&mut rng))).collect();
    print_latency("warm store, item cache misses (random ids)", warm);
    let same = random_ids(&mut rng);
    request(&same);
    let hot: Vec<Duration> = (0..300).map(|_| request(&same)).collect();
    print_latency("item cache hot (the same 1,000 ids)", hot);
    let (entries, bytes) = items.cache_usage();
    println!(
        "RssAnon serving: {} kB (item cache {entries} entries, {:.1} MB weighed; redb read cache {} MB)",
        rss_anon_kb(),
        bytes as f64 / 1e6,
        read_cache >> 20
    );
    Ok(())
}

fn items_path(data: &DataDir) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    Ok(data.current()?.ok_or("no generation")?.1)
}

fn print_latency(what: &str, mut d: Vec<Duration>) {
    d.sort();
    let q = |p: f64| d[((d.len() as f64 * p) as usize).min(d.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "lookup of 1,000 ids, {what}: p50 {:.2} ms, p99 {:.2} ms ({} requests)",
        q(0.5),
        q(0.99),
        d.len()
    );
}

fn rss_anon_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The items of [`generate`] (same seed, same draws) as Parquet.
fn generate_parquet(path: &Path, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type};
    const GROUP: usize = 131_072;
    let mut schema = String::from("message items { REQUIRED BYTE_ARRAY id (STRING);");
    for f in 0..FEATURES {
        let ty = if f % 3 == 0 { "INT32" } else { "DOUBLE" };
        schema.push_str(&format!(" REQUIRED {ty} f{f};"));
    }
    schema.push('}');
    let schema = Arc::new(parquet::schema::parser::parse_message_type(&schema)?);
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut writer = parquet::file::writer::SerializedFileWriter::new(
        std::fs::File::create(path)?,
        schema,
        Arc::new(props),
    )?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let mut start = 0;
    while start < n {
        let end = (start + GROUP).min(n);
        let ids: Vec<ByteArray> = (start..end)
            .map(|i| ByteArray::from(format!("item{i}").as_str()))
            .collect();
        let mut columns: Vec<Vec<f64>> = (0..FEATURES)
            .map(|_| Vec::with_capacity(end - start))
            .collect();
        for _ in start..end {
            for (f, column) in columns.iter_mut().enumerate() {
                column.push(value(&mut rng, f));
            }
        }
        let mut group = writer.next_row_group()?;
        let mut c = group.next_column()?.ok_or("id column")?;
        c.typed::<ByteArrayType>().write_batch(&ids, None, None)?;
        c.close()?;
        for (f, column) in columns.iter().enumerate() {
            let mut c = group.next_column()?.ok_or("feature column")?;
            if f % 3 == 0 {
                let ints: Vec<i32> = column.iter().map(|v| *v as i32).collect();
                c.typed::<Int32Type>().write_batch(&ints, None, None)?;
            } else {
                c.typed::<DoubleType>().write_batch(column, None, None)?;
            }
            c.close()?;
        }
        group.close()?;
        start = end;
    }
    writer.close()?;
    Ok(())
}

fn value(rng: &mut rand_chacha::ChaCha8Rng, f: usize) -> f64 {
    match f % 3 {
        0 => rng.gen_range(0..5000) as f64,
        1 => (rng.gen_range(0.0..10_000.0f64) * 100.0).round() / 100.0,
        _ => rng.gen::<f64>() * 1e3 - 500.0,
    }
}

/// Synthetic items: 10 integer ids (categories, counts), 10 prices with cents, 10 arbitrary
/// doubles (full 17-digit precision, so exactness is tested on values f32 cannot hold).
fn generate(path: &Path, n: usize) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let mut line = String::with_capacity(1024);
    for i in 0..n {
        line.clear();
        line.push_str(&format!("{{\"id\":\"item{i}\",\"features\":{{"));
        for f in 0..FEATURES {
            if f > 0 {
                line.push(',');
            }
            let value = value(&mut rng, f);
            line.push_str(&format!("\"f{f}\":{value:?}"));
        }
        line.push_str("}}\n");
        out.write_all(line.as_bytes())?;
    }
    out.flush()
}

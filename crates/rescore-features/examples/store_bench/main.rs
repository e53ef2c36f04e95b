//! The embedded item store at scale, the mapped layout (ADR 0008) beside the redb layout it
//! replaced (ADR 0006), on the same items in one run: build time from Parquet and JSON Lines,
//! file size, exactness, and 1,000-id lookups as serving does them, for uniform and Zipf(1.0)
//! ids, with the store's pages in the page cache or evicted (`posix_fadvise(DONTNEED)` on the
//! store's file only), item cache empty or warm.
//!
//! ```sh
//! cargo run --release -p rescore-features --example store_bench -- 1000000 /tmp/sb1m
//! cargo run --release -p rescore-features --example store_bench -- 20000 /tmp/sb-smoke --smoke
//! ```
//! Writes `<dir>/items.jsonl` and `<dir>/items.parquet` (N synthetic items of 30 features; the
//! same values) unless they exist, builds the mapped store from each (`items import`'s code
//! path) into `<dir>/mapped-parquet` and `<dir>/mapped-jsonl`, writes the same items into the
//! redb layout `<dir>/old.redb` (from the mapped rows, no parsing), then measures. `--smoke`
//! runs few requests (for the test command). Figures in docs/benchmarks.md.

mod data;
mod old_redb;

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rescore_features::{CacheConfig, CachedItems, DataDir};

const IDS_PER_REQUEST: usize = 1000;
type Rng8 = rand_chacha::ChaCha8Rng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: store_bench N DIR [--smoke]";
    let n: usize = args.first().ok_or(usage)?.parse()?;
    let dir = std::path::PathBuf::from(args.get(1).ok_or(usage)?);
    let smoke = args.iter().any(|a| a == "--smoke");
    let requests = if smoke { 5 } else { 200 };
    std::fs::create_dir_all(&dir)?;
    let jsonl = dir.join("items.jsonl");
    let parquet = dir.join("items.parquet");
    if !jsonl.exists() {
        let started = Instant::now();
        data::generate(&jsonl, n)?;
        eprintln!(
            "generated {} in {:.1}s",
            jsonl.display(),
            started.elapsed().as_secs_f64()
        );
    }
    if !parquet.exists() {
        let started = Instant::now();
        data::generate_parquet(&parquet, n)?;
        eprintln!(
            "generated {} in {:.1}s",
            parquet.display(),
            started.elapsed().as_secs_f64()
        );
    }

    // Builds of the mapped layout, from each snapshot format.
    println!("| snapshot | file | build | store file | RssAnon of the bench after |");
    println!("|---|---|---|---|---|");
    let mut data_dir = None;
    for (label, source, sub) in [
        ("Parquet", &parquet, "mapped-parquet"),
        ("JSON Lines", &jsonl, "mapped-jsonl"),
    ] {
        let path = dir.join(sub);
        let _ = std::fs::remove_dir_all(&path);
        let data = DataDir::open(&path)?;
        let report = data.import(source)?;
        println!(
            "| {label} | {:.0} MB | {:.1} s | {:.0} MB | {:.0} MB |",
            std::fs::metadata(source)?.len() as f64 / 1e6,
            report.seconds,
            report.bytes as f64 / 1e6,
            rss_anon_kb() as f64 / 1e3
        );
        assert_eq!(report.items, n as u64);
        if data_dir.is_none() {
            data_dir = Some(data);
        } else {
            // The same items: one copy is enough for the lookups.
            std::fs::remove_dir_all(&path)?;
        }
    }
    let data = data_dir.ok_or("no build")?;
    let generation = data.open_current(0)?.ok_or("no generation")?;
    let mapped_file = data.current()?.ok_or("no generation")?.1;
    let old_file = dir.join("old.redb");
    if !old_file.exists() {
        let started = Instant::now();
        old_redb::build(&generation, &old_file)?;
        eprintln!(
            "redb layout written in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    println!(
        "\nstore files: mapped {:.0} MB, redb {:.0} MB",
        std::fs::metadata(&mapped_file)?.len() as f64 / 1e6,
        std::fs::metadata(&old_file)?.len() as f64 / 1e6
    );

    let old = old_redb::OldStore::open(&old_file, 16 << 20, CacheConfig::default().max_bytes)?;
    // Exactness: every value of a sample of lines, bit for bit, in both layouts.
    {
        let file = std::io::BufReader::new(std::fs::File::open(&jsonl)?);
        let mut checked = 0;
        for line in file.lines().step_by((n / 2000).max(1)) {
            let v: serde_json::Value = serde_json::from_str(&line?)?;
            let id = v["id"].as_str().ok_or("id")?;
            let row = generation.row(id).ok_or("missing item")?;
            let (old_rows, _) = old.get_many(&[id.to_string()]);
            let old_row = old_rows[0].clone().ok_or("missing in redb")?;
            for (name, value) in v["features"].as_object().ok_or("features")? {
                let col = generation.columns().column(name).ok_or("column")? as usize;
                let want = value.as_f64().ok_or("number")?.to_bits();
                assert_eq!(row[col].to_bits(), want, "{id} {name}");
                assert_eq!(old_row[col].to_bits(), want, "{id} {name} (redb)");
                checked += 1;
            }
        }
        println!("exactness: {checked} values bit-identical to the snapshot in both layouts");
    }
    old.clear();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let items = Arc::new(CachedItems::embedded(generation, &CacheConfig::default()));
    let new_request = |ids: &[String]| -> Duration {
        let started = Instant::now();
        let view = runtime.block_on(items.for_request(
            ids.iter().map(String::as_str),
            Instant::now() + Duration::from_secs(10),
        ));
        let rows = view.get_many(ids.iter().map(String::as_str));
        let took = started.elapsed();
        assert!(rows.iter().all(Option::is_some));
        took
    };
    let old_request = |ids: &[String]| -> (Duration, usize) {
        let started = Instant::now();
        let (rows, hits) = old.get_many(ids);
        let took = started.elapsed();
        assert!(rows.iter().all(Option::is_some));
        (took, hits)
    };
    let evict = |path: &Path| -> Result<(), Box<dyn std::error::Error>> {
        let file = std::fs::File::open(path)?;
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)?;
        Ok(())
    };
    let load_pages = |path: &Path| -> Result<(), Box<dyn std::error::Error>> {
        std::io::copy(&mut std::fs::File::open(path)?, &mut std::io::sink())?;
        Ok(())
    };
    let mut rng = Rng8::seed_from_u64(7);
    let uniform = |rng: &mut Rng8| -> Vec<String> {
        (0..IDS_PER_REQUEST)
            .map(|_| format!("item{}", rng.gen_range(0..n)))
            .collect()
    };
    let zipf = |rng: &mut Rng8| -> Vec<String> {
        (0..IDS_PER_REQUEST)
            .map(|_| format!("item{}", zipf_id(rng, n)))
            .collect()
    };

    println!(
        "\n| 1,000 ids, {n} items | redb + item cache (old) p50 / p99 | mapped (new) p50 / p99 |"
    );
    println!("|---|---|---|");
    let row = |case: &str, old: Vec<Duration>, new: Vec<Duration>| {
        println!("| {case} | {} | {} |", quantiles(old), quantiles(new));
    };

    // Uniform ids, store pages in the page cache, item cache empty.
    load_pages(&old_file)?;
    load_pages(&mapped_file)?;
    let mut old_t = Vec::new();
    let mut new_t = Vec::new();
    for _ in 0..requests {
        let ids = uniform(&mut rng);
        old.clear();
        old_t.push(old_request(&ids).0);
        new_t.push(new_request(&ids));
    }
    row("uniform, pages cached, item cache empty", old_t, new_t);

    // The same 1,000 ids again and again: item cache hot (old), pages hot (new).
    let same = uniform(&mut rng);
    old.clear();
    old_request(&same);
    new_request(&same);
    let old_t = (0..requests).map(|_| old_request(&same).0).collect();
    let new_t = (0..requests).map(|_| new_request(&same)).collect();
    row("the same 1,000 ids (item cache hot)", old_t, new_t);

    // Zipf(1.0) ids, item cache at its default size and kept between requests.
    old.clear();
    let (mut hits, mut asked) = (0, 0);
    let mut old_t = Vec::new();
    let mut new_t = Vec::new();
    for i in 0..requests * 2 {
        let ids = zipf(&mut rng);
        let (t, h) = old_request(&ids);
        let tn = new_request(&ids);
        if i >= requests {
            old_t.push(t);
            new_t.push(tn);
            hits += h;
            asked += ids.len();
        }
    }
    row(
        &format!(
            "Zipf(1.0), pages cached, item cache 64 MiB kept (old hit ratio {:.2})",
            hits as f64 / asked.max(1) as f64
        ),
        old_t,
        new_t,
    );

    // Uniform ids, the store's pages evicted before every request, item cache empty.
    let cold_requests = requests.min(100);
    let mut old_t = Vec::new();
    let mut new_t = Vec::new();
    for _ in 0..cold_requests {
        let ids = uniform(&mut rng);
        // redb's own read cache (anonymous memory) would survive the eviction: a fresh handle.
        let fresh =
            old_redb::OldStore::open(&old_file, 16 << 20, CacheConfig::default().max_bytes)?;
        evict(&old_file)?;
        let started = Instant::now();
        let (rows, _) = fresh.get_many(&ids);
        old_t.push(started.elapsed());
        assert!(rows.iter().all(Option::is_some));
        // Pages mapped by this process are not evicted by fadvise: release them first.
        items.release_pages()?;
        evict(&mapped_file)?;
        new_t.push(new_request(&ids));
    }
    row("uniform, pages evicted (fadvise DONTNEED; redb reopened, mapping released), item cache empty", old_t, new_t);
    // The same without the mapped store's cold prefetch (rounds of MADV_WILLNEED): the
    // lookups fault their pages in one at a time.
    let mut took: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for (times, prefetch) in took.iter_mut().zip([false, true]) {
        items.set_cold_prefetch(prefetch);
        for _ in 0..cold_requests {
            let ids = uniform(&mut rng);
            items.release_pages()?;
            evict(&mapped_file)?;
            times.push(new_request(&ids));
        }
    }
    let [off, on] = took;
    println!(
        "| uniform, pages evicted, mapped: one fault at a time (left) vs cold prefetch (right) | {} | {} |",
        quantiles(off),
        quantiles(on)
    );

    println!("\nRssAnon at the end: {:.0} MB", rss_anon_kb() as f64 / 1e3);
    Ok(())
}

/// A Zipf(1.0) draw over `n` ranks (continuous inverse of the harmonic CDF:
/// rank = floor((n+1)^u) - 1), spread over the ids by a fixed permutation so that popular items
/// are not neighbours in id order.
fn zipf_id(rng: &mut Rng8, n: usize) -> usize {
    let u: f64 = rng.gen();
    let rank = (((n as f64 + 1.0).powf(u)).floor() as usize)
        .saturating_sub(1)
        .min(n - 1);
    ((rank as u128 * 2_654_435_761u128) % n as u128) as usize
}

fn quantiles(mut d: Vec<Duration>) -> String {
    d.sort();
    let q = |p: f64| d[((d.len() as f64 * p) as usize).min(d.len() - 1)].as_secs_f64() * 1e3;
    format!("{:.2} / {:.2} ms", q(0.5), q(0.99))
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

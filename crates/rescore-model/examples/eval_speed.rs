//! Quick timing of one engine on the cached bench models (min and median of N calls), for
//! tuning on a busy machine where the fastest call is the least disturbed one.
//! `cargo run --release -p rescore-model --example eval_speed -- 500x63 1000 native 30`
use rescore_model::{EnginePreference, Model, ModelHeader, NativeModel};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let shape = args.get(1).map(String::as_str).unwrap_or("500x63");
    let n: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(1000);
    let engine = args.get(3).map(String::as_str).unwrap_or("native");
    let reps: usize = args.get(4).and_then(|v| v.parse().ok()).unwrap_or(30);
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text =
        std::fs::read_to_string(dir.join(format!("../../target/tmp/bench-lambdarank-{shape}.txt")))
            .expect("run the evaluators bench once to train the models");
    let header = ModelHeader::parse(&text).expect("header");
    let nf = header.num_features;
    let test =
        std::fs::read_to_string(dir.join("../../../shared/data/letor/rank.test")).expect("letor");
    let parsed: Vec<Vec<f64>> = test
        .lines()
        .map(|line| {
            let mut row = vec![0.0; nf];
            for pair in line.split_whitespace().skip(1) {
                let (i, v) = pair.split_once(':').expect("idx:value");
                let i: usize = i.parse().expect("index");
                if i < nf {
                    row[i] = v.parse().expect("value");
                }
            }
            row
        })
        .collect();
    let rows: Vec<f64> = parsed.iter().cycle().take(n).flatten().copied().collect();
    let reference = Model::from_text(&text, EnginePreference::LightGbm).expect("lightgbm3");
    let native = NativeModel::from_text(&text, &header).expect("native");
    let want = reference.predict(&rows).expect("predict");
    let got = native.predict(&rows);
    let worst = want
        .iter()
        .zip(&got)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst <= 1e-9, "native differs by {worst}");
    let cpu_before = cpu_ticks();
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = std::time::Instant::now();
        let out = match engine {
            "native" => native.predict(&rows),
            _ => reference.predict(&rows).expect("predict"),
        };
        times.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(out);
    }
    let cpu_ms = (cpu_ticks() - cpu_before) as f64 * 10.0 / reps as f64;
    times.sort_by(f64::total_cmp);
    println!(
        "{shape} rows={n} {engine}: min {:.3} ms, median {:.3} ms, cpu {cpu_ms:.3} ms/call",
        times[0],
        times[reps / 2]
    );
}

/// User + system CPU time of this process in clock ticks (1/100 s), from /proc/self/stat:
/// unlike wall time, it does not count the time other processes hold the core.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
}

//! Latency of one rescore request as a compiled client sees it: POSTs the same JSON body over
//! one keep-alive connection, decodes each answer, and prints the latencies (JSON) for
//! bench/e2e_compare.py. A Python client adds ~1 ms of its own (float parsing, http.client)
//! to every call, which belongs to the client, not to the sidecar.
//! `cargo run --release -p rescore-sidecar --example rescore_latency -- ADDR BODY_FILE N`
use std::time::Instant;

#[derive(serde::Deserialize)]
struct Answer {
    scores: Vec<f64>,
    took_us: u64,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, body_file, repeat] = &args[..] else {
        anyhow::bail!("usage: rescore_latency ADDR BODY_FILE REPEAT");
    };
    let repeat: usize = repeat.parse()?;
    let body = std::fs::read(body_file)?;
    let url = format!("http://{addr}/v1/rescore");
    let agent = ureq::AgentBuilder::new().build();
    let call = || -> anyhow::Result<Answer> {
        let response = agent
            .post(&url)
            .set("content-type", "application/json")
            .send_bytes(&body)?;
        let mut bytes = Vec::with_capacity(32 * 1024);
        std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes)?;
        Ok(serde_json::from_slice(&bytes)?)
    };
    // The first call meets cold caches (items read from the store, bins made).
    let started = Instant::now();
    let first = call()?;
    let first_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut millis = Vec::with_capacity(repeat);
    let mut took = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let started = Instant::now();
        let answer = call()?;
        millis.push(started.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(
            answer.scores.len() == first.scores.len(),
            "answers differ in length"
        );
        took.push(answer.took_us as f64);
    }
    millis.sort_by(f64::total_cmp);
    took.sort_by(f64::total_cmp);
    let at = |v: &[f64], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    println!(
        "{}",
        serde_json::json!({
            "median_ms": at(&millis, 0.5),
            "p10_ms": at(&millis, 0.1),
            "p90_ms": at(&millis, 0.9),
            "server_took_us_median": at(&took, 0.5),
            "first_ms": first_ms,
            "first_took_us": first.took_us,
            "scores": first.scores,
        })
    );
    Ok(())
}

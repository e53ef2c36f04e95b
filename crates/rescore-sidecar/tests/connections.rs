//! The API port under hostile or broken clients, against the real binary: malformed HTTP gets the
//! contract's JSON error, slow heads and bodies are cut off at their deadlines, and connections
//! beyond `server.max_connections` are answered 503 and closed, while normal requests are served.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Sidecar, TempDir};

fn sidecar(dir: &TempDir, server_toml: &str) -> Sidecar {
    let config = dir.path().join("sidecar.toml");
    std::fs::write(&config, format!("[server]\n{server_toml}\n")).expect("config");
    let models = common::repo_root().join("models");
    Sidecar::start(&[
        "--models",
        models.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
    ])
}

fn addr(s: &Sidecar) -> String {
    s.base.trim_start_matches("http://").to_string()
}

/// Sends `bytes` on a new connection and reads until the server closes it (at most 10 s).
fn exchange(s: &Sidecar, bytes: &[u8]) -> String {
    let mut c = TcpStream::connect(addr(s)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    c.write_all(bytes).expect("write");
    let mut out = Vec::new();
    c.read_to_end(&mut out)
        .expect("the server closes the connection");
    String::from_utf8_lossy(&out).into_owned()
}

/// Status code and JSON error code of a raw response.
fn status_and_code(raw: &str) -> (u16, String) {
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or("");
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {raw:?}"));
    (
        status,
        json["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

fn healthy(s: &Sidecar) {
    let (status, body) = s.post(
        "/v1/rescore",
        r#"{"model": "marketplace", "hits": [{"id": "i1", "score": 1.0}]}"#,
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn malformed_http_gets_a_json_error() {
    let dir = TempDir::new("conn-malformed");
    let s = sidecar(&dir, "");
    // a TLS ClientHello's first bytes on the plain port
    let raw = exchange(
        &s,
        &[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ],
    );
    assert_eq!(
        status_and_code(&raw),
        (400, "malformed_http".into()),
        "{raw}"
    );
    assert!(raw.contains("TLS"), "{raw}");
    let raw = exchange(
        &s,
        b"POST /v1/rescore HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    );
    assert_eq!(
        status_and_code(&raw),
        (400, "malformed_http".into()),
        "{raw}"
    );
    assert!(raw.contains("invalid Content-Length [-1]"), "{raw}");
    let raw = exchange(&s, b"this is not http\r\n\r\n");
    assert_eq!(
        status_and_code(&raw),
        (400, "malformed_http".into()),
        "{raw}"
    );
    let mut big = b"GET /healthz HTTP/1.1\r\nx-pad: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 70 * 1024));
    let raw = exchange(&s, &big);
    assert_eq!(
        status_and_code(&raw),
        (431, "headers_too_large".into()),
        "{raw}"
    );
    healthy(&s);
}

#[test]
fn slow_heads_are_closed_at_the_deadline_and_do_not_hold_up_others() {
    let dir = TempDir::new("conn-slow-head");
    let s = sidecar(&dir, "header_timeout_ms = 500\nmax_connections = 1000");
    let mut slow: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut c = TcpStream::connect(addr(&s)).expect("connect");
            c.write_all(b"POST /v1/rescore HTTP/1.1\r\nHost: x\r\nContent-Le")
                .expect("write");
            c
        })
        .collect();
    healthy(&s); // served while 300 heads are half-sent
    for c in &mut slow {
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "closed without an answer (no request to answer)");
    }
    healthy(&s);
}

#[test]
fn a_dripping_body_gets_408_at_the_body_deadline() {
    let dir = TempDir::new("conn-drip");
    let s = sidecar(&dir, "body_timeout_ms = 500");
    let mut c = TcpStream::connect(addr(&s)).expect("connect");
    c.write_all(b"POST /v1/rescore HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{")
        .expect("write");
    // one byte every 100 ms: never idle for long, so only a deadline stops it
    let mut writer = c.try_clone().expect("clone");
    let drip = std::thread::spawn(move || {
        for _ in 0..100 {
            if writer.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    drop(c);
    drip.join().expect("drip");
    let raw = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(
        status_and_code(&raw),
        (408, "request_timeout".into()),
        "{raw}"
    );
    assert!(raw.contains("server.body_timeout_ms"), "{raw}");
    healthy(&s);
}

#[test]
fn the_budget_counts_the_time_the_body_took_to_arrive() {
    let dir = TempDir::new("conn-slow-body");
    let s = sidecar(&dir, "body_timeout_ms = 5000");
    let body = r#"{"model": "marketplace", "timeout_ms": 200, "hits": [{"id": "i1", "score": 3.5}, {"id": "i2", "score": 1.25}]}"#;
    let mut c = TcpStream::connect(addr(&s)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "POST /v1/rescore HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(20);
    c.write_all(format!("{head}{first}").as_bytes())
        .expect("write");
    // The rest of the body arrives after more than its 200 ms budget.
    std::thread::sleep(Duration::from_millis(400));
    c.write_all(rest.as_bytes()).expect("write");
    let mut out = Vec::new();
    c.read_to_end(&mut out).expect("answer");
    let raw = String::from_utf8_lossy(&out).into_owned();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let answer: serde_json::Value =
        serde_json::from_str(raw.split("\r\n\r\n").nth(1).unwrap_or("")).expect("JSON answer");
    assert_eq!(answer["fallback"], "timeout", "{raw}");
    assert_eq!(
        answer["scores"],
        serde_json::json!([3.5, 1.25]),
        "the baseline"
    );
    let took_us = answer["took_us"].as_u64().expect("took_us");
    assert!(
        took_us >= 400_000,
        "took_us counts the body's arrival: {took_us}"
    );
    healthy(&s);
}

#[test]
fn the_heap_is_trimmed_once_a_burst_has_ended() {
    let dir = TempDir::new("conn-heap-trim");
    let s = sidecar(&dir, "heap_trim_interval_ms = 1000");
    let trims =
        || common::metric(&s.get_text("/metrics"), "rescore_heap_trims_total").unwrap_or(0.0);
    assert_eq!(trims(), 0.0, "no burst yet");
    // A burst: well over the 100 answers an interval needs to count as one.
    for _ in 0..600 {
        healthy(&s);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while trims() < 1.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        trims() >= 1.0,
        "the quiet intervals after the burst trim the heap"
    );
    healthy(&s);
}

#[test]
fn connections_over_the_limit_are_answered_503_and_closed() {
    let dir = TempDir::new("conn-limit");
    let s = sidecar(&dir, "max_connections = 8\nheader_timeout_ms = 5000");
    // Eight connections that send nothing. A connection the server still counts from before
    // (the readiness polls of the harness, until it sees them closed) can take a slot for a
    // moment, and one of these is then refused: replace it until all eight are held.
    let mut held: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(addr(&s)).expect("connect"))
        .collect();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let mut all_held = true;
        for c in &mut held {
            c.set_nonblocking(true).expect("nonblocking");
            let mut byte = [0u8; 1];
            let refused =
                !matches!(c.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
            if refused {
                all_held = false;
                *c = TcpStream::connect(addr(&s)).expect("connect");
            }
        }
        if all_held {
            break;
        }
    }
    let raw = exchange(
        &s,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        status_and_code(&raw),
        (503, "too_many_connections".into()),
        "{raw}"
    );
    assert!(raw.contains("server.max_connections"), "{raw}");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    healthy(&s);
}

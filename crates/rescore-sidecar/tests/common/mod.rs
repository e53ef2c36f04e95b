//! Starts the real `rescore-sidecar` binary on a free loopback port and talks HTTP to it.

#![allow(dead_code)]

pub mod redis;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn golden_models() -> PathBuf {
    repo_root().join("tests/fixtures/golden/models")
}

pub fn golden_cases() -> Vec<GoldenCase> {
    let dir = repo_root().join("tests/fixtures/golden/cases");
    let mut cases: Vec<GoldenCase> = std::fs::read_dir(&dir)
        .expect("golden cases directory")
        .map(|e| {
            let path = e.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("readable case");
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect();
    cases.sort_by(|a, b| a.model.cmp(&b.model));
    assert!(
        cases.len() >= 15,
        "expected every golden kind, found {}",
        cases.len()
    );
    cases
}

#[derive(Debug, serde::Deserialize)]
pub struct GoldenCase {
    pub model: String,
    pub objective: String,
    pub features: Vec<String>,
    pub rows: Vec<Vec<Option<f64>>>,
    pub expected: Vec<f64>,
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("rescore-e2e-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Sidecar {
    child: Child,
    pub base: String,
    /// The admin API's base URL, when the sidecar serves it.
    pub admin_base: Option<String>,
    pub log: mpsc::Receiver<String>,
    /// The data directory given to the sidecar when the test did not pass one.
    _data_dir: Option<TempDir>,
}

/// Environment variables of the sidecar that a test must not inherit.
pub const SIDECAR_ENV: &[&str] = &[
    "RESCORE_CONFIG",
    "RESCORE_LISTEN",
    "RESCORE_MODELS",
    "RESCORE_ITEMS",
    "RESCORE_ROUTING",
    "RESCORE_ADMIN_LISTEN",
    "RESCORE_ADMIN_TOKEN",
    "RESCORE_ADMIN_TOKEN_FILE",
    "RESCORE_DATA_DIR",
    "RESCORE_ITEM_STORE",
    "RESCORE_REDIS_URL",
];

impl Sidecar {
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rescore-sidecar"));
        cmd.args(args).env("RUST_LOG", "info");
        for var in SIDECAR_ENV {
            cmd.env_remove(var);
        }
        // Each sidecar builds its embedded store in a scratch data directory of its own.
        let data_dir = (!args.contains(&"--data-dir")
            && !env.iter().any(|(k, _)| *k == "RESCORE_DATA_DIR"))
        .then(|| TempDir::new("data"));
        if let Some(dir) = &data_dir {
            cmd.arg("--data-dir").arg(dir.path());
        }
        if !args.contains(&"--listen") && !env.iter().any(|(k, _)| *k == "RESCORE_LISTEN") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rescore-sidecar");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[sidecar] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let field = |line: &str, key: &str| {
            line.split(key)
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_string)
        };
        let mut admin_base = None;
        let addr = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("sidecar printed no `listening` line");
            if line.contains("admin API listening") {
                admin_base = field(&line, " admin_listen=").map(|a| format!("http://{a}"));
            } else if line.contains("rescore-sidecar listening") {
                break field(&line, " listen=").expect("address");
            }
        };
        let sidecar = Sidecar {
            child,
            base: format!("http://{addr}"),
            admin_base,
            log: rx,
            _data_dir: data_dir,
        };
        sidecar.wait_ready();
        sidecar
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok((200, _)) = self.get("/readyz") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sidecar never became ready");
    }

    pub fn get(&self, path: &str) -> Result<(u16, String), Box<ureq::Error>> {
        into_pair(ureq::get(&format!("{}{path}", self.base)).call())
    }

    pub fn get_text(&self, path: &str) -> String {
        let (status, body) = self.get(path).expect("GET");
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        let (status, text) = into_pair(
            ureq::post(&format!("{}{path}", self.base))
                .set("content-type", "application/json")
                .timeout(Duration::from_secs(60))
                .send_string(body),
        )
        .expect("transport");
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text:.200}"));
        (status, json)
    }

    /// An admin call with a bearer token (`None`: without the header).
    pub fn admin(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let base = self.admin_base.as_ref().expect("the admin API is served");
        let mut req = ureq::request(method, &format!("{base}{path}"))
            .timeout(Duration::from_secs(120))
            .set("content-type", "application/json");
        if let Some(token) = token {
            req = req.set("authorization", &format!("Bearer {token}"));
        }
        let result = match body {
            Some(b) => req.send_string(b),
            None => req.call(),
        };
        let (status, text) = into_pair(result).expect("transport");
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text:.200}"));
        (status, json)
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&self.get_text(path)).expect("JSON")
    }

    /// Polls `/v1/models` until `pred` holds (reloads are asynchronous).
    pub fn wait_models(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let models = self.get_json("/v1/models");
            if pred(&models) {
                return models;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {models}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal by name (`HUP`, `TERM`).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "sidecar did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn into_pair(r: Result<ureq::Response, ureq::Error>) -> Result<(u16, String), Box<ureq::Error>> {
    match r {
        Ok(resp) => {
            let status = resp.status();
            Ok((status, resp.into_string().expect("body")))
        }
        Err(ureq::Error::Status(status, resp)) => Ok((status, resp.into_string().expect("body"))),
        Err(e) => Err(Box::new(e)),
    }
}

/// Runs the binary to completion (for configuration errors and --help).
pub fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rescore-sidecar"));
    cmd.args(args);
    for var in SIDECAR_ENV {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run rescore-sidecar");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A metric sample's value from Prometheus text, e.g. `rescore_fallbacks_total{reason="timeout"}`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.trim().parse().ok())
    })
}

/// Runs an `items` subcommand of the binary to success and returns its JSON summary line.
pub fn items_cmd(args: &[&str]) -> serde_json::Value {
    let (code, out) = run_to_end(args, &[]);
    assert_eq!(code, 0, "{args:?}: {out}");
    let last = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("summary");
    serde_json::from_str(last).expect("json summary")
}

/// Sets the flag when dropped, also while the test body unwinds from a failed assertion:
/// `thread::scope` joins its threads before it re-raises the panic, so a request loop
/// waiting for this flag would otherwise keep a failed test running forever.
pub struct StopOnDrop<'a>(pub &'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

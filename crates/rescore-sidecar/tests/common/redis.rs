//! A `redis-server` started by a test (scripts/setup.sh installs it).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` of this test's own, without persistence, on a loopback port.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    /// Arguments beyond port, bind and no persistence (cluster mode).
    extra: Vec<String>,
}

impl Redis {
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    pub fn start_with(extra: Vec<String>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let mut redis = Redis {
            child: None,
            port,
            extra,
        };
        redis.restart();
        redis
    }

    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/setup.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.command(&["PING"]).is_some_and(|r| r == "+PONG") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Sends a signal to the server (`STOP` pauses it: connections stay open, nothing is
    /// answered; `CONT` resumes it).
    pub fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("redis-server running");
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// One command over RESP; the raw first reply line, or the bulk string's contents.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(out.as_bytes()).ok()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(rest) = text.strip_prefix('$') {
                let (len, body) = rest.split_once("\r\n")?;
                let len: i64 = len.parse().ok()?;
                if len < 0 {
                    return Some("(nil)".into());
                }
                if body.len() >= len as usize + 2 {
                    return Some(body[..len as usize].to_string());
                }
            } else if text.ends_with("\r\n") {
                return Some(text.trim_end().to_string());
            }
        }
        None
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster of three primaries (no replicas) on loopback ports, made by
/// `redis-cli --cluster create`. Nodes keep serving their slots while another is down
/// (`cluster-require-full-coverage no`).
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
    _dir: super::TempDir,
}

impl RedisCluster {
    pub fn start() -> Self {
        let dir = super::TempDir::new("redis-cluster");
        let nodes: Vec<Redis> = (0..3)
            .map(|i| {
                Redis::start_with(vec![
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    format!("nodes-{i}.conf"),
                    "--cluster-node-timeout".into(),
                    "2000".into(),
                    "--cluster-require-full-coverage".into(),
                    "no".into(),
                    "--dir".into(),
                    dir.path().to_str().expect("utf-8").into(),
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli (scripts/setup.sh installs it)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            loop {
                let info = node.command(&["CLUSTER", "INFO"]).unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster not ok: {info}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes, _dir: dir }
    }

    /// A seed URL: the first node's.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// The index of the node that holds `key` (`EXISTS` answers 1 only there).
    pub fn holder(&self, key: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.command(&["EXISTS", key]).as_deref() == Some(":1"))
    }
}

//! Command line, environment and config file, merged in that order of precedence, then
//! validated before anything binds (docs/configuration.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use rescore_monitor::MonitorConfig;
use rescore_serving::ServingConfig;
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9209";

/// Rescores search hits with LightGBM models over HTTP (docs/api.md).
///
/// Every flag can also be set by its environment variable or by the config file key of the
/// same name; the command line wins over the environment, which wins over the file.
#[derive(Debug, Parser)]
#[command(
    name = "rescore-sidecar",
    version,
    about = "Rescores search hits with LightGBM models over HTTP (docs/api.md)."
)]
pub struct Cli {
    /// Other jobs than serving; without one the binary serves.
    #[command(subcommand)]
    pub command: Option<crate::jobs::Job>,
    /// TOML config file (keys: listen, models, items, [server], [serving], [monitoring]).
    #[arg(long, env = "RESCORE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to serve on [default: 127.0.0.1:9209, loopback only].
    #[arg(long, env = "RESCORE_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Models directory: DIR/<name>/<version>/model.txt [+ manifest.toml]. Without it no model is served.
    #[arg(long, env = "RESCORE_MODELS", value_name = "DIR")]
    pub models: Option<PathBuf>,
    /// Item feature snapshot, JSON Lines: {"id": "...", "features": {"name": number}} per line.
    #[arg(long, env = "RESCORE_ITEMS", value_name = "PATH")]
    pub items: Option<PathBuf>,
}

/// The config file. Relative paths in it are relative to the file's directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub models: Option<PathBuf>,
    pub items: Option<PathBuf>,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub serving: ServingConfig,
    #[serde(default)]
    pub monitoring: MonitorConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Requests with larger bodies get 413.
    pub body_limit_bytes: usize,
    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit_bytes: rescore_server::DEFAULT_BODY_LIMIT,
            shutdown_grace_secs: 10,
        }
    }
}

/// The effective configuration.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub models: Option<PathBuf>,
    pub items: Option<PathBuf>,
    pub server: ServerConfig,
    pub serving: ServingConfig,
    pub monitoring: MonitorConfig,
}

impl Config {
    pub fn resolve(cli: Cli) -> anyhow::Result<Self> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
                let mut file: FileConfig = toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
                let base = path.parent().unwrap_or(Path::new("."));
                file.models = file.models.map(|p| base.join(p));
                file.items = file.items.map(|p| base.join(p));
                file.monitoring.rebase(base);
                file
            }
            None => FileConfig::default(),
        };
        let config = Config {
            listen: cli.listen.or(file.listen).unwrap_or_else(|| {
                DEFAULT_LISTEN
                    .parse()
                    .unwrap_or_else(|_| unreachable!("valid literal"))
            }),
            models: cli.models.or(file.models),
            items: cli.items.or(file.items),
            server: file.server,
            serving: file.serving,
            monitoring: file.monitoring,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(models) = &self.models {
            if !std::fs::metadata(models).is_ok_and(|m| m.is_dir()) {
                anyhow::bail!("--models {}: not a readable directory", models.display());
            }
        }
        if let Some(items) = &self.items {
            if !std::fs::metadata(items).is_ok_and(|m| m.is_file()) {
                anyhow::bail!("--items {}: not a readable file", items.display());
            }
        }
        if self.server.body_limit_bytes < 1024 {
            anyhow::bail!("server.body_limit_bytes must be at least 1024");
        }
        self.serving.validate().map_err(anyhow::Error::msg)?;
        self.monitoring.validate().map_err(anyhow::Error::msg)?;
        if let Some(dir) = self.monitoring.feature_log.dir.as_ref() {
            if self.monitoring.feature_log.enabled {
                std::fs::create_dir_all(dir).map_err(|e| {
                    anyhow::anyhow!("monitoring.feature_log.dir {}: {e}", dir.display())
                })?;
            }
        }
        Ok(())
    }
}

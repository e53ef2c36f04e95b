//! Command line, environment and config file, merged in that order of precedence, then
//! validated before anything binds (docs/configuration.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use rescore_features::{ItemStoreConfig, StoreKind};
use rescore_serving::ServingConfig;
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9209";
pub const DEFAULT_DATA_DIR: &str = "/var/lib/rescore-sidecar";

/// Rescores search hits with LightGBM models over HTTP (docs/api.md).
///
/// Every flag can also be set by its environment variable or by the config file key of the
/// same name; the command line wins over the environment, which wins over the file.
#[derive(Debug, Parser)]
#[command(
    name = "rescore-sidecar",
    version,
    about = "Rescores search hits with LightGBM models over HTTP (docs/api.md). Without a subcommand it serves."
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonFlags,
    /// Address to serve on [default: 127.0.0.1:9209, loopback only].
    #[arg(long, env = "RESCORE_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Models directory: DIR/<name>/<version>/model.txt [+ manifest.toml]. Without it no model is served.
    #[arg(long, env = "RESCORE_MODELS", value_name = "DIR")]
    pub models: Option<PathBuf>,
    /// Item feature snapshot, JSON Lines: {"id": "...", "features": {"name": number}} per line.
    /// Built into (or reused from) the embedded store in --data-dir.
    #[arg(long, env = "RESCORE_ITEMS", value_name = "PATH")]
    pub items: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags shared by serving and the `items` subcommands.
#[derive(Debug, Args)]
pub struct CommonFlags {
    /// TOML config file (keys: listen, models, items, data_dir, [server], [serving], [item_store]).
    #[arg(long, env = "RESCORE_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory of the embedded item store [default: /var/lib/rescore-sidecar].
    #[arg(long, env = "RESCORE_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Item store that serves lookups: embedded or redis [default: embedded].
    #[arg(long, env = "RESCORE_ITEM_STORE", value_name = "KIND", global = true)]
    pub item_store: Option<StoreArg>,
    /// Redis URL of the online item store [default: redis://127.0.0.1:6379/0].
    #[arg(long, env = "RESCORE_REDIS_URL", value_name = "URL", global = true)]
    pub redis_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreArg {
    Embedded,
    Redis,
}

impl From<StoreArg> for StoreKind {
    fn from(s: StoreArg) -> Self {
        match s {
            StoreArg::Embedded => StoreKind::Embedded,
            StoreArg::Redis => StoreKind::Redis,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Item feature ETL: build the embedded store, stream versioned updates (docs/feature-store.md).
    #[command(subcommand)]
    Items(ItemsCommand),
}

#[derive(Debug, Subcommand)]
pub enum ItemsCommand {
    /// Builds a new embedded store generation from a snapshot (JSON Lines) beside the live one
    /// and publishes it; a running sidecar on the same data directory swaps to it.
    Import {
        /// Snapshot file, JSON Lines.
        snapshot: PathBuf,
    },
    /// Streams versioned puts ({"id", "version", "features"} per line) from FILE or stdin (-).
    /// An update whose version is not newer than the stored one is skipped.
    Put(UpdateArgs),
    /// Streams versioned deletes ({"id", "version"} per line) from FILE or stdin (-).
    Delete(UpdateArgs),
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// JSON Lines file, or - for standard input.
    #[arg(default_value = "-")]
    pub input: PathBuf,
    /// Where to write: the configured item store (default), embedded, redis, or both.
    #[arg(long, value_name = "TARGET")]
    pub target: Option<Target>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Embedded,
    Redis,
    Both,
}

/// The config file. Relative paths in it are relative to the file's directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub models: Option<PathBuf>,
    pub items: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub serving: ServingConfig,
    #[serde(default)]
    pub item_store: ItemStoreConfig,
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
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub serving: ServingConfig,
    pub item_store: ItemStoreConfig,
}

impl Config {
    /// Serving configuration.
    pub fn resolve(cli: Cli) -> anyhow::Result<Self> {
        let config = Self::merge(&cli.common, cli.listen, cli.models, cli.items)?;
        config.validate()?;
        if config.items.is_some() {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                anyhow::anyhow!(
                    "--data-dir {}: cannot create: {e}",
                    config.data_dir.display()
                )
            })?;
        }
        Ok(config)
    }

    /// Configuration for a subcommand (no listen address or models needed).
    pub fn resolve_for_tool(common: &CommonFlags) -> anyhow::Result<Self> {
        let config = Self::merge(common, None, None, None)?;
        config.item_store.validate().map_err(anyhow::Error::msg)?;
        Ok(config)
    }

    fn merge(
        common: &CommonFlags,
        listen: Option<SocketAddr>,
        models: Option<PathBuf>,
        items: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let file = match &common.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
                let mut file: FileConfig = toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
                let base = path.parent().unwrap_or(Path::new("."));
                file.models = file.models.map(|p| base.join(p));
                file.items = file.items.map(|p| base.join(p));
                file.data_dir = file.data_dir.map(|p| base.join(p));
                file
            }
            None => FileConfig::default(),
        };
        let mut item_store = file.item_store;
        if let Some(kind) = common.item_store {
            item_store.backend = kind.into();
        }
        if let Some(url) = &common.redis_url {
            item_store.redis.url = url.clone();
        }
        Ok(Config {
            listen: listen.or(file.listen).unwrap_or_else(|| {
                DEFAULT_LISTEN
                    .parse()
                    .unwrap_or_else(|_| unreachable!("valid literal"))
            }),
            models: models.or(file.models),
            items: items.or(file.items),
            data_dir: common
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            server: file.server,
            serving: file.serving,
            item_store,
        })
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
            if self.item_store.backend == StoreKind::Redis {
                anyhow::bail!(
                    "--items {} builds the embedded store, but item_store.backend is redis (load snapshots into Redis with `items put --target redis`)",
                    items.display()
                );
            }
        }
        if self.server.body_limit_bytes < 1024 {
            anyhow::bail!("server.body_limit_bytes must be at least 1024");
        }
        self.serving.validate().map_err(anyhow::Error::msg)?;
        self.item_store.validate().map_err(anyhow::Error::msg)
    }
}

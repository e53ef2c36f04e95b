//! Command line, environment and config file, merged in that order of precedence, then
//! validated before anything binds (docs/configuration.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use rescore_features::{ItemStoreConfig, StoreKind};
use rescore_monitor::MonitorConfig;
use rescore_serving::ServingConfig;
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9209";
pub const DEFAULT_DATA_DIR: &str = "/var/lib/rescore-sidecar";
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9210";
/// Shorter tokens are refused: the admin API can change what every search is ranked by.
const MIN_ADMIN_TOKEN_LEN: usize = 16;

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
    /// Item feature snapshot: JSON Lines ({"id": "...", "features": {"name": number}} per line),
    /// or Parquet if the name ends in .parquet (an `id` string column, numeric feature columns).
    /// Built into (or reused from) the embedded store in --data-dir.
    #[arg(long, env = "RESCORE_ITEMS", value_name = "PATH")]
    pub items: Option<PathBuf>,
    /// Routing file (live pins, A/B experiments, shadows, rules; hot-reloaded) [default: DIR/routing.toml of --models].
    #[arg(long, env = "RESCORE_ROUTING", value_name = "FILE")]
    pub routing: Option<PathBuf>,
    /// Address of the admin API (reload, routing, rollback) [default: 127.0.0.1:9210]; served only with a token (RESCORE_ADMIN_TOKEN or --admin-token-file).
    #[arg(long, env = "RESCORE_ADMIN_LISTEN", value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// File holding the admin API's bearer token (the RESCORE_ADMIN_TOKEN variable is the alternative).
    #[arg(long, env = "RESCORE_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags shared by serving and the `items` subcommands.
#[derive(Debug, Args)]
pub struct CommonFlags {
    /// TOML config file (keys: listen, models, items, data_dir, routing, admin_listen, admin_token_file, [server], [serving], [item_store], [monitoring]).
    #[arg(long, env = "RESCORE_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory of the embedded item store [default: /var/lib/rescore-sidecar].
    #[arg(long, env = "RESCORE_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Item store that serves lookups: embedded, redis, or layered (Redis in front of the --items snapshot) [default: embedded].
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
    Layered,
}

impl From<StoreArg> for StoreKind {
    fn from(s: StoreArg) -> Self {
        match s {
            StoreArg::Embedded => StoreKind::Embedded,
            StoreArg::Redis => StoreKind::Redis,
            StoreArg::Layered => StoreKind::Layered,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Item feature ETL: build the embedded store, stream versioned updates (docs/feature-store.md).
    #[command(subcommand)]
    Items(ItemsCommand),
    /// Monitoring jobs: reference statistics, training data from feature logs (docs/monitoring.md).
    #[command(flatten)]
    Monitoring(crate::jobs::Job),
}

#[derive(Debug, Subcommand)]
pub enum ItemsCommand {
    /// Builds a new embedded store generation from a snapshot (JSON Lines or Parquet) beside the
    /// live one and publishes it; a running sidecar on the same data directory swaps to it.
    Import {
        /// Snapshot file: Parquet if the name ends in .parquet, else JSON Lines.
        snapshot: PathBuf,
        /// The search index's NUMBER_OF_SHARDS/ROUTING_NUM_SHARDS (e.g. 6/768, from
        /// `GET _cluster/state/metadata/<index>`), or NUMBER_OF_SHARDS alone for Elasticsearch
        /// indices created from index version 9064000 on; with --keep-shards
        /// (docs/feature-store.md#shard-filtered-snapshots).
        #[arg(long, value_name = "N/R", requires = "keep_shards")]
        index_shards: Option<String>,
        /// Keep only the items the index routes to these shards (e.g. 3,17,42): by their
        /// `routing` field or column when they have one, else by their id (the document _id).
        #[arg(long, value_name = "SHARDS", requires = "index_shards")]
        keep_shards: Option<String>,
    },
    /// Prints the live generation of the data directory as JSON: items, columns, what it was
    /// built from, and the shards a shard-filtered import kept (null: the whole catalogue).
    Info,
    /// Streams versioned puts ({"id", "version", "features"} per line) from FILE or stdin (-).
    /// An update whose version is not newer than the stored one is skipped.
    Put(UpdateArgs),
    /// Streams versioned deletes ({"id", "version"} per line) from FILE or stdin (-).
    Delete(UpdateArgs),
    /// Adds the item suspicion columns (`suspicion`, `suspicion_rules`) of a model's manifest
    /// to a JSON Lines snapshot, fitted on the snapshot itself (docs/monitoring.md); import
    /// the output as usual.
    Suspicion(SuspicionArgs),
}

#[derive(Debug, Args)]
pub struct SuspicionArgs {
    /// The model version's manifest.toml (its `[suspicion]` and `seller_controlled` features).
    #[arg(long)]
    pub manifest: PathBuf,
    /// JSON Lines snapshot ({"id", "features"} per line).
    pub snapshot: PathBuf,
    /// Where to write the annotated snapshot.
    #[arg(long)]
    pub output: PathBuf,
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
    pub routing: Option<PathBuf>,
    pub admin_listen: Option<SocketAddr>,
    pub admin_token_file: Option<PathBuf>,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub serving: ServingConfig,
    #[serde(default)]
    pub item_store: ItemStoreConfig,
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
    /// A connection's request head must arrive within this, else it is closed.
    pub header_timeout_ms: u64,
    /// A request body must arrive whole within this (a deadline, not an idle timeout), else 408.
    pub body_timeout_ms: u64,
    /// Open connections at most; one more is answered 503 and closed.
    pub max_connections: usize,
    /// How often the end of a burst is looked for, to give the allocator's freed heap back to
    /// the system (`heap.rs`); 0: never.
    pub heap_trim_interval_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit_bytes: rescore_server::DEFAULT_BODY_LIMIT,
            shutdown_grace_secs: 10,
            header_timeout_ms: 10_000,
            body_timeout_ms: rescore_server::DEFAULT_BODY_TIMEOUT.as_millis() as u64,
            max_connections: 4096,
            heap_trim_interval_ms: 10_000,
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
    pub routing: Option<PathBuf>,
    pub admin_listen: SocketAddr,
    /// `None`: the admin API is not served.
    pub admin_token: Option<String>,
    /// The config file's `admin_token_file`, before the command line is applied.
    admin_token_file: Option<PathBuf>,
    /// Whether the config file set `admin_listen` (then a token is required).
    admin_listen_configured: bool,
    pub server: ServerConfig,
    pub serving: ServingConfig,
    pub item_store: ItemStoreConfig,
    pub monitoring: MonitorConfig,
}

impl Config {
    /// Serving configuration.
    pub fn resolve(cli: Cli) -> anyhow::Result<Self> {
        let mut config = Self::merge(&cli.common, cli.listen, cli.models, cli.items)?;
        config.routing = cli.routing.or(config.routing);
        if let Some(addr) = cli.admin_listen {
            config.admin_listen = addr;
        }
        let token_file = cli.admin_token_file.or(config.admin_token_file.take());
        config.admin_token = admin_token(
            token_file.as_deref(),
            cli.admin_listen.is_some() || config.admin_listen_configured,
        )?;
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
                file.routing = file.routing.map(|p| base.join(p));
                file.admin_token_file = file.admin_token_file.map(|p| base.join(p));
                file.serving.shadow.log_path = file.serving.shadow.log_path.map(|p| base.join(p));
                file.monitoring.rebase(base);
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
            routing: file.routing,
            admin_listen: file.admin_listen.unwrap_or_else(|| {
                DEFAULT_ADMIN_LISTEN
                    .parse()
                    .unwrap_or_else(|_| unreachable!("valid literal"))
            }),
            admin_token: None,
            admin_token_file: file.admin_token_file,
            admin_listen_configured: file.admin_listen.is_some(),
            server: file.server,
            serving: file.serving,
            item_store,
            monitoring: file.monitoring,
        })
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.admin_token.is_some() && self.admin_listen == self.listen && self.listen.port() != 0
        {
            anyhow::bail!("admin_listen must differ from listen ({})", self.listen);
        }
        if let Some(routing) = &self.routing {
            if routing.file_name().is_none() {
                anyhow::bail!("--routing {}: not a file path", routing.display());
            }
        }
        self.monitoring.validate().map_err(anyhow::Error::msg)?;
        if let Some(dir) = self.monitoring.feature_log.dir.as_ref() {
            if self.monitoring.feature_log.enabled {
                std::fs::create_dir_all(dir).map_err(|e| {
                    anyhow::anyhow!("monitoring.feature_log.dir {}: {e}", dir.display())
                })?;
            }
        }
        if let Some(models) = &self.models {
            if !std::fs::metadata(models).is_ok_and(|m| m.is_dir()) {
                anyhow::bail!("--models {}: not a readable directory", models.display());
            }
        }
        if self.item_store.backend == StoreKind::Layered && self.items.is_none() {
            anyhow::bail!(
                "item_store.backend is layered: --items is needed for the snapshot layer behind Redis"
            );
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
        if !(100..=600_000).contains(&self.server.header_timeout_ms) {
            anyhow::bail!("server.header_timeout_ms must be in 100..=600000");
        }
        if !(100..=600_000).contains(&self.server.body_timeout_ms) {
            anyhow::bail!("server.body_timeout_ms must be in 100..=600000");
        }
        if !(1..=1_000_000).contains(&self.server.max_connections) {
            anyhow::bail!("server.max_connections must be in 1..=1000000");
        }
        if self.server.body_limit_bytes < 1024 {
            anyhow::bail!("server.body_limit_bytes must be at least 1024");
        }
        if !matches!(self.server.heap_trim_interval_ms, 0 | 100..=3_600_000) {
            anyhow::bail!("server.heap_trim_interval_ms must be 0 (off) or in 100..=3600000");
        }
        self.serving.validate().map_err(anyhow::Error::msg)?;
        self.item_store.validate().map_err(anyhow::Error::msg)
    }
}

/// The admin token from `RESCORE_ADMIN_TOKEN` or the token file (not both). An admin address
/// configured without a token is an error: the operator meant to have the admin API.
fn admin_token(file: Option<&Path>, listen_configured: bool) -> anyhow::Result<Option<String>> {
    let from_env = std::env::var("RESCORE_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let token = match (from_env, file) {
        (Some(_), Some(_)) => {
            anyhow::bail!(
                "set the admin token by RESCORE_ADMIN_TOKEN or by admin_token_file, not both"
            )
        }
        (Some(t), None) => Some(t),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("admin token file {}: {e}", path.display()))?
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    match token {
        Some(t) if t.len() < MIN_ADMIN_TOKEN_LEN || t.chars().any(char::is_whitespace) => {
            anyhow::bail!(
                "the admin token must be at least {MIN_ADMIN_TOKEN_LEN} characters without whitespace"
            )
        }
        None if listen_configured => anyhow::bail!(
            "admin_listen is set but no admin token is (RESCORE_ADMIN_TOKEN or admin_token_file)"
        ),
        token => Ok(token),
    }
}

//! The Redis online store. One key per item, `<prefix><id>`, whose value carries the item's
//! version and features, in text (`<version> <JSON object>`) or in the compact binary layout of
//! [`value`]; a deleted item keeps a tombstone with its version, so that an older put cannot
//! revive it. Reads are one `MGET` per request for every id the cache lacks and take both
//! formats; writes go through a Lua compare-and-set on the version, pipelined.

mod cluster;
mod value;

pub use value::{Decoder, Stored, ValueFormat, BINARY_MAGIC};

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;

use crate::record::{Columns, ItemRecord};
use crate::update::{Update, UpdateOp};

/// `[item_store.redis]` in the config file (docs/configuration.md).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prefix of every item key.
    pub key_prefix: String,
    /// Connections, each multiplexed (many requests in flight on one connection).
    pub pool_size: usize,
    /// Store budget per request: ids not answered by then get missing values (counted).
    /// Also cut short by the request's own budget.
    pub timeout_ms: u64,
    /// Bound on establishing a connection (a reconnect in the background after a failure).
    pub connect_timeout_ms: u64,
    /// How long a delete's tombstone is kept (0 = forever). An update older than a delete that
    /// arrives after its tombstone expired would revive the item.
    pub tombstone_ttl_secs: u64,
    /// How `items put|delete` encode values: `text` or `binary` (the sidecar reads both).
    pub write_format: ValueFormat,
    /// `url` is one node of a Redis Cluster: keys are routed by hash slot, one pipeline per
    /// node per request.
    pub cluster: bool,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379/0".into(),
            key_prefix: "rescore:item:".into(),
            pool_size: 4,
            timeout_ms: 20,
            connect_timeout_ms: 200,
            tombstone_ttl_secs: 7 * 24 * 3600,
            write_format: ValueFormat::Text,
            cluster: false,
        }
    }
}

impl RedisConfig {
    pub fn validate(&self) -> Result<(), String> {
        redis::Client::open(self.url.as_str())
            .map_err(|e| format!("item_store.redis.url `{}`: {e}", self.url))?;
        if self.pool_size == 0 || self.pool_size > 256 {
            return Err("item_store.redis.pool_size must be in 1..=256".into());
        }
        if self.timeout_ms == 0 {
            return Err("item_store.redis.timeout_ms must be at least 1".into());
        }
        if self.connect_timeout_ms == 0 {
            return Err("item_store.redis.connect_timeout_ms must be at least 1".into());
        }
        Ok(())
    }
}

/// Compare-and-set on the version: applies ARGV[2] only if it is newer than the stored value,
/// whichever format either is in (binary: 0xB1 = 177, then the version as u64 LE; text: a
/// decimal version before the first space). Versions are <= 2^53 (exact in Lua's doubles).
pub const CAS_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local v
  if string.byte(cur, 1) == 177 then
    if #cur >= 9 then
      v = 0
      for i = 9, 2, -1 do v = v * 256 + string.byte(cur, i) end
    end
  else
    v = tonumber(string.match(cur, '^(%d+) '))
  end
  if v and v >= tonumber(ARGV[1]) then return 0 end
end
if ARGV[3] ~= '0' then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
";

#[derive(Debug, thiserror::Error)]
pub enum RedisStoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis value of {key:?}: {problem}")]
    Value { key: String, problem: String },
    #[error("item {id:?}: {problem}")]
    Encode { id: String, problem: String },
}

/// One id's read.
#[derive(Debug, PartialEq)]
pub enum Read {
    Value(Stored),
    /// Redis has no key for the id.
    Absent,
    /// The node holding the id's key did not answer (Redis Cluster: that node only).
    Failed,
}

pub struct RedisStore {
    pool: Vec<ConnectionManager>,
    cluster: Option<Arc<cluster::Cluster>>,
    next: AtomicUsize,
    prefix: String,
    tombstone_ttl_secs: u64,
    write_format: ValueFormat,
    columns: Arc<Columns>,
    script: redis::Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("pool_size", &self.pool.len())
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisStore {
    /// Connections are made lazily (a Redis that is down at start-up does not stop the
    /// sidecar) and re-made in the background after failures. Needs a tokio runtime.
    pub fn new(config: &RedisConfig) -> Result<Self, RedisStoreError> {
        let client = redis::Client::open(config.url.as_str())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(200));
        let (pool, cluster) = if config.cluster {
            let c = cluster::Cluster::new(&config.url, manager_config)?;
            (Vec::new(), Some(Arc::new(c)))
        } else {
            let pool = (0..config.pool_size)
                .map(|_| {
                    ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
                })
                .collect::<Result<Vec<_>, _>>()?;
            (pool, None)
        };
        Ok(RedisStore {
            pool,
            cluster,
            next: AtomicUsize::new(0),
            prefix: config.key_prefix.clone(),
            tombstone_ttl_secs: config.tombstone_ttl_secs,
            write_format: config.write_format,
            columns: Arc::new(Columns::default()),
            script: redis::Script::new(CAS_SCRIPT),
        })
    }

    fn connection(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len();
        self.pool[i].clone()
    }

    pub fn columns(&self) -> &Arc<Columns> {
        &self.columns
    }

    pub fn key(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }

    /// All ids in one `MGET` round trip, decoded into the store's own column space; `None`
    /// for unknown or deleted ids.
    pub async fn mget(&self, ids: &[Box<str>]) -> Result<Vec<Option<ItemRecord>>, RedisStoreError> {
        Ok(self
            .mget_stored(ids, &self.columns)
            .await?
            .into_iter()
            .map(|v| match v {
                Read::Value(Stored::Live(record)) => Some(record),
                Read::Value(Stored::Deleted) | Read::Absent | Read::Failed => None,
            })
            .collect())
    }

    /// The raw values of `keys`, in order: one `MGET`, or with a cluster one pipeline of
    /// `GET`s per node, all nodes at once (`Err` per key of a node that failed).
    async fn fetch_raw(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<Result<Option<Vec<u8>>, ()>>, RedisStoreError> {
        let Some(cluster) = &self.cluster else {
            let mut cmd = redis::cmd("MGET");
            cmd.arg(&keys);
            let mut connection = self.connection();
            let values: Vec<Option<Vec<u8>>> = match cmd.query_async(&mut connection).await {
                // A connection Redis dropped (a restart) is re-made by its manager: read once
                // more on it (a read is safe to repeat) rather than fail one request per
                // pooled connection; the caller's budget still bounds both attempts.
                Err(error) if error.is_connection_dropped() => {
                    cmd.query_async(&mut connection).await?
                }
                result => result?,
            };
            return Ok(values.into_iter().map(Ok).collect());
        };
        let (batches, unserved) = cluster.route(&keys).await?;
        let mut out: Vec<Result<Option<Vec<u8>>, ()>> = (0..keys.len()).map(|_| Err(())).collect();
        let batches = batches
            .into_iter()
            .map(|b| (b.node, Ok(b.connection), b.positions))
            .collect();
        let (mut failed, asked) = read_per_node(&keys, batches, false, &mut out).await;
        failed |= !unserved.is_empty();
        // Keys of a slot in migration that have left their owner: read once from the node the
        // `ASK` names, each `GET` after `ASKING`, as the cluster specification says; the slot
        // map stays as it is until the migration ends (then the owner answers `MOVED`).
        if !asked.is_empty() {
            let batches = asked
                .into_iter()
                .map(|((host, port), positions)| {
                    let connection = cluster.connection(&host, port);
                    (format!("{host}:{port}"), connection, positions)
                })
                .collect();
            let (failed_again, asked_again) = read_per_node(&keys, batches, true, &mut out).await;
            failed |= failed_again || !asked_again.is_empty();
        }
        if failed {
            cluster.node_failed();
        }
        Ok(out)
    }

    /// All ids in one round trip (per node with a cluster), decoded into `columns` (names new
    /// to it are added).
    pub async fn mget_stored(
        &self,
        ids: &[Box<str>],
        columns: &Columns,
    ) -> Result<Vec<Read>, RedisStoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let values = self
            .fetch_raw(ids.iter().map(|id| self.key(id)).collect())
            .await?;
        let mut decoder = Decoder::default();
        let out = ids
            .iter()
            .zip(values)
            .map(|(id, v)| match v {
                Err(()) => Ok(Read::Failed),
                Ok(None) => Ok(Read::Absent),
                Ok(Some(bytes)) => {
                    decoder
                        .decode(columns, &bytes)
                        .map(Read::Value)
                        .map_err(|problem| RedisStoreError::Value {
                            key: self.key(id),
                            problem,
                        })
                }
            })
            .collect();
        let dropped = decoder.take_dropped();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "item feature names beyond the column limit ignored"
            );
        }
        out
    }

    /// Applies a batch of updates in one round trip; per update, whether it was newer than
    /// the stored version (and so applied).
    pub async fn apply(&self, updates: &[Update]) -> Result<Vec<bool>, RedisStoreError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let mut payloads = Vec::with_capacity(updates.len());
        for u in updates {
            let (features, ttl) = match &u.op {
                UpdateOp::Put(features) => (Some(features.as_slice()), 0),
                UpdateOp::Delete => (None, self.tombstone_ttl_secs),
            };
            let payload =
                value::encode(self.write_format, u.version, features).map_err(|problem| {
                    RedisStoreError::Encode {
                        id: u.id.clone(),
                        problem: format!("line {}: {problem}", u.line),
                    }
                })?;
            payloads.push((self.key(&u.id), payload, ttl));
        }
        // SCRIPT LOAD first in the same pipeline: the EVALSHAs after it always find the script,
        // also right after a Redis restart.
        let pipeline = |positions: &[usize]| {
            let mut pipe = redis::pipe();
            pipe.cmd("SCRIPT").arg("LOAD").arg(CAS_SCRIPT).ignore();
            for &i in positions {
                let (key, payload, ttl) = &payloads[i];
                pipe.cmd("EVALSHA")
                    .arg(self.script.get_hash())
                    .arg(1)
                    .arg(key)
                    .arg(updates[i].version)
                    .arg(payload)
                    .arg(ttl);
            }
            pipe
        };
        let Some(cluster) = &self.cluster else {
            let all: Vec<usize> = (0..updates.len()).collect();
            let applied: Vec<i64> = pipeline(&all).query_async(&mut self.connection()).await?;
            return Ok(applied.into_iter().map(|a| a == 1).collect());
        };
        // A cluster: one pipeline per node, all at once; any node failing fails the batch
        // (the ETL stops; re-running it is safe).
        let keys: Vec<String> = payloads.iter().map(|(k, _, _)| k.clone()).collect();
        let (batches, unserved) = cluster.route(&keys).await?;
        if let Some(&i) = unserved.first() {
            return Err(RedisStoreError::Value {
                key: keys[i].clone(),
                problem: "no cluster node serves its hash slot".into(),
            });
        }
        let writes = batches.into_iter().map(|mut batch| {
            let pipe = pipeline(&batch.positions);
            async move {
                let applied: Result<Vec<i64>, _> = pipe.query_async(&mut batch.connection).await;
                (batch.positions, applied)
            }
        });
        let mut out = vec![false; updates.len()];
        for (positions, applied) in futures_util::future::join_all(writes).await {
            let applied = applied.inspect_err(|_| cluster.node_failed())?;
            for (i, a) in positions.into_iter().zip(applied) {
                out[i] = a == 1;
            }
        }
        Ok(out)
    }
}

/// A cluster node's keys to read: its `host:port`, its connection, the keys' positions.
type NodeRead = (
    String,
    Result<ConnectionManager, redis::RedisError>,
    Vec<usize>,
);

/// One pipeline of `GET`s per node, all nodes at once (each `GET` after `ASKING` when `asking`),
/// the values into `out`. Returns whether a read failed (a key, or a whole node) and the keys
/// answered `ASK`, by the node named.
async fn read_per_node(
    keys: &[String],
    batches: Vec<NodeRead>,
    asking: bool,
    out: &mut [Result<Option<Vec<u8>>, ()>],
) -> (bool, HashMap<(String, u16), Vec<usize>>) {
    let reads = batches.into_iter().map(|(node, connection, positions)| {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for &i in &positions {
            if asking {
                pipe.cmd("ASKING").ignore();
            }
            pipe.cmd("GET").arg(&keys[i]);
        }
        async move {
            let values: Result<Vec<redis::RedisResult<Option<Vec<u8>>>>, redis::RedisError> =
                match connection {
                    Ok(mut connection) => pipe.query_async(&mut connection).await,
                    Err(error) => Err(error),
                };
            (node, positions, values)
        }
    });
    let mut failed = false;
    let mut asked: HashMap<(String, u16), Vec<usize>> = HashMap::new();
    for (node, positions, values) in futures_util::future::join_all(reads).await {
        let values = match values {
            Ok(values) => values,
            Err(error) => {
                failed = true;
                tracing::debug!(%node, %error, keys = positions.len(), "redis cluster node failed");
                continue;
            }
        };
        for (i, v) in positions.into_iter().zip(values) {
            match v {
                Ok(v) => out[i] = Ok(v),
                Err(error) => match ask_target(&error) {
                    Some(target) => asked.entry(target).or_default().push(i),
                    None => {
                        failed = true;
                        tracing::debug!(%node, %error, "redis cluster read failed");
                    }
                },
            }
        }
    }
    (failed, asked)
}

/// The node an `ASK` redirection names (`-ASK <slot> <host>:<port>`): a key of a slot being
/// migrated that its owner no longer holds.
fn ask_target(error: &redis::RedisError) -> Option<(String, u16)> {
    if error.kind() != redis::ErrorKind::Server(redis::ServerErrorKind::Ask) {
        return None;
    }
    let (addr, _slot) = error.redirect_node()?;
    let (host, port) = addr.rsplit_once(':')?;
    Some((host.to_string(), port.parse().ok()?))
}

//! The Redis online store. One key per item, `<prefix><id>`, whose value is
//! `<version> <features as a JSON object>` or `<version> null` for a deleted item (a tombstone
//! that keeps an older put from reviving it). Reads are one `MGET` per request for every id the
//! cache lacks; writes go through a Lua compare-and-set on the version, pipelined.

use std::collections::BTreeMap;
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

/// Compare-and-set on the version: applies ARGV[2] only if it is newer than the stored value.
/// Versions are decimal integers <= 2^53 (exact in Lua's doubles).
const CAS_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local v = tonumber(string.match(cur, '^(%d+) '))
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
}

pub struct RedisStore {
    pool: Vec<ConnectionManager>,
    next: AtomicUsize,
    prefix: String,
    tombstone_ttl_secs: u64,
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
        let pool = (0..config.pool_size)
            .map(|_| {
                ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RedisStore {
            pool,
            next: AtomicUsize::new(0),
            prefix: config.key_prefix.clone(),
            tombstone_ttl_secs: config.tombstone_ttl_secs,
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

    /// All ids in one `MGET` round trip; `None` for unknown or deleted ids.
    pub async fn mget(&self, ids: &[Box<str>]) -> Result<Vec<Option<ItemRecord>>, RedisStoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for id in ids {
            cmd.arg(self.key(id));
        }
        let values: Vec<Option<Vec<u8>>> = cmd.query_async(&mut self.connection()).await?;
        ids.iter()
            .zip(values)
            .map(|(id, v)| match v {
                None => Ok(None),
                Some(bytes) => {
                    decode(&self.columns, &bytes).map_err(|problem| RedisStoreError::Value {
                        key: self.key(id),
                        problem,
                    })
                }
            })
            .collect()
    }

    /// Applies a batch of updates in one round trip; per update, whether it was newer than
    /// the stored version (and so applied).
    pub async fn apply(&self, updates: &[Update]) -> Result<Vec<bool>, RedisStoreError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        // SCRIPT LOAD first in the same pipeline: the EVALSHAs after it always find the script,
        // also right after a Redis restart.
        let mut pipe = redis::pipe();
        pipe.cmd("SCRIPT").arg("LOAD").arg(CAS_SCRIPT).ignore();
        for u in updates {
            let (payload, ttl) = match &u.op {
                UpdateOp::Put(features) => {
                    let map: BTreeMap<&str, f64> =
                        features.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                    let json = serde_json::to_string(&map).unwrap_or_else(|_| "{}".into());
                    (format!("{} {json}", u.version), 0)
                }
                UpdateOp::Delete => (format!("{} null", u.version), self.tombstone_ttl_secs),
            };
            pipe.cmd("EVALSHA")
                .arg(self.script.get_hash())
                .arg(1)
                .arg(self.key(&u.id))
                .arg(u.version)
                .arg(payload)
                .arg(ttl);
        }
        let applied: Vec<i64> = pipe.query_async(&mut self.connection()).await?;
        Ok(applied.into_iter().map(|a| a == 1).collect())
    }
}

#[derive(Deserialize)]
#[serde(transparent)]
struct Features(Option<BTreeMap<String, Option<f64>>>);

/// `<version> <json object | null>` → the record (`None` for a tombstone).
fn decode(columns: &Columns, bytes: &[u8]) -> Result<Option<ItemRecord>, String> {
    let space = bytes
        .iter()
        .position(|b| *b == b' ')
        .ok_or("expected `<version> <json>`")?;
    std::str::from_utf8(&bytes[..space])
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or("the version is not an unsigned integer")?;
    let Features(features) =
        serde_json::from_slice(&bytes[space + 1..]).map_err(|e| e.to_string())?;
    Ok(features.map(|f| {
        let (record, dropped) = ItemRecord::from_pairs(
            columns,
            f.iter().filter_map(|(k, v)| v.map(|v| (k.as_str(), v))),
        );
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "item feature names beyond the column limit ignored"
            );
        }
        record
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_decode_exactly_and_tombstones_are_none() {
        let c = Columns::default();
        let r = decode(
            &c,
            b"17 {\"p\":0.30000000000000004,\"q\":-1e-300,\"n\":null}",
        )
        .expect("valid")
        .expect("live");
        let p = c.column("p").expect("p");
        assert_eq!(
            r.value(p).map(f64::to_bits),
            Some(0.30000000000000004f64.to_bits())
        );
        assert_eq!(r.value(c.column("q").expect("q")), Some(-1e-300));
        assert!(c.column("n").is_none());
        assert!(decode(&c, b"18 null").expect("valid").is_none());
        for bad in [&b"{}"[..], b"x {}", b"1 {", b"1 [1]", b"1 {\"a\":\"s\"}"] {
            assert!(
                decode(&c, bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

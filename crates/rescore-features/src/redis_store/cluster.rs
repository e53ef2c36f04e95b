//! Redis Cluster routing for the item store: keys grouped by the node that owns their hash slot,
//! one pipeline per node (one round trip each, all nodes at once). The `redis` crate's
//! `cluster-async` splits a multi-key `MGET` per hash slot instead (about one sub-command per
//! key for 1,000 random ids), so the grouping is ours; the slot function is the cluster
//! specification's (CRC16/XMODEM of the key or of its `{hash tag}`, mod 16384).
//!
//! The slot map comes from `CLUSTER SLOTS`, asked of the seed URL's node or any node known; a
//! node whose pipeline fails (down, `MOVED` after a reshard, `CLUSTERDOWN`) fails only its own
//! keys, and the map is re-read (at most every 100 ms). A key of a slot being migrated that has
//! already left its owner (`ASK`) is read once more from the node named, after `ASKING`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Value};

pub(crate) const SLOTS: usize = 16384;
const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);
const REFRESH_EVERY: Duration = Duration::from_millis(100);

/// The hash slot of a key: of its hash tag, the part between the first `{` and the next `}`,
/// when that part is not empty.
pub(crate) fn slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|b| *b == b'}')
                .filter(|close| *close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    CRC16.checksum(hashed) % SLOTS as u16
}

struct Topology {
    /// Node index per slot; `u16::MAX` where no node serves the slot.
    owner: Vec<u16>,
    nodes: Vec<(String, ConnectionManager)>,
}

pub(crate) struct Cluster {
    seed: ConnectionInfo,
    manager_config: ConnectionManagerConfig,
    topology: ArcSwapOption<Topology>,
    /// Connections by `host:port`, kept across map refreshes.
    connections: Mutex<HashMap<String, ConnectionManager>>,
    refresh: tokio::sync::Mutex<Option<Instant>>,
}

/// The keys one node answers: their positions in the request and the node's connection.
pub(crate) struct NodeBatch {
    pub(crate) node: String,
    pub(crate) connection: ConnectionManager,
    pub(crate) positions: Vec<usize>,
}

impl Cluster {
    pub(crate) fn new(
        url: &str,
        manager_config: ConnectionManagerConfig,
    ) -> Result<Self, redis::RedisError> {
        Ok(Cluster {
            seed: url.into_connection_info()?,
            manager_config,
            topology: ArcSwapOption::empty(),
            connections: Mutex::new(HashMap::new()),
            refresh: tokio::sync::Mutex::new(None),
        })
    }

    pub(crate) fn connection(
        &self,
        host: &str,
        port: u16,
    ) -> Result<ConnectionManager, redis::RedisError> {
        let name = format!("{host}:{port}");
        let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = connections.get(&name) {
            return Ok(c.clone());
        }
        let info = self
            .seed
            .clone()
            .set_addr(ConnectionAddr::Tcp(host.to_string(), port));
        let client = redis::Client::open(info)?;
        let c = ConnectionManager::new_lazy_with_config(client, self.manager_config.clone())?;
        connections.insert(name, c.clone());
        Ok(c)
    }

    /// Groups the keys by owning node; keys of slots no node serves are in the second list.
    pub(crate) async fn route(
        &self,
        keys: &[String],
    ) -> Result<(Vec<NodeBatch>, Vec<usize>), redis::RedisError> {
        let topology = match self.topology.load_full() {
            Some(t) => t,
            None => {
                self.refresh(true).await?;
                self.topology.load_full().ok_or_else(|| {
                    redis::RedisError::from((redis::ErrorKind::Client, "no cluster slot map"))
                })?
            }
        };
        let mut batches: Vec<Option<NodeBatch>> = (0..topology.nodes.len()).map(|_| None).collect();
        let mut unserved = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let owner = topology.owner[usize::from(slot(key.as_bytes()))];
            let Some(batch) = batches.get_mut(usize::from(owner)) else {
                unserved.push(i);
                continue;
            };
            batch
                .get_or_insert_with(|| NodeBatch {
                    node: topology.nodes[usize::from(owner)].0.clone(),
                    connection: topology.nodes[usize::from(owner)].1.clone(),
                    positions: Vec::new(),
                })
                .positions
                .push(i);
        }
        Ok((batches.into_iter().flatten().collect(), unserved))
    }

    /// Re-reads the slot map after a node failed (rate-limited), in the background.
    pub(crate) fn node_failed(self: &Arc<Self>) {
        let this = self.clone();
        tokio::spawn(async move {
            let _ = this.refresh(false).await;
        });
    }

    /// Reads `CLUSTER SLOTS` from the first node that answers: the known nodes, then the seed.
    async fn refresh(&self, force: bool) -> Result<(), redis::RedisError> {
        let mut last = self.refresh.lock().await;
        if !force && last.is_some_and(|t| t.elapsed() < REFRESH_EVERY) {
            return Ok(());
        }
        *last = Some(Instant::now());
        let mut candidates: Vec<(String, u16)> = Vec::new();
        if let Some(t) = self.topology.load_full() {
            for (name, _) in &t.nodes {
                if let Some((host, port)) = name.rsplit_once(':') {
                    candidates.push((host.to_string(), port.parse().unwrap_or(0)));
                }
            }
        }
        if let ConnectionAddr::Tcp(host, port) = self.seed.addr() {
            candidates.push((host.clone(), *port));
        }
        let mut last_error = None;
        for (host, port) in candidates {
            let mut c = self.connection(&host, port)?;
            let reply: Result<Value, _> =
                redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut c).await;
            match reply.and_then(|v| self.topology_of(&v, &host)) {
                Ok(t) => {
                    self.topology.store(Some(Arc::new(t)));
                    return Ok(());
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::Client, "no cluster node to ask"))
        }))
    }

    /// `CLUSTER SLOTS`: `[[start, end, [host, port, id, ...], replicas...], ...]`; the
    /// primary (first address) of each range serves it.
    fn topology_of(&self, reply: &Value, asked: &str) -> Result<Topology, redis::RedisError> {
        let bad = |what: &str| {
            redis::RedisError::from((redis::ErrorKind::Parse, "CLUSTER SLOTS", what.to_string()))
        };
        let Value::Array(ranges) = reply else {
            return Err(bad("not an array"));
        };
        let mut owner = vec![u16::MAX; SLOTS];
        let mut nodes: Vec<(String, ConnectionManager)> = Vec::new();
        for range in ranges {
            let Value::Array(fields) = range else {
                return Err(bad("a range is not an array"));
            };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(primary))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return Err(bad("a range without start, end and primary"));
            };
            let host = match primary.first() {
                Some(Value::BulkString(h)) if !h.is_empty() => {
                    String::from_utf8_lossy(h).into_owned()
                }
                _ => asked.to_string(),
            };
            let Some(Value::Int(port)) = primary.get(1) else {
                return Err(bad("a primary without a port"));
            };
            let port = u16::try_from(*port).map_err(|_| bad("port out of range"))?;
            let name = format!("{host}:{port}");
            let index = match nodes.iter().position(|(n, _)| *n == name) {
                Some(i) => i,
                None => {
                    nodes.push((name, self.connection(&host, port)?));
                    nodes.len() - 1
                }
            };
            let (start, end) = (usize::try_from(*start), usize::try_from(*end));
            let (Ok(start), Ok(end)) = (start, end) else {
                return Err(bad("negative slot"));
            };
            if start > end || end >= SLOTS {
                return Err(bad("slot range out of bounds"));
            }
            for s in &mut owner[start..=end] {
                *s = index as u16;
            }
        }
        Ok(Topology { owner, nodes })
    }
}

#[cfg(test)]
mod tests {
    use super::slot;

    #[test]
    fn slots_follow_the_cluster_specification() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        // CRC16/XMODEM check value of "123456789" is 0x31C3 (below 16384).
        assert_eq!(slot(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_ne!(
            slot(b"foo{}{bar}"),
            slot(b"bar"),
            "an empty tag hashes the whole key"
        );
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
    }
}

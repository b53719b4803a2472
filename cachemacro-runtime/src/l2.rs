//! L2: values in Redis, shared by every instance. Speaks Redis commands and nothing else.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Script, Value};

/// A connection to one Redis server (reconnecting) or to a Redis Cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Stores `ARGV[2]` with TTL `ARGV[3]` ms only if the key still holds exactly `ARGV[1]`:
/// the compare-and-set fill that keeps a load from undoing a removal that happened while it
/// ran (the removal replaced what the load saw with a unique tombstone).
const FILL_IF_UNCHANGED: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    return 1
end
return 0
";

/// Takes every member of a tag's set and deletes the set, atomically: a load that registers
/// after this starts a new set, so the next invalidation of the tag finds it.
const TAKE_MEMBERS: &str = r"
local members = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
return members
";

/// The shared tier.
#[derive(Clone)]
pub(crate) struct L2 {
    conn: Conn,
    fill_if_unchanged: Script,
    take_members: Script,
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl L2 {
    pub(crate) fn new(conn: Conn) -> Self {
        Self {
            conn,
            fill_if_unchanged: Script::new(FILL_IF_UNCHANGED),
            take_members: Script::new(TAKE_MEMBERS),
        }
    }

    /// The bytes under `key`.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await
    }

    /// Adds `key` to the set of each of `tag_keys` (kept at least `ttl`), then reads `key`:
    /// one round trip. Registering before reading is what lets a tag invalidation that comes
    /// later find this key, even while it is still loading.
    pub(crate) async fn get_tagged(
        &self,
        key: &str,
        tag_keys: &[String],
        ttl: Duration,
    ) -> Result<Option<Vec<u8>>, RedisError> {
        if tag_keys.is_empty() {
            return self.get(key).await;
        }
        let register = |pipe: &mut Pipeline, tag: &String| {
            pipe.cmd("SADD").arg(tag).arg(key).ignore();
            // NX sets a first expiry, GT only ever lengthens it.
            for condition in ["NX", "GT"] {
                pipe.cmd("PEXPIRE")
                    .arg(tag)
                    .arg(millis(ttl))
                    .arg(condition)
                    .ignore();
            }
        };
        let mut conn = self.conn.clone();
        if let Conn::Cluster(_) = conn {
            // The tag sets and the key live in different slots: one round trip each.
            for tag in tag_keys {
                let mut pipe = redis::pipe();
                register(&mut pipe, tag);
                pipe.query_async::<()>(&mut conn).await?;
            }
            return self.get(key).await;
        }
        let mut pipe = redis::pipe();
        for tag in tag_keys {
            register(&mut pipe, tag);
        }
        pipe.cmd("GET").arg(key);
        let (bytes,): (Option<Vec<u8>>,) = pipe.query_async(&mut conn).await?;
        Ok(bytes)
    }

    /// Every key registered under the tag set `tag_key`, removing the set.
    pub(crate) async fn take_members(&self, tag_key: &str) -> Result<Vec<String>, RedisError> {
        self.take_members
            .key(tag_key)
            .invoke_async(&mut self.conn.clone())
            .await
    }

    /// Writes `tombstone` over each of `keys` and publishes `messages[i]` for `keys[i]` on
    /// `channel`, in one round trip.
    pub(crate) async fn tombstone_all(
        &self,
        keys: &[String],
        tombstone: &[u8],
        ttl: Duration,
        channel: Option<&str>,
        messages: &[String],
    ) -> Result<(), RedisError> {
        if let Conn::Cluster(_) = self.conn {
            // Every key in its own slot: one round trip each, the message after the write.
            for (i, key) in keys.iter().enumerate() {
                match (channel, messages.get(i)) {
                    (Some(channel), Some(message)) => {
                        self.set_and_publish(key, tombstone, ttl, channel, message)
                            .await?
                    }
                    _ => self.set(key, tombstone, ttl).await?,
                }
            }
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (i, key) in keys.iter().enumerate() {
            pipe.cmd("SET")
                .arg(key)
                .arg(tombstone)
                .arg("PX")
                .arg(millis(ttl))
                .ignore();
            if let (Some(channel), Some(message)) = (channel, messages.get(i)) {
                pipe.cmd("PUBLISH").arg(channel).arg(message).ignore();
            }
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await
    }

    /// Stores `value` if `key` still holds `seen` (`None`: still absent). Returns whether it
    /// stored.
    pub(crate) async fn fill(
        &self,
        key: &str,
        seen: Option<&[u8]>,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, RedisError> {
        let mut conn = self.conn.clone();
        match seen {
            None => {
                let stored: Option<String> = redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("PX")
                    .arg(millis(ttl))
                    .arg("NX")
                    .query_async(&mut conn)
                    .await?;
                Ok(stored.is_some())
            }
            Some(seen) => {
                let stored: i64 = self
                    .fill_if_unchanged
                    .key(key)
                    .arg(seen)
                    .arg(value)
                    .arg(millis(ttl))
                    .invoke_async(&mut conn)
                    .await?;
                Ok(stored == 1)
            }
        }
    }

    /// Stores `value` under `key` unconditionally.
    pub(crate) async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), RedisError> {
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .query_async::<()>(&mut self.conn.clone())
            .await
    }

    /// Stores `value` under `key` and publishes `message` on `channel`, in one round trip.
    /// Redis runs the two in order, so a peer that receives the message already finds the
    /// new value (or tombstone) in place.
    pub(crate) async fn set_and_publish(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        channel: &str,
        message: &str,
    ) -> Result<(), RedisError> {
        let mut conn = self.conn.clone();
        if let Conn::Cluster(_) = conn {
            // A cluster routes the key and the channel by their own slots: two round trips,
            // in this order, so a peer that hears the message finds the new value.
            self.set(key, value, ttl).await?;
            return redis::cmd("PUBLISH")
                .arg(channel)
                .arg(message)
                .query_async::<()>(&mut conn)
                .await;
        }
        redis::pipe()
            .cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .ignore()
            .cmd("PUBLISH")
            .arg(channel)
            .arg(message)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
    }

    /// Deletes every key matching `pattern` (a `SCAN MATCH` glob), in batches, without
    /// blocking the server. Returns how many were deleted.
    pub(crate) async fn scan_unlink(&self, pattern: &str) -> Result<u64, RedisError> {
        let mut conn = self.conn.clone();
        let nodes = match &mut conn {
            Conn::Single(_) => vec![None],
            // Every primary holds its own part of the keys: scan each.
            Conn::Cluster(cluster) => primaries(cluster).await?.into_iter().map(Some).collect(),
        };
        let mut deleted = 0;
        for node in nodes {
            let mut cursor: u64 = 0;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000);
                let (next, keys): (u64, Vec<Vec<u8>>) = match (&mut conn, &node) {
                    (Conn::Cluster(cluster), Some((host, port))) => {
                        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        });
                        redis::from_redis_value(cluster.route_command(scan, routing).await?)?
                    }
                    _ => scan.query_async(&mut conn).await?,
                };
                if !keys.is_empty() {
                    let n: u64 = redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async(&mut conn)
                        .await?;
                    deleted += n;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }

    /// The counter under `key` (0 when absent).
    pub(crate) async fn counter(&self, key: &str) -> Result<u64, RedisError> {
        let value: Option<u64> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(value.unwrap_or(0))
    }

    /// Increments the counter under `key`; returns the new value.
    pub(crate) async fn increment(&self, key: &str) -> Result<u64, RedisError> {
        redis::cmd("INCR")
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await
    }
}

/// The primaries of a cluster, as `(host, port)`, from `CLUSTER NODES`.
async fn primaries(cluster: &mut ClusterConnection) -> Result<Vec<(String, u16)>, RedisError> {
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(cluster)
        .await?;
    Ok(nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                return None;
            }
            // `host:port@cport[,hostname]`
            let address = fields.get(1)?.split('@').next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect())
}

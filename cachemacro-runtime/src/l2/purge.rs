//! Purging a namespace or a scope: a `SCAN` over its keys that buries its values under a
//! tombstone and deletes the rest, in batches that do not block the server.
//!
//! Why bury rather than delete: a load in flight on another instance stores with a
//! compare-and-set against what it read, and a tombstone is what makes that fail. Deleting
//! a value (or a removal's tombstone) would let a load that saw the key absent store what
//! it read before the purge; instances that mark their loads stale on the purge's message
//! are safe either way, but a message can come late, and instances of 0.1 never held back
//! their fills for it.

use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

use super::{slot, L2};
use crate::link::{Access, Conn, Fault};

/// Buries each of KEYS that is a value (its name starts with ARGV[3] or ARGV[4], and it
/// is a string) under the tombstone ARGV[1] for ARGV[2] ms, unless it holds a tombstone
/// already (a removal's, which must outlive the loads it stops); deletes the other keys.
/// KEYS share one slot on a cluster. Returns how many keys it buried or deleted.
const BURY: &str = r"
local buried = 0
for _, key in ipairs(KEYS) do
    local value = string.sub(key, 1, #ARGV[3]) == ARGV[3] or string.sub(key, 1, #ARGV[4]) == ARGV[4]
    if value and redis.call('TYPE', key).ok == 'string' then
        if redis.call('GETRANGE', key, 0, 3) ~= 'cm\1\2' then
            redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
            buried = buried + 1
        end
    else
        buried = buried + redis.call('UNLINK', key)
    end
end
return buried
";

/// What a purge buries values under.
pub(crate) struct Burial<'a> {
    /// The tombstone, unique to this purge.
    pub(crate) tombstone: &'a [u8],
    /// How long it stays.
    pub(crate) ttl: std::time::Duration,
    /// The prefixes of values: unscoped keys, and keys in a scope.
    pub(crate) values: [&'a str; 2],
}

impl L2 {
    /// Purges every key matching `pattern` (a `SCAN MATCH` glob) except those starting
    /// with one of `keep`, in batches, without blocking the server: values are buried under
    /// `tombstone` (see `BURY`), other keys deleted. Returns how many keys it purged.
    pub(crate) async fn scan_bury(
        &self,
        pattern: &str,
        keep: &[String],
        burial: &Burial<'_>,
    ) -> Result<u64, Fault> {
        let nodes = if self.cluster {
            // Every primary holds its own part of the keys: scan each.
            self.primaries().await?.into_iter().map(Some).collect()
        } else {
            vec![None]
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
                let (next, keys): (u64, Vec<Vec<u8>>) = match &node {
                    Some((host, port)) => {
                        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        });
                        let value = self
                            .link
                            .run(Access::Write, |conn| async move {
                                match conn {
                                    Conn::Cluster(mut cluster) => {
                                        cluster.route_command(scan, routing).await
                                    }
                                    Conn::Single(mut single) => scan.query_async(&mut single).await,
                                }
                            })
                            .await?;
                        redis::from_redis_value(value)
                            .map_err(|e| Fault::Reply(redis::RedisError::from(e)))?
                    }
                    None => self.link.query(Access::Write, &scan).await?,
                };
                let keys: Vec<Vec<u8>> = keys
                    .into_iter()
                    .filter(|key| !keep.iter().any(|k| key.starts_with(k.as_bytes())))
                    .collect();
                deleted += self.bury(&keys, burial).await?;
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }

    /// Buries or deletes `keys` (see `BURY`): in one script on a single server, one per
    /// slot on a cluster.
    async fn bury(&self, keys: &[Vec<u8>], burial: &Burial<'_>) -> Result<u64, Fault> {
        if keys.is_empty() {
            return Ok(0);
        }
        let groups: Vec<Vec<&Vec<u8>>> = if self.cluster {
            let mut by_slot: std::collections::BTreeMap<u16, Vec<&Vec<u8>>> = Default::default();
            for key in keys {
                by_slot.entry(slot(key)).or_default().push(key);
            }
            by_slot.into_values().collect()
        } else {
            vec![keys.iter().collect()]
        };
        let script = redis::Script::new(BURY);
        let mut buried = 0;
        for group in groups {
            let mut invocation = script.prepare_invoke();
            for key in group {
                invocation.key(key.as_slice());
            }
            invocation
                .arg(burial.tombstone)
                .arg(super::millis(burial.ttl))
                .arg(burial.values[0])
                .arg(burial.values[1]);
            buried += self.invoke::<u64>(Access::Write, &invocation).await?;
        }
        Ok(buried)
    }
}

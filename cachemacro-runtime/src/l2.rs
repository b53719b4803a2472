//! L2: values in Redis, shared by every instance. Speaks Redis commands and nothing else.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{RedisError, Script};

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

/// The shared tier.
#[derive(Clone)]
pub(crate) struct L2 {
    conn: ConnectionManager,
    fill_if_unchanged: Script,
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl L2 {
    pub(crate) fn new(conn: ConnectionManager) -> Self {
        Self {
            conn,
            fill_if_unchanged: Script::new(FILL_IF_UNCHANGED),
        }
    }

    /// The bytes under `key`.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await
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
            .query_async::<()>(&mut self.conn.clone())
            .await
    }
}

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
    conn: ConnectionManager,
    fill_if_unchanged: Script,
    take_members: Script,
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl L2 {
    pub(crate) fn new(conn: ConnectionManager) -> Self {
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
        let mut pipe = redis::pipe();
        for tag in tag_keys {
            pipe.cmd("SADD").arg(tag).arg(key).ignore();
            // NX sets a first expiry, GT only ever lengthens it.
            pipe.cmd("PEXPIRE")
                .arg(tag)
                .arg(millis(ttl))
                .arg("NX")
                .ignore();
            pipe.cmd("PEXPIRE")
                .arg(tag)
                .arg(millis(ttl))
                .arg("GT")
                .ignore();
        }
        pipe.cmd("GET").arg(key);
        let (bytes,): (Option<Vec<u8>>,) = pipe.query_async(&mut self.conn.clone()).await?;
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

    /// Deletes every key matching `pattern` (a `SCAN MATCH` glob), in batches, without
    /// blocking the server. Returns how many were deleted.
    pub(crate) async fn scan_unlink(&self, pattern: &str) -> Result<u64, RedisError> {
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
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

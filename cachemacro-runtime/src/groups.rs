//! Invalidating groups of entries at once: group versions, tags, namespace purge.

use std::collections::{HashMap, HashSet};
use std::sync::{MutexGuard, PoisonError};

use crate::bus::{Bus, Message};
use crate::envelope;
use crate::{Cache, Error};

impl Cache {
    /// Deletes every entry of this cache's namespace from Redis (a `SCAN` + `UNLINK` over
    /// `<namespace>:*`, in batches that do not block the server), then clears this process's
    /// L1 and every peer's. Returns how many Redis keys were deleted (0 without Redis).
    ///
    /// This is the seeds' *namespace purge*: for starting afresh after a migration, or for
    /// tests. It is not how a write invalidates (use [`remove`](Self::remove), a group
    /// [`version`](Self::version) or tags): a load in flight while it runs may store what it
    /// loaded.
    pub async fn purge(&self) -> Result<u64, Error> {
        self.purge_at(self.inner.layout.root()).await
    }

    pub(crate) async fn purge_at(&self, prefix: &str) -> Result<u64, Error> {
        let deleted = match &self.inner.l2 {
            // The prefix is escaped (see `key`), so it holds no glob characters of its own.
            Some(l2) => l2
                .scan_unlink(&format!("{prefix}*"))
                .await
                .map_err(|e| Error::redis("purge", e))?,
            None => 0,
        };
        let prefix = if prefix == self.inner.layout.root() {
            ""
        } else {
            prefix
        };
        self.clear_at(prefix).await?;
        Ok(deleted)
    }

    /// The current version of `group`: 0 until [`bump_version`](Self::bump_version) is first
    /// called. Put it in the keys of everything in the group, and one bump retires them all
    /// at once (the *versioned keys* pattern):
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cachemacro_runtime::Error> {
    /// # let cache = cachemacro_runtime::Cache::in_memory();
    /// let v = cache.version("catalog").await?;
    /// cache.set(&format!("catalog:v{v}:item:1"), "chair".to_string(), None).await?;
    ///
    /// cache.bump_version("catalog").await?; // the catalog changed
    /// let v = cache.version("catalog").await?;
    /// assert_eq!(cache.get::<String>(&format!("catalog:v{v}:item:1")).await?, None);
    /// # Ok(()) }
    /// ```
    ///
    /// With `#[cached]`, take the version as an argument: `#[cached(key =
    /// "catalog:v<version>:<id>")] async fn item(version: u64, id: u64)`. Entries of older
    /// versions are never read again and end with their TTL. With Redis the counter is
    /// shared by every instance; reading it costs one `GET`.
    pub async fn version(&self, group: &str) -> Result<u64, Error> {
        let key = self.inner.layout.version_key(group);
        match &self.inner.l2 {
            Some(l2) => l2
                .counter(&key)
                .await
                .map_err(|e| Error::redis("read version", e)),
            None => Ok(self.local_versions().get(&key).copied().unwrap_or(0)),
        }
    }

    /// Moves `group` to its next version, retiring every entry keyed with an older one; returns
    /// the new version. See [`version`](Self::version).
    pub async fn bump_version(&self, group: &str) -> Result<u64, Error> {
        let key = self.inner.layout.version_key(group);
        match &self.inner.l2 {
            Some(l2) => l2
                .increment(&key)
                .await
                .map_err(|e| Error::redis("bump version", e)),
            None => {
                let mut versions = self.local_versions();
                let version = versions.entry(key).or_insert(0);
                *version += 1;
                Ok(*version)
            }
        }
    }

    fn local_versions(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.inner
            .local_versions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes, everywhere, every entry that depends on `tag`: the seeds' *dependency
    /// tracking*. A function declares its tags as templates, `#[cached(key =
    /// "orders:<user_id>", tags = ["user:<user_id>"])]`; `invalidate_tag("user:42")` then
    /// removes the orders of user 42 together with anything else tagged `user:42`, here and
    /// on every instance. Returns how many entries were removed.
    ///
    /// Tags are registered when a load begins (in the same round trip as the L2 read), so an
    /// invalidation that comes while a load is in flight finds it, and the load's fill then
    /// fails as it does after [`remove`](Self::remove).
    pub async fn invalidate_tag(&self, tag: &str) -> Result<u64, Error> {
        let tag_key = self.inner.layout.tag_key(tag);
        let Some(l2) = &self.inner.l2 else {
            let keys = self.local_tags().remove(&tag_key).unwrap_or_default();
            for key in &keys {
                self.remove_local_at(key);
            }
            return Ok(keys.len() as u64);
        };
        let keys = l2
            .take_members(&tag_key)
            .await
            .map_err(|e| Error::redis("invalidate tag", e))?;
        let tombstone = envelope::tombstone(self.inner.instance);
        let messages: Vec<String> = match &self.inner.bus {
            Some(bus) => keys
                .iter()
                .map(|k| bus.payload(&Message::Remove(k.clone())))
                .collect(),
            None => Vec::new(),
        };
        let mut result = Ok(());
        for (keys, messages) in keys.chunks(500).zip(
            messages
                .chunks(500)
                .map(Some)
                .chain(std::iter::repeat(None)),
        ) {
            let channel = self.inner.bus.as_ref().map(Bus::channel);
            let written = l2
                .tombstone_all(
                    keys,
                    &tombstone,
                    self.inner.tombstone_ttl,
                    channel,
                    messages.unwrap_or(&[]),
                )
                .await;
            if let Err(err) = written {
                result = Err(Error::redis("invalidate tag", err));
            }
        }
        for key in &keys {
            self.remove_local_at(key);
        }
        result.map(|()| keys.len() as u64)
    }

    /// Records, without Redis, that `skey` depends on each of `tag_keys`.
    pub(crate) fn register_local_tags(&self, tag_keys: &[String], skey: &str) {
        if tag_keys.is_empty() {
            return;
        }
        // Keys whose entries expired or were evicted stay listed until their tag is
        // invalidated: prune them when a tag, or the number of tags, grows large. A key whose
        // load is still in flight is live too: its registration must survive until it lands.
        let live =
            |key: &String| self.contains_local_at(key) || self.inner.flights.is_in_flight(key);
        let mut tags = self.local_tags();
        for tag in tag_keys {
            let keys = tags.entry(tag.clone()).or_default();
            keys.insert(skey.to_owned());
            if keys.len() > 4096 {
                keys.retain(live);
            }
        }
        let limit = 1024 + 2 * usize::try_from(self.inner.l1.capacity()).unwrap_or(usize::MAX / 4);
        if tags.len() > limit {
            tags.retain(|_, keys| {
                keys.retain(live);
                !keys.is_empty()
            });
        }
    }

    fn local_tags(&self) -> MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.inner
            .local_tags
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
